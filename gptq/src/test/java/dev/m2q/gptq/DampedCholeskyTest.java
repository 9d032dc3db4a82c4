package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class DampedCholeskyTest {
    /**
     * The fp32 path against the textbook route in double: Cholesky of the damped H, its inverse, and the
     * upper Cholesky factor of that inverse. fp32 factorization and inversion lose about κ(H)·K·2⁻²⁴ relative
     * accuracy; the damped test Hessians have κ of a few hundred, so with K ≤ 96 that is ~5e-4 at worst, and we
     * allow 2e-3 of max|U| (measured errors are far below; a wrong index or a missing term is O(1)).
     */
    @ParameterizedTest
    @CsvSource({"1, 4", "7, 20", "33, 80", "96, 200"})
    void matchesThePlainDoubleReference(int k, int rows) {
        float[] h = Fixtures.hessian(new SplittableRandom(k), rows, k);
        float[] before = h.clone();
        DampedCholesky.Result r = DampedCholesky.factor(h, k, 0.01);
        assertArrayEquals(before, h, "the caller's H is not modified");
        assertEquals(0, r.retries());
        assertEquals(0.01, r.dampUsed());
        double[] ref = referenceUpper(h, k, 0.01);
        double max = 0;
        for (double v : ref) {
            max = Math.max(max, Math.abs(v));
        }
        float[] u = r.hinvUpper();
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                if (j < i) {
                    assertEquals(0f, u[i * k + j], "strict lower triangle is zero");
                } else {
                    assertEquals(ref[i * k + j], u[i * k + j], 2e-3 * max, "U[" + i + ", " + j + "]");
                }
            }
        }
    }

    /**
     * The blocked factorization against the unblocked loops it replaced ({@link UnblockedCholesky}), on sizes
     * around the block (128): a single block, a ragged last block of 1, several blocks. Both are fp32 and differ
     * only in summation order (slices of 256 and per-block dot products vs one dot per element), so each U entry
     * may differ by the fp32 forward error of either: at most ~κ(H)·K·2⁻²⁴ relative to max|U|, in practice
     * ~κ·√K·2⁻²⁴ since rounding errors do not all line up. These Hessians (T = 2K correlated tokens, damp 0.01)
     * have κ of a few hundred, so we allow 1e-3 of max|U| per entry and 1e-4 RMS; measured: max 2e-5 and RMS
     * 7e-7 at K = 1000, ≤ 4e-7 for K ≤ 129. A wrong block index or a missing update term is O(1).
     */
    @ParameterizedTest
    @CsvSource({"1", "7", "127", "128", "129", "300", "1000"})
    void blockedMatchesTheUnblockedLoops(int k) {
        float[] h = Fixtures.hessian(new SplittableRandom(100 + k), 2 * k + 4, k);
        DampedCholesky.Result blocked = DampedCholesky.factor(h, k, 0.01);
        DampedCholesky.Result plain = UnblockedCholesky.factor(h, k, 0.01, VectorKernels.INSTANCE);
        assertEquals(plain.retries(), blocked.retries());
        float[] u = blocked.hinvUpper();
        float[] ref = plain.hinvUpper();
        double max = 0;
        for (float v : ref) {
            max = Math.max(max, Math.abs(v));
        }
        double sq = 0;
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                int e = i * k + j;
                if (j < i) {
                    assertEquals(0f, u[e], "strict lower triangle is zero");
                } else {
                    assertTrue(u[e] == ref[e] || Math.abs(u[e] - ref[e]) <= 1e-3 * max, "U[" + i + ", " + j + "]");
                    sq += (u[e] - ref[e]) * (double) (u[e] - ref[e]);
                }
            }
        }
        assertTrue(Math.sqrt(sq / (k * (k + 1) / 2.0)) <= 1e-4 * max, "RMS difference");
        if (k <= 300) {
            double[] exact = referenceUpper(h, k, 0.01);
            for (int e = 0; e < exact.length; e++) {
                assertEquals(exact[e], u[e], 2e-3 * max, "vs double at " + e); // as in matchesThePlainDoubleReference
            }
        }
        assertArrayEquals(u, DampedCholesky.factor(h, k, 0.01).hinvUpper(), "same bits on a rerun");
    }

    @Test
    void repeatsBitForBitAndAgreesWithTheScalarTwin() {
        // Every element is written by one thread in a fixed order, so a rerun gives the same bits. The vector and
        // scalar kernels differ in dot-product summation order, so they are compared within fp32 accuracy
        // (κ·K·2⁻²⁴ relative, as above).
        int k = 50;
        float[] h = Fixtures.hessian(new SplittableRandom(9), 120, k);
        float[] a = DampedCholesky.factor(h, k, 0.01, VectorKernels.INSTANCE).hinvUpper();
        float[] b = DampedCholesky.factor(h, k, 0.01, VectorKernels.INSTANCE).hinvUpper();
        assertArrayEquals(a, b);
        float[] s = DampedCholesky.factor(h, k, 0.01, ScalarKernels.INSTANCE).hinvUpper();
        for (int e = 0; e < a.length; e++) {
            assertEquals(s[e], a[e], 1e-3 * Math.abs(s[0]));
        }
    }

    @Test
    void indefiniteHessianRaisesTheDampAndRecordsIt() {
        // Blocks [[1, 1.025], [1.025, 1]] have eigenvalues 2.025 and −0.025, mean(diag) = 1: λ = 0.01 and 0.02
        // leave a negative pivot (1.02 − 1.025²/1.02 < 0), λ = 0.03 works (1.03 − 1.025²/1.03 ≈ 0.0099).
        int k = 4;
        float[] h = new float[k * k];
        for (int b = 0; b < k; b += 2) {
            h[b * k + b] = 1f;
            h[(b + 1) * k + b + 1] = 1f;
            h[b * k + b + 1] = 1.025f;
            h[(b + 1) * k + b] = 1.025f;
        }
        DampedCholesky.Result r = DampedCholesky.factor(h, k, 0.01);
        assertEquals(2, r.retries());
        assertEquals(0.03, r.dampUsed(), 1e-12);
        double[] ref = referenceUpper(h, k, r.dampUsed());
        for (int e = 0; e < ref.length; e++) {
            // κ of the damped blocks is 2.055/0.005 ≈ 400: fp32 keeps ~κ·2⁻²⁴ ≈ 3e-5 relative.
            assertEquals(ref[e], r.hinvUpper()[e], 1e-3 * Math.abs(ref[0]) + 1e-3 * Math.abs(ref[e]));
        }
    }

    @Test
    void deadInputsAreReportedAndFactoredAsOne() {
        int k = 6;
        float[] h = Fixtures.hessian(new SplittableRandom(4), 40, k);
        for (int j = 0; j < k; j++) {
            h[2 * k + j] = 0f;
            h[j * k + 2] = 0f;
            h[5 * k + j] = 0f;
            h[j * k + 5] = 0f;
        }
        DampedCholesky.Result r = DampedCholesky.factor(h, k, 0.01);
        assertArrayEquals(new int[] {2, 5}, r.deadColumns());
        float[] fixed = h.clone();
        fixed[2 * k + 2] = 1f;
        fixed[5 * k + 5] = 1f;
        double[] ref = referenceUpper(fixed, k, 0.01);
        for (int e = 0; e < ref.length; e++) {
            assertEquals(ref[e], r.hinvUpper()[e], 1e-4 * Math.abs(ref[0]) + 1e-4);
        }
    }

    @Test
    void theFirstNonFiniteEntryInIndexOrderIsNamedWhateverTheThreadSplit() {
        // K = 1000, searched by rows over threads: entries in rows 700 and 300 (and later in row 300) are bad; the
        // message names the first in index order, [300, 12].
        int k = 1000;
        float[] h = Fixtures.identity(k);
        h[700 * k + 5] = Float.NaN;
        h[300 * k + 900] = Float.NEGATIVE_INFINITY;
        h[300 * k + 12] = Float.POSITIVE_INFINITY;
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> DampedCholesky.factor(h, k, 0.01));
        assertTrue(e.getMessage().contains("[300, 12] is Infinity"), e.getMessage());
    }

    @Test
    void hopelessHessiansFailWithAClearMessage() {
        float[] nan = Fixtures.identity(3);
        nan[4] = Float.NaN;
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> DampedCholesky.factor(nan, 3, 0.01));
        assertTrue(e.getMessage().contains("[1, 1] is NaN"), e.getMessage());
        // Eigenvalues 3 and −1 with mean(diag) 1: no λ < 1 makes it positive definite.
        float[] indefinite = {1, 2, 2, 1};
        e = assertThrows(IllegalArgumentException.class, () -> DampedCholesky.factor(indefinite, 2, 0.01));
        assertTrue(e.getMessage().contains("not positive definite even with damp 0.99"), e.getMessage());
    }

    /** Lower Cholesky factor in double; throws if not positive definite. */
    private static double[] cholesky(double[] a, int k) {
        double[] l = new double[k * k];
        for (int j = 0; j < k; j++) {
            double d = a[j * k + j];
            for (int p = 0; p < j; p++) {
                d -= l[j * k + p] * l[j * k + p];
            }
            assertTrue(d > 0, "reference Cholesky failed");
            l[j * k + j] = Math.sqrt(d);
            for (int i = j + 1; i < k; i++) {
                double s = a[i * k + j];
                for (int p = 0; p < j; p++) {
                    s -= l[i * k + p] * l[j * k + p];
                }
                l[i * k + j] = s / l[j * k + j];
            }
        }
        return l;
    }

    /** The textbook route: L = chol(H + λ·mean·I), H⁻¹ = L⁻ᵀL⁻¹, U = chol(H⁻¹)ᵀ, all in double. */
    static double[] referenceUpper(float[] hf, int k, double damp) {
        double[] h = new double[k * k];
        double mean = 0;
        for (int i = 0; i < k; i++) {
            mean += hf[i * k + i] == 0 ? 1 : hf[i * k + i];
        }
        mean /= k;
        for (int e = 0; e < h.length; e++) {
            h[e] = hf[e];
        }
        for (int i = 0; i < k; i++) {
            if (h[i * k + i] == 0) {
                h[i * k + i] = 1;
            }
            h[i * k + i] += damp * mean;
        }
        double[] l = cholesky(h, k);
        double[] linv = new double[k * k]; // forward substitution, column by column
        for (int c = 0; c < k; c++) {
            for (int i = c; i < k; i++) {
                double s = i == c ? 1 : 0;
                for (int p = c; p < i; p++) {
                    s -= l[i * k + p] * linv[p * k + c];
                }
                linv[i * k + c] = s / l[i * k + i];
            }
        }
        double[] hinv = new double[k * k];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    s += linv[p * k + i] * linv[p * k + j];
                }
                hinv[i * k + j] = s;
            }
        }
        double[] l2 = cholesky(hinv, k);
        double[] u = new double[k * k];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                u[i * k + j] = l2[j * k + i];
            }
        }
        return u;
    }
}
