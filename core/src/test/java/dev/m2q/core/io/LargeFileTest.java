package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A 2.2 GiB tensor followed by a small one: offsets past 2^31 through writer and reader, streamed in chunks (no
 * array anywhere near 2 GiB). Writes 2.2 GiB to a temporary directory; run with {@code ./mvnw -pl core verify -Pslow}.
 */
@Tag("slow")
class LargeFileTest {
    private static final long BIG = 2_362_232_013L;
    private static final int CHUNK = 4 << 20;

    @TempDir
    Path dir;

    /** Byte {@code p} of the big tensor: a multiplicative hash, so every position has its own value. */
    private static byte pattern(long p) {
        return (byte) ((p * 0x9E3779B97F4A7C15L) >>> 56);
    }

    @Test
    void tensorPastTwoGibRoundTrips() throws Exception {
        List<TensorSpec> specs = List.of(
                new TensorSpec("big", DType.U8, new long[] {BIG}),
                new TensorSpec("tail", DType.BF16, new long[] {3, 4}));
        float[] tail = new float[12];
        for (int i = 0; i < tail.length; i++) {
            tail[i] = i - 5.5f;
        }
        Map<String, String> hashes;
        try (CheckpointWriter w = CheckpointWriter.create(dir, ShardPlan.single(specs), CheckpointWriter.PT_METADATA)) {
            w.writeFloats("tail", tail);
            byte[] chunk = new byte[CHUNK];
            try (CheckpointWriter.TensorStream s = w.stream("big")) {
                for (long from = 0; from < BIG; from += CHUNK) {
                    int n = (int) Math.min(CHUNK, BIG - from);
                    for (int k = 0; k < n; k++) {
                        chunk[k] = pattern(from + k);
                    }
                    s.write(MemorySegment.ofArray(chunk).asSlice(0, n));
                }
            }
            hashes = w.finish();
        }
        Path file = dir.resolve(Checkpoint.SINGLE_FILE);

        try (Checkpoint c = Checkpoint.open(dir)) {
            TensorView big = c.tensor("big");
            assertEquals(BIG, big.numel());
            long twoGib = 1L << 31;
            for (long p : new long[] {0, twoGib - 9, twoGib - 1, twoGib, twoGib + 1, twoGib + 4097, BIG - 1}) {
                assertEquals(pattern(p) & 0xFF, big.getInt(p), "byte " + p);
                assertEquals(pattern(p), big.data().get(ValueLayout.JAVA_BYTE, p), "byte " + p);
            }
            TensorView t = c.tensor("tail").requireShape(3, 4);
            for (int i = 0; i < tail.length; i++) {
                assertEquals(Bf16.round(tail[i]), t.getFloat(i), 0f, "tail[" + i + "] (exact in bf16)");
            }
            assertEquals(BIG + 24, c.totalBytes());
        }

        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (InputStream in = Files.newInputStream(file)) {
            byte[] buf = new byte[CHUNK];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(ByteBuffer.wrap(buf, 0, n));
            }
        }
        String independent = HexFormat.of().formatHex(md.digest());
        assertEquals(independent, hashes.get(Checkpoint.SINGLE_FILE));
        assertEquals(independent, Sha256.ofFile(file));
        Files.delete(file);
    }
}
