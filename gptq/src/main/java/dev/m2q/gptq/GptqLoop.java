package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.ClipSearch;
import dev.m2q.core.quant.Rtn;

/**
 * The loop of the GPTQ paper (Frantar et al., 2022, Algorithm 1; IST-DASLab's gptq.py, fasterquant) on W1 = Wᵀ,
 * so the paper's column w_{:,i} is the contiguous row i. In gptq.py's names, with U = Hinv:
 *
 * <pre>
 * for i1 in 0, B, 2B, …:  i2 = min(i1 + B, K)
 *     for i in i1 .. i2 − 1:
 *         if i is a group's first position: scales = Rtn.scale(absmax of W1[i : i + G])   (dynamic groups)
 *         q = Rtn.code(W1[i], scales);  Q1[i] = q
 *         Err1[i − i1] = (W1[i] − Rtn.dequant(q, scales)) / U[i, i]
 *         W1[j] −= U[i, j] · Err1[i − i1]                for j in i + 1 .. i2 − 1   (inside the block)
 *     W1[i2:] −= U[i1:i2, i2:]ᵀ · Err1                                              (the lazy batch update)
 * </pre>
 *
 * <p>The loop also sums Err1² ({@link GptqCodes#errSquares}): per output column in position order with double
 * fused multiply-adds, then over the columns in order. With U the upper Cholesky factor of the damped H⁻¹, W − Q =
 * Err·U, so Σ Err² = tr((W − Q)·H_damped·(W − Q)ᵀ): the proxy loss comes free of any product with H.
 *
 * Each step is one of core's {@link Kernels} operations (axpy, gemmAcc, absMaxColumns), so the result is the same
 * bits over ScalarKernels and VectorKernels; the CUDA loop (gptq.cu) follows the same arithmetic.
 */
public final class GptqLoop {
    private GptqLoop() {}

    /** {@link GptqKernels#columnLoop}, its inner steps on {@code kern}. */
    static GptqCodes run(Kernels kern, GptqProblem p) {
        int k = p.k();
        int n = p.n();
        int g = p.groupSize();
        int b = p.blockSize();
        int[] perm = p.perm();
        float[] w1 = p.w1();
        float[] u = p.u();
        boolean staticGroups = p.staticGroups();
        Bits bits = p.bits();
        float[] scales = staticGroups ? p.staticScales() : new float[p.groups() * n];
        int[] codes = new int[k * n]; // Q1 for every block, row c for original input channel c
        int[] gIdx = new int[k];
        float[] err1 = new float[b * n]; // Err1 [B, N]: the scaled errors of the block's columns
        double[] errSq = new double[n]; // Σ Err1² per output column, in position order
        for (int i1 = 0; i1 < k; i1 += b) {
            int i2 = Math.min(i1 + b, k);
            for (int i = i1; i < i2; i++) {
                int col = perm == null ? i : perm[i]; // original input channel at position i
                int group;
                if (staticGroups) {
                    group = col / g;
                } else {
                    group = i / g;
                    if (i % g == 0) {
                        // The group's scales, over its current weights: all updates issued so far.
                        groupScales(kern, w1, i, g, n, scales, group * n, bits, p.clipSearch());
                    }
                }
                gIdx[col] = group;
                float uii = u[i * k + i];
                int row = i * n;
                int e = (i - i1) * n;
                for (int c = 0; c < n; c++) {
                    float s = scales[group * n + c];
                    int q = Rtn.code(w1[row + c], s, bits);
                    codes[col * n + c] = q;
                    float err = (w1[row + c] - Rtn.dequant(q, s, bits)) / uii;
                    err1[e + c] = err;
                    errSq[c] = Math.fma((double) err, err, errSq[c]);
                }
                // Compensate inside the block: w_j −= err · U_ij for the block's later columns.
                for (int j = i + 1; j < i2; j++) {
                    kern.axpy(-u[i * k + j], err1, e, w1, j * n, n);
                }
            }
            lazyBatchUpdate(kern, w1, u, err1, i1, i2, n, k);
        }
        return new GptqCodes(codes, scales, gIdx, GptqCodes.total(errSq));
    }

    /**
     * W1[i2:, :] −= U[i1:i2, i2:]ᵀ · Err1: the block's errors applied to every later column at once, as one
     * {@link Kernels#gemmAcc} over the rows of W1 (Uᵀ read in place through its strides, −Err1 as B), so each
     * element of W1 continues one in-order FMA chain over the block's columns. Public for the JMH benchmark.
     */
    public static void lazyBatchUpdate(
            Kernels kern, float[] w1, float[] u, float[] err1, int i1, int i2, int n, int k) {
        int cnt = i2 - i1;
        if (i2 >= k) {
            return;
        }
        float[] negErr = new float[cnt * n]; // −Err1 [cnt, N]
        for (int e = 0; e < negErr.length; e++) {
            negErr[e] = -err1[e];
        }
        kern.gemmAcc(k - i2, n, cnt, u, i1 * k + i2, 1, k, negErr, 0, n, w1, i2 * n, n);
    }

    /**
     * RTN's scale at {@code bits} for each output channel over rows [from, from + g) of W1 [*, n], into
     * scales[at, at + n); with {@code clipSearch}, {@link ClipSearch}'s at {@code bits} over the same weights (output
     * channels in parallel).
     *
     * @throws IllegalArgumentException when a weight there is not finite
     */
    static void groupScales(
            Kernels kern, float[] w1, int from, int g, int n, float[] scales, int at, Bits bits, boolean clipSearch) {
        float[] absmax = new float[n];
        kern.absMaxColumns(w1, from * n, g, n, absmax, 0);
        for (int c = 0; c < n; c++) {
            scales[at + c] = groupScale(absmax[c], c, from, g, bits);
        }
        if (clipSearch) {
            Parallel.forRange(n, (long) g * ClipSearch.STEPS, (c0, c1) -> {
                for (int c = c0; c < c1; c++) {
                    scales[at + c] = ClipSearch.scale(w1, from * n + c, n, g, absmax[c], bits);
                }
            });
        }
    }

    /**
     * The scale of output channel {@code output} over W1 rows [from, from + g) from their absmax: Rtn.scale, after
     * the check that the group's weights are finite. Shared with device loops that compute the absmax themselves.
     *
     * @throws IllegalArgumentException when absmax is not finite, or (Rtn.scale's) when the scale overflows fp16
     */
    public static float groupScale(float absmax, int output, int from, int g) {
        return groupScale(absmax, output, from, g, Bits.FOUR);
    }

    /** {@link #groupScale(float, int, int, int)} at {@code bits}: Rtn.scale(absmax, bits). */
    public static float groupScale(float absmax, int output, int from, int g, Bits bits) {
        if (!Float.isFinite(absmax)) {
            throw new IllegalArgumentException("a weight of output " + output + " in inputs " + from + ".."
                    + (from + g - 1) + " became " + absmax
                    + " during GPTQ; the Hessian is ill-conditioned, try a larger --damp");
        }
        return Rtn.scale(absmax, bits);
    }
}
