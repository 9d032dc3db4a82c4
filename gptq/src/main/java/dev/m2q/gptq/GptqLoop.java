package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.ClipSearch;
import dev.m2q.core.quant.Rtn;
import java.util.Arrays;
import java.util.List;

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
 * <p>The clipping search ({@link GptqProblem#clipSearch}, {@code --clip-search}) uses that the rows are
 * independent: each output column of W1 is quantized and updated from its own weights, its own scales and the
 * shared U only, so its codes and its share of the loss depend only on the rule that sets its scales. It runs the
 * loop once per {@link ScaleRule} (the Cholesky factor is shared) and keeps each row's best ({@link #clipSearch}):
 * GPTQ's own per-row loss judges the scales, error feedback included, where {@link ClipSearch}'s Σ|w − ŵ|^2.4 only
 * sees the weights.
 *
 * <p>Each step is one of core's {@link Kernels} operations (axpy, gemmAcc, the static groups' absMaxColumns) or
 * per-element arithmetic (rounding, the dynamic groups' absmax), so one implementation gives the same bits whatever
 * the thread count. Across implementations the codes, scales and g_idx agree in the tests (GptqKernelsTest), but
 * W1's updates need not round alike: VectorKernels' axpy fuses its whole vectors and ScalarKernels' does not. The
 * CUDA loop (gptq.cu) follows the same arithmetic.
 */
public final class GptqLoop {
    private GptqLoop() {}

    /**
     * {@link GptqKernels#columnLoop}, its inner steps on {@code kern}: one pass of the loop with {@link
     * ScaleRule#ABSMAX}, or with {@link GptqProblem#clipSearch} the per-row choice among {@link
     * ScaleRule#CLIP_SEARCH} ({@link #clipSearch}).
     */
    static GptqCodes run(Kernels kern, GptqProblem p) {
        return run(kern, p, Parallel.threads());
    }

    /** {@link #run(Kernels, GptqProblem)} with each block's output columns in {@code pieces} ranges (same bits). */
    static GptqCodes run(Kernels kern, GptqProblem p, int pieces) {
        if (p.clipSearch()) {
            return clipSearch(kern, p, ScaleRule.CLIP_SEARCH, pieces);
        }
        int n = p.n();
        float[] scales = p.staticGroups() ? p.staticScales() : new float[p.groups() * n];
        int[] codes = new int[p.k() * n];
        int[] gIdx = new int[p.k()];
        double[] errSq = new double[n];
        pass(kern, p, p.w1(), ScaleRule.ABSMAX, scales, codes, gIdx, errSq, pieces);
        return new GptqCodes(codes, scales, gIdx, GptqCodes.total(errSq));
    }

    /**
     * GPTQ's clipping search: the loop once per rule (on a copy of W1, the last rule on W1 itself), keeping for
     * each output row the codes and scales of the rule whose loop loss Σ_i Err1[i, c]² for that row is the smallest;
     * a later rule replaces an earlier one only with a strictly smaller loss, so the first rule keeps ties.
     *
     * <p>Exact: the rows of W1's columns are independent in the loop (each output column c of W1 is quantized,
     * compensated and updated only from its own weights, its own scales and the shared U, every element one
     * in-order FMA chain), so row c of the result is row c of the winning rule's run alone, bit for bit, and the
     * row's loss is that run's: tr((w_c − q_c)·H_damped·(w_c − q_c)ᵀ), the row's share of the layer's output error on
     * the calibration inputs (for the damped H). The total is therefore never above the first rule's (ABSMAX:
     * plain GPTQ) nor any other rule's. Memory: the best rows so far (codes, scales, losses), one candidate, and one
     * copy of W1.
     *
     * <p>Static groups: the problem's static scales are the first rule's (Gptq gives RTN's absmax ones); every other
     * rule's static scales are computed here, per group of G original channels, from W1 as given (rows gathered
     * from their act-order positions back into channel order, so the same bits as computing them before the
     * permutation).
     */
    static GptqCodes clipSearch(Kernels kern, GptqProblem p, List<ScaleRule> rules) {
        return clipSearch(kern, p, rules, Parallel.threads());
    }

    private static GptqCodes clipSearch(Kernels kern, GptqProblem p, List<ScaleRule> rules, int pieces) {
        int k = p.k();
        int n = p.n();
        int groups = p.groups();
        float[] w1 = p.w1();
        float[] work = rules.size() > 1 ? new float[k * n] : null;
        int[] gIdx = new int[k];
        int[] bestCodes = new int[k * n];
        float[] bestScales = new float[groups * n];
        double[] bestErr = new double[n];
        int[] codes = new int[k * n];
        float[] scales = new float[groups * n];
        double[] errSq = new double[n];
        for (int r = 0; r < rules.size(); r++) {
            ScaleRule rule = rules.get(r);
            if (p.staticGroups()) {
                if (r == 0) {
                    System.arraycopy(p.staticScales(), 0, scales, 0, groups * n);
                } else {
                    staticScales(kern, p, rule, scales); // from W1 as given: the last pass has not run yet
                }
            }
            float[] w;
            if (r == rules.size() - 1) {
                w = w1; // the last pass may overwrite the problem's W1 (scratch)
            } else {
                System.arraycopy(w1, 0, work, 0, k * n);
                w = work;
            }
            Arrays.fill(errSq, 0);
            pass(kern, p, w, rule, scales, codes, gIdx, errSq, pieces);
            for (int c = 0; c < n; c++) {
                if (r > 0 && !(errSq[c] < bestErr[c])) {
                    continue;
                }
                bestErr[c] = errSq[c];
                for (int at = c; at < k * n; at += n) {
                    bestCodes[at] = codes[at];
                }
                for (int at = c; at < groups * n; at += n) {
                    bestScales[at] = scales[at];
                }
            }
        }
        return new GptqCodes(bestCodes, bestScales, gIdx, GptqCodes.total(bestErr));
    }

    /**
     * The static groups' scales of {@code rule} into {@code out} [K/G, N]: group gi over original channels
     * [gi·G, gi·G + G), found in W1 at their act-order positions and gathered in channel order.
     */
    private static void staticScales(Kernels kern, GptqProblem p, ScaleRule rule, float[] out) {
        int k = p.k();
        int n = p.n();
        int g = p.groupSize();
        int[] perm = p.perm();
        int[] position = new int[k];
        for (int i = 0; i < k; i++) {
            position[perm == null ? i : perm[i]] = i;
        }
        float[] group = new float[g * n];
        for (int gi = 0; gi < p.groups(); gi++) {
            for (int j = 0; j < g; j++) {
                System.arraycopy(p.w1(), position[gi * g + j] * n, group, j * n, n);
            }
            groupScales(kern, group, 0, g, n, out, gi * n, p.bits(), rule);
        }
    }

    /**
     * One pass of the loop over {@code w1} (overwritten) with {@code rule}'s dynamic scales, or the static ones
     * already in {@code scales}: codes, scales (when dynamic), g_idx, and each output column's Σ Err1² added into
     * {@code errSq} (zeros on entry) in position order.
     */
    private static void pass(
            Kernels kern,
            GptqProblem p,
            float[] w1,
            ScaleRule rule,
            float[] scales,
            int[] codes,
            int[] gIdx,
            double[] errSq,
            int pieces) {
        int k = p.k();
        int n = p.n();
        int g = p.groupSize();
        int b = p.blockSize();
        int[] perm = p.perm();
        float[] u = p.u();
        boolean staticGroups = p.staticGroups();
        float[] err1 = new float[b * n]; // Err1 [B, N]: the scaled errors of the block's columns
        int units = (n + ALIGN - 1) / ALIGN;
        int parts = Math.max(1, Math.min(pieces, units));
        for (int i1 = 0; i1 < k; i1 += b) {
            int i2 = Math.min(i1 + b, k);
            for (int i = i1; i < i2; i++) {
                int col = perm == null ? i : perm[i]; // original input channel at position i
                gIdx[col] = staticGroups ? col / g : i / g;
            }
            // The output columns of W1 are independent within the block (each is rounded, scaled and compensated
            // from its own weights and the shared U), so they split over threads; the boundaries sit at multiples
            // of ALIGN so that every element meets the same arithmetic as in one call over all N (a vector axpy
            // fuses its whole vectors and not its tail).
            int from1 = i1;
            int to2 = i2;
            IllegalArgumentException[] failed = new IllegalArgumentException[parts];
            int[] failedAt = new int[parts];
            Parallel.forRange(parts, (long) (i2 - i1) * (i2 - i1) * n / parts, (q0, q1) -> {
                for (int q = q0; q < q1; q++) {
                    int c0 = Math.min(n, ALIGN * (int) ((long) units * q / parts));
                    int c1 = Math.min(n, ALIGN * (int) ((long) units * (q + 1) / parts));
                    int[] at = {0};
                    try {
                        columns(kern, p, w1, rule, scales, codes, errSq, err1, from1, to2, c0, c1, at);
                    } catch (IllegalArgumentException e) {
                        failed[q] = e;
                        failedAt[q] = at[0];
                    }
                }
            });
            rethrowFirst(failed, failedAt);
            lazyBatchUpdate(kern, w1, u, err1, i1, i2, n, k);
        }
    }

    /** Output columns per unit of the split of {@link #pass}: a multiple of every vector length in use. */
    static final int ALIGN = 64;

    /** The failure the loop on one thread would have met first: the least position, then the least column range. */
    private static void rethrowFirst(IllegalArgumentException[] failed, int[] at) {
        int first = -1;
        for (int q = 0; q < failed.length; q++) {
            if (failed[q] != null && (first < 0 || at[q] < at[first])) {
                first = q;
            }
        }
        if (first >= 0) {
            throw failed[first];
        }
    }

    /**
     * Positions [i1, i2) of the loop for output columns [c0, c1) of W1 (c0 a multiple of {@link #ALIGN}); a group's
     * scale that cannot be formed throws with the position in {@code failedAt[0]}.
     */
    private static void columns(
            Kernels kern,
            GptqProblem p,
            float[] w1,
            ScaleRule rule,
            float[] scales,
            int[] codes,
            double[] errSq,
            float[] err1,
            int i1,
            int i2,
            int c0,
            int c1,
            int[] failedAt) {
        int k = p.k();
        int n = p.n();
        int g = p.groupSize();
        int[] perm = p.perm();
        float[] u = p.u();
        boolean staticGroups = p.staticGroups();
        Bits bits = p.bits();
        float[] absmax = new float[c1 - c0];
        for (int i = i1; i < i2; i++) {
            int col = perm == null ? i : perm[i];
            int group = staticGroups ? col / g : i / g;
            if (!staticGroups && i % g == 0) {
                // The group's scales, over its current weights: all updates issued so far.
                java.util.Arrays.fill(absmax, 0f);
                for (int r = i; r < i + g; r++) {
                    for (int c = c0; c < c1; c++) {
                        absmax[c - c0] = Math.max(absmax[c - c0], Math.abs(w1[r * n + c]));
                    }
                }
                for (int c = c0; c < c1; c++) {
                    try {
                        scales[group * n + c] = groupScale(absmax[c - c0], c, i, g, bits);
                    } catch (IllegalArgumentException e) {
                        failedAt[0] = i;
                        throw e;
                    }
                    if (rule.searches()) {
                        scales[group * n + c] = rule.scale(w1, i * n + c, n, g, absmax[c - c0], bits);
                    }
                }
            }
            float uii = u[i * k + i];
            int row = i * n;
            int e = (i - i1) * n;
            for (int c = c0; c < c1; c++) {
                float s = scales[group * n + c];
                int q = Rtn.code(w1[row + c], s, bits);
                codes[col * n + c] = q;
                float err = (w1[row + c] - Rtn.dequant(q, s, bits)) / uii;
                err1[e + c] = err;
                errSq[c] = Math.fma((double) err, err, errSq[c]);
            }
            // Compensate inside the block: w_j −= err · U_ij for the block's later columns.
            for (int j = i + 1; j < i2; j++) {
                kern.axpy(-u[i * k + j], err1, e + c0, w1, j * n + c0, c1 - c0);
            }
        }
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
     * {@code rule}'s scale at {@code bits} for each output channel over rows [from, from + g) of W1 [*, n], into
     * scales[at, at + n) (the norm search's output channels in parallel).
     *
     * @throws IllegalArgumentException when a weight there is not finite
     */
    static void groupScales(
            Kernels kern, float[] w1, int from, int g, int n, float[] scales, int at, Bits bits, ScaleRule rule) {
        float[] absmax = new float[n];
        kern.absMaxColumns(w1, from * n, g, n, absmax, 0);
        for (int c = 0; c < n; c++) {
            scales[at + c] = groupScale(absmax[c], c, from, g, bits);
        }
        if (rule.searches()) {
            // Output channels over threads (each is its own search): the norm search tries ClipSearch.STEPS scales.
            Parallel.forRange(n, (long) g * (rule.normSearch() ? ClipSearch.STEPS : 1), (c0, c1) -> {
                for (int c = c0; c < c1; c++) {
                    scales[at + c] = rule.scale(w1, from * n + c, n, g, absmax[c], bits);
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
