package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Kernels#dots} is {@link Kernels#dot} row by row and {@link Kernels#axpys} and {@link Kernels#axpyRows} are
 * {@link Kernels#axpy} row by row, bit for bit, on every implementation: the vector ones take the rows in blocks (16 rows with their lane sums side by
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
        float[] b = gaussians(rnd, rows * n + 11);
        float[] a = gaussians(rnd, n + 5);
        int[] offs = offsets(rnd, count, rows, n);
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
        float[] x = gaussians(rnd, rows * n + 11);
        float[] alphas = gaussians(rnd, count + 2);
        int[] offs = offsets(rnd, count, rows, n);
        float[] y0 = gaussians(rnd, n + 7);
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

    @ParameterizedTest
    @CsvSource({"0, 64", "1, 64", "5, 64", "40, 64", "7, 72", "20, 5", "9, 128", "3, 200", "6, 16"})
    void axpyRowsIsAxpyRowByRow(int count, int n) {
        SplittableRandom rnd = new SplittableRandom(13L * count + n);
        int rows = Math.max(1, count) + 3;
        float[] x = gaussians(rnd, n + 9);
        float[] alphas = gaussians(rnd, count + 2);
        int[] offs = new int[count]; // rows of y that are the same or disjoint, in any order
        for (int j = 0; j < count; j++) {
            offs[j] = rnd.nextInt(rows) * n + 3;
        }
        if (count > 2) {
            offs[count - 1] = offs[0]; // a row named twice: its updates in order
        }
        float[] y0 = gaussians(rnd, rows * n + 11);
        for (Kernels kernels : new Kernels[] {VectorKernels.INSTANCE, ScalarKernels.INSTANCE}) {
            float[] want = y0.clone();
            for (int j = 0; j < count; j++) {
                kernels.axpy(alphas[2 + j], x, 5, want, offs[j], n);
            }
            float[] got = y0.clone();
            kernels.axpyRows(alphas, 2, x, 5, got, offs, count, n);
            for (int i = 0; i < got.length; i++) {
                assertEquals(
                        Float.floatToRawIntBits(want[i]),
                        Float.floatToRawIntBits(got[i]),
                        kernels.name() + ": y[" + i + "] after " + count + " rows");
            }
        }
    }

    private static float[] gaussians(SplittableRandom rnd, int count) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    /** Row starts anywhere in the [rows, n] block and up to 10 floats past it: rows repeat and need not align. */
    private static int[] offsets(SplittableRandom rnd, int count, int rows, int n) {
        int[] offs = new int[count];
        for (int j = 0; j < count; j++) {
            offs[j] = rnd.nextInt(rows) * n + rnd.nextInt(11);
        }
        return offs;
    }
}
