package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import java.util.Arrays;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link GptqKernels#choleskyInverse} in Java: A + shift·I = L·Lᵀ, then L⁻¹, in the lower triangle of one K² buffer
 * whose strict upper triangle holds A (only read until success). fp32 is blocked (K³/6 multiply-adds each,
 * nearly all in {@link Kernels#gemmAcc}); fp64, the fallback after an fp32 failure, is the row-oriented
 * textbook loop in double with lane-parallel dot products, written to a separate buffer and rounded into the
 * lower triangle only on success.
 */
final class JavaCholesky {
    private JavaCholesky() {}

    /** {@link GptqKernels#choleskyInverse}, its products on {@code kernels}. */
    static boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64, Kernels kernels) {
        if (fp64) {
            return choleskyInverse64(a, diag, shift, k);
        }
        if (!choleskyLower(a, diag, shift, k, kernels)) {
            return false;
        }
        invertLowerInPlace(a, k, kernels);
        return true;
    }

    /** Columns per block of both factorizations. */
    static final int BLOCK = 128;
    /** Columns of X per product in {@link #invertLowerInPlace} (each starts its depth at its first column). */
    private static final int INVERSE_COLUMNS = 256;
    /**
     * Rows per sub-block of a block's own terms in {@link #invertLowerInPlace}: the terms of earlier sub-blocks
     * are one product over many rows, only the last few per row are one-row products.
     */
    private static final int INVERSE_SUB_ROWS = 16;
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
    static boolean choleskyLower(float[] a, float[] diag, float shift, int k, Kernels kernels) {
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
     * column since X is lower triangular), the terms p in I follow: those of earlier sub-blocks of
     * {@value #INVERSE_SUB_ROWS} rows as one product, the rest row by row. Every element is one FMA chain
     * over p in order, so the bits do not depend on the thread count. The strict upper triangle (A, no longer
     * needed) is zeroed first so that X's rows read as zero past their diagonal.
     */
    static void invertLowerInPlace(float[] a, int k, Kernels kernels) {
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
            // The terms p in I, by sub-blocks of rows S = [s0, s1): the terms p < s0 are one product over the
            // finished rows X[i0 : i0 + s0] (columns < i0 + s0; past them those rows are +0, and an FMA of a
            // finite L by +0 onto +0 leaves +0, so skipping them keeps every bit), then p in [s0, r) row by row.
            for (int s0 = 0; s0 < bw; s0 += INVERSE_SUB_ROWS) {
                int s1 = Math.min(bw, s0 + INVERSE_SUB_ROWS);
                if (s0 > 0) {
                    kernels.gemmAcc(
                            s1 - s0, i0 + s0, s0, lrows, s0 * i1 + i0, i1, 1, a, i0 * k, k, a, (i0 + s0) * k, k);
                }
                for (int r = s0; r < s1; r++) {
                    int i = i0 + r;
                    int ri = i * k;
                    kernels.gemmAcc(1, i, r - s0, lrows, r * i1 + i0 + s0, i1, 1, a, (i0 + s0) * k, k, a, ri, k);
                    float lii = lrows[r * i1 + i];
                    float inv = -1f / lii;
                    for (int j = 0; j < i; j++) {
                        a[ri + j] *= inv;
                    }
                    a[ri + i] = 1f / lii;
                }
            }
        }
    }

    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;

    /**
     * fp64: L by rows (L[i, j] = (A[i, j] − Σ_{p<j} L[i, p]·L[j, p]) / L[j, j], rows i &gt; j in parallel
     * for each j), then X = L⁻¹ by columns (L·x_j = e_j, forward substitution, columns in parallel), each
     * element a fixed-order sum, so the bits do not depend on the thread count.
     */
    private static boolean choleskyInverse64(float[] a, float[] diag, float shift, int k) {
        double[] l = new double[k * k]; // L [k, k] row-major, lower triangle
        for (int j = 0; j < k; j++) {
            int rj = j * k;
            double d = (double) diag[j] + shift - dot(l, rj, l, rj, j);
            if (!(d > 0) || Double.isInfinite(d)) {
                return false;
            }
            double ljj = Math.sqrt(d);
            l[rj + j] = ljj;
            int col = j;
            Parallel.forRange(k - j - 1, j + 1L, (from, to) -> {
                for (int i = col + 1 + from; i < col + 1 + to; i++) {
                    int ri = i * k;
                    l[ri + col] = (a[col * k + i] - dot(l, ri, l, col * k, col)) / ljj;
                }
            });
        }
        double[] xt = new double[k * k]; // Xᵀ [k, k]: row j is column j of X = L⁻¹ (entries i ≥ j)
        Parallel.forRange(k, (long) k * k / 2, (from, to) -> {
            for (int j = from; j < to; j++) {
                int rj = j * k;
                for (int i = j; i < k; i++) {
                    int ri = i * k;
                    double s = (i == j ? 1.0 : 0.0) - dot(l, ri + j, xt, rj + j, i - j);
                    xt[rj + i] = s / l[ri + i];
                }
            }
        });
        for (int i = 0; i < k; i++) {
            int ri = i * k;
            for (int j = 0; j <= i; j++) {
                a[ri + j] = (float) xt[j * k + i];
            }
            Arrays.fill(a, ri + i + 1, ri + k, 0f);
        }
        return true;
    }

    /** Σ x[xOff + p]·y[yOff + p] for p &lt; n: lane-wise partial sums in a fixed order, then the lanes in order. */
    private static double dot(double[] x, int xOff, double[] y, int yOff, int n) {
        int p = 0;
        double s = 0;
        if (n >= D.length()) {
            DoubleVector acc = DoubleVector.zero(D);
            for (int bound = D.loopBound(n); p < bound; p += D.length()) {
                acc = DoubleVector.fromArray(D, x, xOff + p).fma(DoubleVector.fromArray(D, y, yOff + p), acc);
            }
            for (int i = 0; i < D.length(); i++) {
                s += acc.lane(i); // lanes in order: reduceLanes(ADD) may reassociate differently when compiled
            }
        }
        for (; p < n; p++) {
            s = Math.fma(x[xOff + p], y[yOff + p], s);
        }
        return s;
    }
}
