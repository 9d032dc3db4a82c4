package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * From the Hessian H to U, the upper Cholesky factor of (H + λ·mean(diag H)·I)⁻¹, which the GPTQ loop reads
 * (ALGORITHMS.md §2): dead inputs first (H_kk = 0 → H_kk = 1; the caller zeroes W[:, k]), then dampening, then
 * the factorization, raising λ by 0.01 after each failure while λ < 1.
 *
 * <p>How U is obtained. With J the reversal permutation (J = Jᵀ = J⁻¹), factor JHJ = L·Lᵀ (L lower). Then
 * H⁻¹ = J·L⁻ᵀ·L⁻¹·J = (J·L⁻¹·J)ᵀ·(J·L⁻¹·J), and J·L⁻¹·J is upper triangular with a positive diagonal: it is the
 * upper Cholesky factor of H⁻¹, by uniqueness. That is the textbook "Cholesky, inverse, Cholesky again" in one
 * factorization and one triangular inversion, and the only step that can fail is the first.
 *
 * <p>fp32 throughout, in place in a single K² buffer (the copy of H that becomes U): the strict upper triangle
 * holds JHJ and is only read, the lower triangle receives L and then L⁻¹, and a retry needs only the saved
 * diagonal. Both steps are unblocked (K³/6 multiply-adds each, as fp32 dot products and axpys through
 * {@link Kernels}); each output element is written by one thread in a fixed order, so the result is the same
 * bits whatever the thread count.
 */
public final class DampedCholesky {
    /** How far λ is raised after each failed factorization. */
    public static final double DAMP_STEP = 0.01;

    /**
     * @param hinvUpper U [K, K] row-major fp32, upper triangular (strict lower triangle 0), UᵀU = (H + λ·m·I)⁻¹
     * @param dampUsed the λ that succeeded
     * @param retries failed factorizations before it
     * @param deadColumns input channels with H_kk = 0, ascending; the caller zeroes W[:, k] for each
     */
    public record Result(float[] hinvUpper, double dampUsed, int retries, int[] deadColumns) {}

    private DampedCholesky() {}

    /** {@link #factor(float[], int, double, Kernels)} with the default kernels. */
    public static Result factor(float[] h, int k, double damp) {
        return factor(h, k, damp, Kernels.fromProperty());
    }

    /**
     * @param h H [K, K] row-major fp32, symmetric; not modified
     * @param damp the first λ to try, in [0, 1)
     * @throws IllegalArgumentException when H has a non-finite entry, or stays non-positive-definite for every
     *     λ below 1
     */
    public static Result factor(float[] h, int k, double damp, Kernels kernels) {
        if (k <= 0 || h.length != (long) k * k) {
            throw new IllegalArgumentException("H must be [" + k + ", " + k + "], got " + h.length + " values");
        }
        if (!(damp >= 0 && damp < 1)) {
            throw new IllegalArgumentException("damp " + damp + " must be in [0, 1)");
        }
        for (int e = 0; e < h.length; e++) {
            if (!Float.isFinite(h[e])) {
                throw new IllegalArgumentException("Hessian entry [" + e / k + ", " + e % k + "] is " + h[e]
                        + ": the calibration activations overflowed or contain NaN; no dampening can fix that");
            }
        }
        // a = JHJ: a[p, q] = h[K−1−p, K−1−q].
        float[] a = new float[k * k];
        for (int p = 0; p < k; p++) {
            int src = (k - 1 - p) * k + (k - 1);
            int dst = p * k;
            for (int q = 0; q < k; q++) {
                a[dst + q] = h[src - q];
            }
        }
        int[] dead = deadColumns(h, k);
        float[] diag = new float[k];
        double sum = 0;
        for (int p = 0; p < k; p++) {
            diag[p] = a[p * k + p] == 0f ? 1f : a[p * k + p];
            sum += diag[p];
        }
        double mean = sum / k;
        int retries = 0;
        double lambda = damp;
        while (!choleskyLower(a, diag, (float) (lambda * mean), k, kernels)) {
            retries++;
            lambda = damp + DAMP_STEP * retries;
            if (lambda >= 1) {
                throw new IllegalArgumentException(String.format(
                        "the Hessian is not positive definite even with damp %.2f (tried %d values from %s): the"
                                + " calibration data is degenerate or corrupt for this layer",
                        damp + DAMP_STEP * (retries - 1), retries, damp));
            }
        }
        invertLowerInPlace(a, k, kernels);
        reverseLowerIntoUpper(a, k);
        return new Result(a, lambda, retries, dead);
    }

    /** Input channels whose H_kk is exactly 0 (never active in the calibration data). */
    public static int[] deadColumns(float[] h, int k) {
        return IntStream.range(0, k).filter(i -> h[i * k + i] == 0f).toArray();
    }

    /**
     * Crout: L into the lower triangle (diagonal included) of a, reading A's strict lower part from the upper
     * triangle (A is symmetric) and its diagonal from diag + shift. Columns in order; within a column the rows are
     * independent and split over threads. False when a pivot is not positive.
     */
    private static boolean choleskyLower(float[] a, float[] diag, float shift, int k, Kernels kernels) {
        for (int j = 0; j < k; j++) {
            int rj = j * k;
            float d = (diag[j] + shift) - kernels.dot(a, rj, a, rj, j);
            if (!(d > 0f) || Float.isInfinite(d)) {
                return false;
            }
            float ljj = (float) Math.sqrt(d);
            a[rj + j] = ljj;
            int col = j;
            Parallel.forRange(k - j - 1, j + 1L, (from, to) -> {
                for (int i = col + 1 + from; i < col + 1 + to; i++) {
                    int ri = i * k;
                    a[ri + col] = (a[rj + i] - kernels.dot(a, ri, a, rj, col)) / ljj;
                }
            });
        }
        return true;
    }

    /**
     * X = L⁻¹ over L in the lower triangle, row by row: row i of X is −(Σ_{p<i} L[i,p]·X[p,:])/L[i,i] with
     * X[i,i] = 1/L[i,i]. Each row's columns are split over threads; every element folds p in order.
     */
    private static void invertLowerInPlace(float[] a, int k, Kernels kernels) {
        float[] li = new float[k];
        for (int i = 0; i < k; i++) {
            int ri = i * k;
            System.arraycopy(a, ri, li, 0, i + 1);
            Arrays.fill(a, ri, ri + i, 0f);
            int row = i;
            Parallel.forRange(i, i / 2 + 1L, (from, to) -> {
                for (int p = from; p < row; p++) {
                    int end = Math.min(to, p + 1);
                    kernels.axpy(li[p], a, p * k + from, a, ri + from, end - from);
                }
                float inv = -1f / li[row];
                for (int j = from; j < to; j++) {
                    a[ri + j] *= inv;
                }
            });
            a[ri + i] = 1f / li[i];
        }
    }

    /** U = J·X·J: U[p, q] = X[K−1−p, K−1−q], moved from the lower triangle to the upper; the lower becomes 0. */
    private static void reverseLowerIntoUpper(float[] a, int k) {
        for (int p = 0; p < k; p++) {
            for (int q = p + 1; q < k; q++) {
                a[p * k + q] = a[(k - 1 - p) * k + (k - 1 - q)];
            }
        }
        for (int p = 0; p < k / 2; p++) {
            int r = k - 1 - p;
            float t = a[p * k + p];
            a[p * k + p] = a[r * k + r];
            a[r * k + r] = t;
        }
        for (int p = 1; p < k; p++) {
            Arrays.fill(a, p * k, p * k + p, 0f);
        }
    }
}
