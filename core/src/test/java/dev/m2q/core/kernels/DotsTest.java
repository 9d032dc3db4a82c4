package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Kernels#dots} is {@link Kernels#dot} row by row, bit for bit, on every implementation: the vector one takes
 * the rows in blocks of 16 with their lane sums side by side, so counts around the block size, head sizes with and
 * without a scalar tail, and rows in any order are covered.
 */
class DotsTest {
    @ParameterizedTest
    @CsvSource({"0, 64", "1, 64", "3, 64", "4, 64", "15, 64", "16, 64", "17, 64", "40, 64", "33, 72", "20, 5", "9, 128"
    })
    void dotsAreDotRowByRow(int count, int n) {
        SplittableRandom rnd = new SplittableRandom(7L * count + n);
        int rows = Math.max(1, count) + 3;
        float[] b = new float[rows * n + 11];
        for (int i = 0; i < b.length; i++) {
            b[i] = (float) rnd.nextGaussian();
        }
        float[] a = new float[n + 5];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        int[] offs = new int[count];
        for (int j = 0; j < count; j++) {
            offs[j] = rnd.nextInt(rows) * n + rnd.nextInt(11); // any rows, repeated, unaligned
        }
        for (Kernels kernels : new Kernels[] {VectorKernels.INSTANCE, ScalarKernels.INSTANCE}) {
            float[] out = new float[count + 6];
            out[0] = 42f;
            kernels.dots(a, 3, b, offs, count, n, out, 2);
            assertEquals(42f, out[0], "nothing written before outOff");
            for (int j = 0; j < count; j++) {
                assertEquals(
                        Float.floatToRawIntBits(kernels.dot(a, 3, b, offs[j], n)),
                        Float.floatToRawIntBits(out[2 + j]),
                        kernels.name() + ": row " + j + " of " + count);
            }
            for (int j = count + 2; j < out.length; j++) {
                assertEquals(0f, out[j], "nothing written after the rows");
            }
        }
    }
}
