package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Kernels#dots} is {@link Kernels#dot} row by row and {@link Kernels#axpys} is {@link Kernels#axpy} row by row,
 * bit for bit, on every implementation: the vector ones take the rows in blocks (16 rows with their lane sums side by
 * side; 32 rows with y in registers), so counts around the block sizes, sizes with and without a scalar tail, and rows
 * in any order are covered.
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

    @ParameterizedTest
    @CsvSource({"0, 64", "1, 64", "5, 64", "31, 64", "32, 64", "33, 64", "70, 64", "40, 72", "20, 5", "9, 128", "3, 200"
    })
    void axpysAreAxpyRowByRow(int count, int n) {
        SplittableRandom rnd = new SplittableRandom(11L * count + n);
        int rows = Math.max(1, count) + 3;
        float[] x = new float[rows * n + 11];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        float[] alphas = new float[count + 2];
        for (int j = 0; j < alphas.length; j++) {
            alphas[j] = (float) rnd.nextGaussian();
        }
        int[] offs = new int[count];
        for (int j = 0; j < count; j++) {
            offs[j] = rnd.nextInt(rows) * n + rnd.nextInt(11);
        }
        float[] y0 = new float[n + 7];
        for (int i = 0; i < y0.length; i++) {
            y0[i] = (float) rnd.nextGaussian();
        }
        for (Kernels kernels : new Kernels[] {VectorKernels.INSTANCE, ScalarKernels.INSTANCE}) {
            float[] want = y0.clone();
            for (int j = 0; j < count; j++) {
                kernels.axpy(alphas[2 + j], x, offs[j], want, 4, n);
            }
            float[] got = y0.clone();
            kernels.axpys(alphas, 2, x, offs, count, got, 4, n);
            for (int i = 0; i < got.length; i++) {
                assertEquals(
                        Float.floatToRawIntBits(want[i]),
                        Float.floatToRawIntBits(got[i]),
                        kernels.name() + ": y[" + i + "] after " + count + " rows");
            }
        }
    }
}
