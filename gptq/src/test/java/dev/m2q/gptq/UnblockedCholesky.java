package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import java.util.Arrays;

/**
 * The unblocked loops {@link DampedCholesky} used before it was blocked, kept as its reference: Crout column by
 * column (dot products), then the row-by-row triangular inverse (axpys), in place in one K² buffer. Same
 * algorithm and the same fp32 arithmetic per element up to summation order, so the blocked version must agree
 * with it to fp32 accuracy.
 */
final class UnblockedCholesky {
    private static final double DAMP_STEP = DampedCholesky.DAMP_STEP;

    private UnblockedCholesky() {}

    /**
     * @param h H [K, K] row-major fp32, symmetric; not modified
     * @param damp the first λ to try, in [0, 1)
     * @throws IllegalArgumentException when H has a non-finite entry, or stays non-positive-definite for every
     *     λ below 1
     */
    static DampedCholesky.Result factor(float[] h, int k, double damp, Kernels kernels) {
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
        int[] dead = DampedCholesky.deadColumns(h, k);
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
        return new DampedCholesky.Result(a, lambda, retries, dead);
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
