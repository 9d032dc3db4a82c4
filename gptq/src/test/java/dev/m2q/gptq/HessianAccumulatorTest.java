package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The accumulator against a naive double computation. Each element is a sum of T products accumulated in fp32
 * (one FMA rounding per token and one add per chunk), so by the recursive-summation bound it is within
 * (T + chunks)·2⁻²⁴·Σ_t |x_ti·x_tj| of the exact value, before the (2/T) scaling adds one more rounding. We
 * allow twice that bound per element; a wrong index or a missed token is off by a whole term.
 */
class HessianAccumulatorTest {
    private static final double EPS = Math.ulp(1.0f) / 2;

    @ParameterizedTest
    @CsvSource({"1, 1, 1", "40, 7, 3", "96, 33, 4", "130, 64, 5"})
    void matchesNaiveDoubleWithinTheSummationBound(int rows, int k, int chunks) {
        SplittableRandom rnd = new SplittableRandom(rows * 7L + k);
        float[] x = Fixtures.correlatedActivations(rnd, rows, k);
        float[] h = accumulate(x, rows, k, chunks, false);
        double[] ref = Fixtures.naiveHessian(x, rows, k);
        double[] mag = absHessian(x, rows, k);
        for (int e = 0; e < h.length; e++) {
            double tol = 2 * (rows + chunks + 1) * EPS * mag[e] + 1e-30;
            assertEquals(ref[e], h[e], tol, "H[" + e / k + ", " + e % k + "]");
        }
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                assertEquals(Float.floatToRawIntBits(h[i * k + j]), Float.floatToRawIntBits(h[j * k + i]), "symmetric");
            }
        }
    }

    @Test
    void chunkOrderChangesOnlyRounding() {
        int rows = 120;
        int k = 24;
        float[] x = Fixtures.correlatedActivations(new SplittableRandom(3), rows, k);
        float[] forward = accumulate(x, rows, k, 4, false);
        float[] backward = accumulate(x, rows, k, 4, true);
        double[] mag = absHessian(x, rows, k);
        for (int e = 0; e < forward.length; e++) {
            // Each is within the bound of the exact value, so they are within twice it of each other.
            assertEquals(forward[e], backward[e], 4 * (rows + 5) * EPS * mag[e] + 1e-30);
        }
        assertEquals(rows, tokensAfter(x, rows, k));
    }

    @Test
    void vectorAndScalarKernelsGiveTheSameBits() {
        int rows = 77;
        int k = 45;
        float[] x = Fixtures.correlatedActivations(new SplittableRandom(11), rows, k);
        HessianAccumulator v = new HessianAccumulator(k, VectorKernels.INSTANCE);
        HessianAccumulator s = new HessianAccumulator(k, ScalarKernels.INSTANCE);
        v.add(x, rows);
        s.add(x, rows);
        assertArrayEquals(s.hessian(), v.hessian());
    }

    @Test
    void finishIsTheScaledMirrorBitForBitWhateverTheThreadSplit() {
        // K = 1000: 16 tiles of 64 a side, 136 on or above the diagonal, enough work to split over threads; the
        // ragged last tile crosses the edge. Each element is one product and two stores, so the plain loop gives
        // the same bits.
        int k = 1000;
        long tokens = 777;
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(99);
        float[] sum = new float[k * k];
        for (int e = 0; e < sum.length; e++) {
            sum[e] = (float) rnd.nextGaussian();
        }
        float[] expected = sum.clone();
        float f = (float) (2.0 / tokens);
        for (int i = 0; i < k; i++) {
            for (int j = i; j < k; j++) {
                float v = expected[i * k + j] * f;
                expected[i * k + j] = v;
                expected[j * k + i] = v;
            }
        }
        HessianAccumulator.finish(sum, k, tokens);
        for (int e = 0; e < sum.length; e++) {
            assertEquals(Float.floatToRawIntBits(expected[e]), Float.floatToRawIntBits(sum[e]), "h[" + e + "]");
        }
    }

    @Test
    void misuseFailsLoudly() {
        HessianAccumulator acc = new HessianAccumulator(4);
        assertThrows(IllegalStateException.class, acc::hessian);
        assertThrows(IllegalArgumentException.class, () -> acc.add(new float[7], 2));
        acc.add(new float[8], 2);
        acc.hessian();
        assertThrows(IllegalStateException.class, () -> acc.add(new float[4], 1));
        assertThrows(IllegalStateException.class, acc::hessian);
    }

    private static long tokensAfter(float[] x, int rows, int k) {
        HessianAccumulator acc = new HessianAccumulator(k);
        acc.add(Arrays.copyOf(x, 10 * k), 10);
        acc.add(Arrays.copyOfRange(x, 10 * k, rows * k), rows - 10);
        return acc.tokens();
    }

    /** Adds x in {@code chunks} pieces of uneven size, first to last or last to first. */
    private static float[] accumulate(float[] x, int rows, int k, int chunks, boolean reversed) {
        HessianAccumulator acc = new HessianAccumulator(k);
        for (int c = 0; c < chunks; c++) {
            int idx = reversed ? chunks - 1 - c : c;
            int from = rows * idx / chunks;
            int to = rows * (idx + 1) / chunks;
            float[] part = Arrays.copyOfRange(x, from * k, to * k);
            acc.add(part, to - from);
        }
        assertEquals(rows, acc.tokens());
        float[] h = acc.hessian();
        assertTrue(h.length == k * k);
        return h;
    }

    private static double[] absHessian(float[] x, int rows, int k) {
        double[] m = new double[k * k];
        for (int t = 0; t < rows; t++) {
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    m[i * k + j] += Math.abs((double) x[t * k + i] * x[t * k + j]) * 2.0 / rows;
                }
            }
        }
        return m;
    }
}
