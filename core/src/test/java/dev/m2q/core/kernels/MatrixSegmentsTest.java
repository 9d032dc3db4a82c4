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
 * The kernels read every bf16 and W4 matrix from one kind of segment (Matrix.forKernels): a heap-backed matrix is
 * copied to native memory with the same bytes, a mapped one is viewed without a copy and keeps its lifetime.
 */
class MatrixSegmentsTest {
    @Test
    void heapMatricesAreHeldNativeWithTheSameValuesAndProducts() {
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
        int[] qweight = new int[k / 8 * n];
        for (int i = 0; i < qweight.length; i++) {
            qweight[i] = rnd.nextInt();
        }
        float[] scales = new float[k / 32 * n];
        java.util.Arrays.fill(scales, 0.01f);
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = c / 32;
        }
        Matrix.W4 w = Matrix.W4.of(qweight, scales, gIdx, n, k, 32);
        assertTrue(w.qweight().isNative());
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                assertEquals((qweight[c / 8 * n + r] >>> (4 * (c % 8))) & 0xF, w.code(r, c));
            }
        }
        // the W4 product from the native copy equals the scalar twin's bit for bit (the W4 kernels' contract)
        float[] x = new float[2 * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        float[] yv = new float[2 * n];
        float[] ys = new float[2 * n];
        VectorKernels.INSTANCE.matmul(x, 2, w, null, yv);
        ScalarKernels.INSTANCE.matmul(x, 2, w, null, ys);
        assertEquals(java.util.Arrays.toString(ys), java.util.Arrays.toString(yv));
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
