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
    /**
     * Columns per super-block of the factorization and rows per super-block of the inverse: their leading
     * products run over this many columns (or rows) at once, so that each packed operand of {@link Kernels#gemmAcc}
     * serves four times as many multiply-adds as at {@value #BLOCK}; the blocks inside continue the same chains.
     */
    static final int SUPER = 4 * BLOCK;
    /** Columns of X per product in {@link #invertLowerInPlace} (each starts its depth at its first column). */
    private static final int INVERSE_COLUMNS = 512;
    /**
     * Rows per block at each level of {@link #invertLowerInPlace} below the super-block: a level's product
     * over the rows of its earlier blocks, then its blocks one level down; past the last level, one-row products.
     */
    private static final int[] INVERSE_LEVELS = {BLOCK, 16};
    /** Rows per tile when moving data between a block's panel and the K² buffer (keeps the panel tile in L1). */
    private static final int COPY_TILE = 64;

    /**
     * Blocked left-looking Cholesky: L into the lower triangle (diagonal included) of a, reading A's strict
     * lower part from the upper triangle (A is symmetric, and this never writes there) and its diagonal from
     * diag + shift. For each block column J = [j0, j1): the panel P = A[j0:, J] − L[j0:, :j0]·L[J, :j0]ᵀ, then
     * the unblocked factorization of P's top b × b, then the triangular solve of the rows below it (independent
     * rows, split over threads), then P back into a. False when a pivot is not positive.
     *
     * <p>The product L[j0:, :j0]·L[J, :j0]ᵀ, nearly all the flops, is one FMA chain per element from +0 over
     * p = 0 … j0 − 1. It runs in two {@link Kernels#gemmAcc} calls that continue the same chain: for the
     * super-block S = [s0, s0 + {@value #SUPER}) holding J, the terms p &lt; s0 for all of S's columns at once
     * (N = {@value #SUPER}), then per block the terms p in [s0, j0) (depth below {@value #SUPER}).
     */
    static boolean choleskyLower(float[] a, float[] diag, float shift, int k, Kernels kernels) {
        int smax = Math.min(SUPER, k);
        float[] panel = new float[k * smax]; // the products for S's columns, rows s0.., row stride sw
        float[] lt = new float[Math.max(0, k - Math.min(BLOCK, k)) * smax]; // L[S, :s0]ᵀ, or L[J, s0:j0]ᵀ
        float[] solved = new float[Math.max(0, k - Math.min(BLOCK, k)) * Math.min(BLOCK, k)]; // the rows below J
        for (int s0 = 0; s0 < k; s0 += SUPER) {
            int sw = Math.min(SUPER, k - s0);
            Arrays.fill(panel, 0, (k - s0) * sw, 0f);
            if (s0 > 0) {
                transposeRows(a, k, s0, sw, 0, s0, lt);
                kernels.gemmAcc(k - s0, sw, s0, a, s0 * k, k, 1, lt, 0, sw, panel, 0, sw);
            }
            for (int j0 = s0; j0 < s0 + sw; j0 += BLOCK) {
                if (!factorBlock(a, diag, shift, k, kernels, panel, lt, solved, s0, sw, j0)) {
                    return false;
                }
            }
        }
        return true;
    }

    /** lt[p·rows + q] = a[(r0 + q)·k + p0 + p] for q &lt; rows, p &lt; depth: L[r0 : r0 + rows, p0 : p0 + depth]ᵀ. */
    private static void transposeRows(float[] a, int k, int r0, int rows, int p0, int depth, float[] lt) {
        int tiles = (depth + COPY_TILE - 1) / COPY_TILE;
        Parallel.forRange(tiles, (long) COPY_TILE * rows, (from, to) -> {
            for (int p = from * COPY_TILE; p < Math.min(depth, to * COPY_TILE); p += COPY_TILE) {
                int p1 = Math.min(depth, p + COPY_TILE);
                for (int q = 0; q < rows; q++) {
                    int src = (r0 + q) * k + p0;
                    for (int t = p; t < p1; t++) {
                        lt[t * rows + q] = a[src + t];
                    }
                }
            }
        });
    }

    /** Block J = [j0, j0 + bw) of super-block S = [s0, s0 + sw), whose panel holds the terms p &lt; s0. */
    private static boolean factorBlock(
            float[] a,
            float[] diag,
            float shift,
            int k,
            Kernels kernels,
            float[] panel,
            float[] lt,
            float[] solved,
            int s0,
            int sw,
            int j0) {
        int bw = Math.min(BLOCK, k - j0);
        int rows = k - j0;
        int base = (j0 - s0) * sw + (j0 - s0); // P[r, q] = panel[base + r·sw + q], r and q from j0
        if (j0 > s0) { // the terms p in [s0, j0), continuing the chains
            transposeRows(a, k, j0, bw, s0, j0 - s0, lt);
            kernels.gemmAcc(rows, bw, j0 - s0, a, j0 * k + s0, k, 1, lt, 0, bw, panel, base, sw);
        }
        // P = A − P; A[i, j] (i ≥ j) is a[j, i] above the diagonal, diag[j] + shift on it.
        // Row tiles over threads: each element is one subtraction, so the split does not change a bit.
        Parallel.forRange((rows + COPY_TILE - 1) / COPY_TILE, (long) COPY_TILE * bw, (from, to) -> {
            for (int r0 = from * COPY_TILE; r0 < Math.min(rows, to * COPY_TILE); r0 += COPY_TILE) {
                int r1 = Math.min(rows, r0 + COPY_TILE);
                for (int q = 0; q < bw; q++) {
                    int src = (j0 + q) * k + j0;
                    for (int r = Math.max(r0, q + 1); r < r1; r++) {
                        panel[base + r * sw + q] = a[src + r] - panel[base + r * sw + q];
                    }
                    if (q >= r0 && q < r1) {
                        panel[base + q * sw + q] = (diag[j0 + q] + shift) - panel[base + q * sw + q];
                    }
                }
            }
        });
        // The diagonal block, unblocked (Crout, as the reference loop).
        for (int q = 0; q < bw; q++) {
            int rq = base + q * sw;
            float d = panel[rq + q] - kernels.dot(panel, rq, panel, rq, q);
            if (!(d > 0f) || Float.isInfinite(d)) {
                return false;
            }
            float ljj = (float) Math.sqrt(d);
            panel[rq + q] = ljj;
            for (int r = q + 1; r < bw; r++) {
                int rr = base + r * sw;
                panel[rr + q] = (panel[rr + q] - kernels.dot(panel, rr, panel, rq, q)) / ljj;
            }
        }
        // The rows below: L[i, J] = P[i, :]·L_JJ⁻ᵀ, as one product with the block's inverse (as MAGMA's trsm does
        // with inverted diagonal blocks): X = L_JJ⁻¹ in invertLowerInPlace's order, then each L[i, j0 + q] one FMA
        // chain from +0 over the block's columns p in order of P[i, p]·X[q, p] (X[q, p] = 0 past p = q).
        int below = rows - bw;
        if (below > 0) {
            float[] inv = new float[bw * bw];
            for (int q = 0; q < bw; q++) {
                System.arraycopy(panel, base + q * sw, inv, q * bw, q + 1);
            }
            invertLowerInPlace(inv, bw, kernels);
            float[] invT = new float[bw * bw]; // Xᵀ, the product's B
            for (int q = 0; q < bw; q++) {
                for (int p = 0; p <= q; p++) {
                    invT[p * bw + q] = inv[q * bw + p];
                }
            }
            Arrays.fill(solved, 0, below * bw, 0f);
            kernels.gemmAcc(below, bw, bw, panel, base + bw * sw, sw, 1, invT, 0, bw, solved, 0, bw);
            for (int r = 0; r < below; r++) {
                System.arraycopy(solved, r * bw, panel, base + (bw + r) * sw, bw);
            }
        }
        Parallel.forRange(rows, bw, (from, to) -> {
            for (int r = from; r < to; r++) {
                System.arraycopy(panel, base + r * sw, a, (j0 + r) * k + j0, Math.min(bw, r + 1));
            }
        });
        return true;
    }

    /**
     * X = L⁻¹ over L in the lower triangle: row i of X is −(Σ_{p<i} L[i,p]·X[p,:])/L[i,i] with X[i,i] = 1/L[i,i],
     * every element one FMA chain over p in increasing order, so the bits do not depend on the blocking or the
     * thread count. By super-blocks of rows I = [i0, i1): the terms p &lt; i0 are one product
     * T = L[I, :i0]·X[:i0, :i0] ({@link Kernels#gemmAcc}, column blocks starting their depth at their first
     * column since X is lower triangular), then {@link #invertRows} adds the terms p in I. The strict upper
     * triangle (A, no longer needed) is zeroed first so that X's rows read as zero past their diagonal.
     */
    static void invertLowerInPlace(float[] a, int k, Kernels kernels) {
        Parallel.forRange(k, k / 2, (from, to) -> {
            for (int p = from; p < to; p++) {
                Arrays.fill(a, p * k + p + 1, (p + 1) * k, 0f);
            }
        });
        int bmax = Math.min(SUPER, k);
        float[] lrows = new float[bmax * k]; // L[I, :i1], row stride i1
        for (int i0 = 0; i0 < k; i0 += SUPER) {
            int i1 = Math.min(k, i0 + SUPER);
            int bw = i1 - i0;
            int first = i0;
            Parallel.forRange(bw, i1, (from, to) -> {
                for (int r = from; r < to; r++) {
                    int ri = (first + r) * k;
                    System.arraycopy(a, ri, lrows, r * i1, i1);
                    Arrays.fill(a, ri, ri + i1, 0f);
                }
            });
            // Rows I of a become T = L[I, :i0]·X[:i0, :i0] (the columns ≥ i0 stay 0).
            for (int jc = 0; jc < i0; jc += INVERSE_COLUMNS) {
                int w = Math.min(INVERSE_COLUMNS, i0 - jc);
                kernels.gemmAcc(bw, w, i0 - jc, lrows, jc, i1, 1, a, jc * k + jc, k, a, i0 * k + jc, k);
            }
            invertRows(a, k, lrows, i0, i1, i0, i1, 0, kernels);
        }
    }

    /**
     * Rows [r0, r1) of X, a range of super-block I = [i0, i1) whose rows of a already hold the terms p &lt; r0:
     * by blocks S = [s0, s1) of {@code INVERSE_LEVELS[level]} rows, the terms p in [r0, s0) are one product over
     * the finished rows X[r0 : s0] (columns &lt; s0; past them those rows are +0, and an FMA of a finite L by +0
     * onto +0 leaves +0, so skipping them keeps every bit), then the block's own terms one level down. Past the
     * last level, rows one by one: the terms p in [r0, i) as one one-row product, then the scaling.
     */
    private static void invertRows(
            float[] a, int k, float[] lrows, int i0, int i1, int r0, int r1, int level, Kernels kernels) {
        if (level == INVERSE_LEVELS.length) {
            for (int i = r0; i < r1; i++) {
                int ri = i * k;
                int li = (i - i0) * i1;
                kernels.gemmAcc(1, i, i - r0, lrows, li + r0, i1, 1, a, r0 * k, k, a, ri, k);
                float lii = lrows[li + i];
                float inv = -1f / lii;
                for (int j = 0; j < i; j++) {
                    a[ri + j] *= inv;
                }
                a[ri + i] = 1f / lii;
            }
            return;
        }
        for (int s0 = r0; s0 < r1; s0 += INVERSE_LEVELS[level]) {
            int s1 = Math.min(r1, s0 + INVERSE_LEVELS[level]);
            if (s0 > r0) {
                kernels.gemmAcc(s1 - s0, s0, s0 - r0, lrows, (s0 - i0) * i1 + r0, i1, 1, a, r0 * k, k, a, s0 * k, k);
            }
            invertRows(a, k, lrows, i0, i1, s0, s1, level + 1, kernels);
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
