package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kernels read every bf16 matrix from one kind of segment (Matrix.forKernels): a heap-backed matrix is copied to
 * native memory with the same bytes, a mapped one is viewed without a copy and keeps its lifetime.
 */
class MatrixSegmentsTest {
    @Test
    void heapBf16IsHeldNativeWithTheSameBytes() {
        SplittableRandom rnd = new SplittableRandom(3);
        int n = 48;
        int k = 64;
        short[] bits = new short[n * k];
        for (int i = 0; i < bits.length; i++) {
            bits[i] = (short) (Float.floatToIntBits((float) rnd.nextGaussian()) >>> 16);
        }
        MemorySegment heap = MemorySegment.ofArray(bits);
        Matrix.Bf16 m = new Matrix.Bf16(heap, n, k);
        assertTrue(m.data().isNative());
        assertEquals(-1, m.data().mismatch(heap), "the same bytes");
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                assertEquals(Float.intBitsToFloat(bits[r * k + c] << 16), m.get(r, c));
            }
        }
    }

    @Test
    void aMappedMatrixIsReadWithoutACopyAndDiesWithItsArena(@TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("w.bin");
        byte[] bytes = new byte[2 * 16 * 8];
        new SplittableRandom(5).nextBytes(bytes);
        Files.write(f, bytes);
        Matrix.Bf16 m;
        MemorySegment mapped;
        try (Arena arena = Arena.ofShared();
                FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, bytes.length, arena);
            m = new Matrix.Bf16(mapped, 16, 8);
            assertEquals(mapped.address(), m.data().address(), "no copy");
            assertNotSame(mapped, m.data());
            assertTrue(m.data().isReadOnly());
            assertEquals(mapped.get(Matrix.LE_SHORT, 6), m.data().get(Matrix.LE_SHORT, 6));
        }
        // the view shares the mapping's lifetime: reading it after the arena closed is refused, not a crash
        Matrix.Bf16 closed = m;
        assertThrows(IllegalStateException.class, () -> closed.get(0, 0));
    }
}
