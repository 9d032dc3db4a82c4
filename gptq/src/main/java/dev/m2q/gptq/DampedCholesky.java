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
 * diagonal. Both steps are blocked (K³/6 multiply-adds each, nearly all in {@link Kernels#gemmAcc}); each
 * output element is written by one thread in a fixed order, so the result is the same bits whatever the thread
 * count.
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

    /** Columns per block of both factorizations. */
    static final int BLOCK = 128;
    /** Columns of X per product in {@link #invertLowerInPlace} (each starts its depth at its first column). */
    private static final int INVERSE_COLUMNS = 256;
    /** Rows per tile when moving data between a block's panel and the K² buffer (keeps the panel tile in L1). */
    private static final int COPY_TILE = 64;

    /**
     * Blocked left-looking Cholesky: L into the lower triangle (diagonal included) of a, reading A's strict
     * lower part from the upper triangle (A is symmetric, and this never writes there) and its diagonal from
     * diag + shift. For each block column J = [j0, j1): the panel P = A[j0:, J] − L[j0:, :j0]·L[J, :j0]ᵀ (one
     * {@link Kernels#gemmAcc}, nearly all the flops), then the unblocked factorization of P's top b × b, then
     * the triangular solve of the rows below it (independent rows, split over threads), then P back into a.
     * False when a pivot is not positive.
     */
    private static boolean choleskyLower(float[] a, float[] diag, float shift, int k, Kernels kernels) {
        int bmax = Math.min(BLOCK, k);
        float[] panel = new float[k * bmax]; // P [k − j0, b], row stride b
        float[] lt = new float[Math.max(0, k - bmax) * bmax]; // L[J, :j0]ᵀ [j0, b]
        for (int j0 = 0; j0 < k; j0 += BLOCK) {
            int j1 = Math.min(k, j0 + BLOCK);
            int bw = j1 - j0;
            int rows = k - j0;
            Arrays.fill(panel, 0, rows * bw, 0f);
            if (j0 > 0) {
                for (int p0 = 0; p0 < j0; p0 += COPY_TILE) {
                    int p1 = Math.min(j0, p0 + COPY_TILE);
                    for (int q = 0; q < bw; q++) {
                        int src = (j0 + q) * k;
                        for (int p = p0; p < p1; p++) {
                            lt[p * bw + q] = a[src + p];
                        }
                    }
                }
                kernels.gemmAcc(rows, bw, j0, a, j0 * k, k, 1, lt, 0, bw, panel, 0, bw);
            }
            // P = A − P; A[i, j] (i ≥ j) is a[j, i] above the diagonal, diag[j] + shift on it.
            for (int r0 = 0; r0 < rows; r0 += COPY_TILE) {
                int r1 = Math.min(rows, r0 + COPY_TILE);
                for (int q = 0; q < bw; q++) {
                    int src = (j0 + q) * k + j0;
                    for (int r = Math.max(r0, q + 1); r < r1; r++) {
                        panel[r * bw + q] = a[src + r] - panel[r * bw + q];
                    }
                    if (q >= r0 && q < r1) {
                        panel[q * bw + q] = (diag[j0 + q] + shift) - panel[q * bw + q];
                    }
                }
            }
            // The diagonal block, unblocked (Crout, as the reference loop).
            for (int q = 0; q < bw; q++) {
                int rq = q * bw;
                float d = panel[rq + q] - kernels.dot(panel, rq, panel, rq, q);
                if (!(d > 0f) || Float.isInfinite(d)) {
                    return false;
                }
                float ljj = (float) Math.sqrt(d);
                panel[rq + q] = ljj;
                for (int r = q + 1; r < bw; r++) {
                    panel[r * bw + q] = (panel[r * bw + q] - kernels.dot(panel, r * bw, panel, rq, q)) / ljj;
                }
            }
            // The rows below: L[i, J] = P[i, :]·L_JJ⁻ᵀ, forward substitution per row.
            Parallel.forRange(rows - bw, (long) bw * bw, (from, to) -> {
                for (int r = bw + from; r < bw + to; r++) {
                    int rr = r * bw;
                    for (int q = 0; q < bw; q++) {
                        panel[rr + q] = (panel[rr + q] - kernels.dot(panel, rr, panel, q * bw, q)) / panel[q * bw + q];
                    }
                }
            });
            for (int r = 0; r < rows; r++) {
                System.arraycopy(panel, r * bw, a, (j0 + r) * k + j0, Math.min(bw, r + 1));
            }
        }
        return true;
    }

    /**
     * X = L⁻¹ over L in the lower triangle, by blocks of rows I = [i0, i1): row i of X is
     * −(Σ_{p<i} L[i,p]·X[p,:])/L[i,i] with X[i,i] = 1/L[i,i]. The terms p &lt; i0 are one product
     * T = L[I, :i0]·X[:i0, :i0] ({@link Kernels#gemmAcc}, column blocks starting their depth at their first
     * column since X is lower triangular), the terms p in I follow row by row. Every element is one FMA chain
     * over p in order, so the bits do not depend on the thread count. The strict upper triangle (A, no longer
     * needed) is zeroed first so that X's rows read as zero past their diagonal.
     */
    private static void invertLowerInPlace(float[] a, int k, Kernels kernels) {
        for (int p = 0; p < k; p++) {
            Arrays.fill(a, p * k + p + 1, (p + 1) * k, 0f);
        }
        int bmax = Math.min(BLOCK, k);
        float[] lrows = new float[bmax * k]; // L[I, :i1], row stride i1
        for (int i0 = 0; i0 < k; i0 += BLOCK) {
            int i1 = Math.min(k, i0 + BLOCK);
            int bw = i1 - i0;
            for (int r = 0; r < bw; r++) {
                int ri = (i0 + r) * k;
                System.arraycopy(a, ri, lrows, r * i1, i1);
                Arrays.fill(a, ri, ri + i1, 0f);
            }
            // Rows I of a become T = L[I, :i0]·X[:i0, :i0] (the columns ≥ i0 stay 0).
            for (int jc = 0; jc < i0; jc += INVERSE_COLUMNS) {
                int w = Math.min(INVERSE_COLUMNS, i0 - jc);
                kernels.gemmAcc(bw, w, i0 - jc, lrows, jc, i1, 1, a, jc * k + jc, k, a, i0 * k + jc, k);
            }
            for (int r = 0; r < bw; r++) {
                int i = i0 + r;
                int ri = i * k;
                kernels.gemmAcc(1, i, r, lrows, r * i1 + i0, i1, 1, a, i0 * k, k, a, ri, k);
                float lii = lrows[r * i1 + i];
                float inv = -1f / lii;
                for (int j = 0; j < i; j++) {
                    a[ri + j] *= inv;
                }
                a[ri + i] = 1f / lii;
            }
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
