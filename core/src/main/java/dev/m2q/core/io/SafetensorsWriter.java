package dev.m2q.core.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.json.Json;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes safetensors files. For a whole checkpoint (sharded, tensors arriving in any order) use
 * {@link ShardPlan} and {@link CheckpointWriter}; {@link #writeFile} writes one small file in one call.
 *
 * <p>Layout written: an 8-byte little-endian header length n (a multiple of 8), then n bytes of compact JSON,
 * {@code __metadata__} first (when non-empty) and tensors in the given order with consecutive
 * {@code data_offsets}, padded with spaces; then the tensors' bytes back to back, row-major, little-endian.
 */
public final class SafetensorsWriter {
    private SafetensorsWriter() {}

    /**
     * A tensor's header entry.
     *
     * @param dtype the safetensors dtype name ("BF16", "I32", …)
     * @param dataOffsets [begin, end) of its bytes in the data section
     */
    private record Entry(
            String dtype,
            long[] shape,
            @JsonProperty("data_offsets") long[] dataOffsets) {}

    /** The bytes before the data section: length prefix and padded JSON header. */
    public static byte[] header(List<TensorSpec> tensors, Map<String, String> metadata) {
        Map<String, Object> root = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) {
            root.put("__metadata__", new LinkedHashMap<>(metadata));
        }
        long offset = 0;
        for (TensorSpec t : tensors) {
            Entry entry = new Entry(t.dtype().safetensorsName(), t.shape(), new long[] {offset, offset + t.byteSize()});
            if (root.put(t.name(), entry) != null) {
                throw new IllegalArgumentException("tensor \"" + t.name() + "\" listed twice");
            }
            offset += t.byteSize();
        }
        byte[] json = Json.write(root).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) & ~7;
        if (padded > SafetensorsFile.MAX_HEADER_BYTES) {
            throw new IllegalArgumentException("header of " + padded + " bytes exceeds the "
                    + SafetensorsFile.MAX_HEADER_BYTES + "-byte limit readers enforce");
        }
        byte[] out = new byte[8 + padded];
        MemorySegment.ofArray(out).set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, padded);
        System.arraycopy(json, 0, out, 8, json.length);
        Arrays.fill(out, 8 + json.length, out.length, (byte) ' ');
        return out;
    }

    /**
     * Writes {@code tensors} (names unique) into one file: via a temporary file in the same directory, synced and
     * renamed into place, so {@code file} is either absent or complete; missing parent directories are created. Returns the file's SHA-256.
     */
    public static String writeFile(Path file, List<TensorView> tensors, Map<String, String> metadata) {
        Path dir = file.toAbsolutePath().getParent();
        createDirectories(dir);
        List<TensorSpec> specs = tensors.stream().map(TensorSpec::of).toList();
        ShardOutput out = ShardOutput.create(dir, file.getFileName().toString(), specs, metadata);
        try {
            for (TensorView t : tensors) {
                out.write(out.position(t.name()), t.data());
            }
            return out.commit();
        } finally {
            out.abort();
        }
    }

    /** Creates {@code dir} (and parents) when missing. */
    static void createDirectories(Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot create the output directory: " + e, e);
        }
    }
}
