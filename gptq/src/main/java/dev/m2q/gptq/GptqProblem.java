package dev.m2q.gptq;

import dev.m2q.core.quant.Bits;

/**
 * One linear's input to GPTQ's column loop ({@link GptqKernels#columnLoop}), checked once here for every
 * backend.
 *
 * @param w1 W1 = Wᵀ [K, N] row-major fp32, rows already in act-order (position i holds input channel perm[i])
 *     and dead inputs zeroed; overwritten by the loop (scratch)
 * @param u U [K, K] row-major fp32, the upper Cholesky factor of the (permuted, damped) H⁻¹
 * @param groupSize G, dividing K
 * @param blockSize B, the positions per lazy batch update
 * @param perm position → original input channel, or null for the identity
 * @param staticScales null: each group's scales are computed, with Rtn.scale of the column absmax, from the
 *     current W1 at the group's first position (group of position i = i / G); otherwise the static groups'
 *     scales [K/G, N], given up front, one group per G original channels (group of position i = perm[i] / G)
 * @param bits the code width (docs/FORMATS-8BIT.md); the constructors without it are 4 bits
 * @param clipSearch GPTQ's clipping search: the loop runs once per {@link ScaleRule} of {@link
 *     ScaleRule#CLIP_SEARCH} and each output row keeps the rule with the least loop loss ({@link
 *     GptqLoop#clipSearch}); the static scales, when given, are the first rule's (RTN's absmax), the loop computes
 *     the others' from W1
 */
public record GptqProblem(
        float[] w1,
        float[] u,
        int k,
        int n,
        int groupSize,
        int blockSize,
        int[] perm,
        float[] staticScales,
        Bits bits,
        boolean clipSearch) {
    /** A 4-bit problem without the clipping search. */
    public GptqProblem(
            float[] w1, float[] u, int k, int n, int groupSize, int blockSize, int[] perm, float[] staticScales) {
        this(w1, u, k, n, groupSize, blockSize, perm, staticScales, Bits.FOUR, false);
    }

    /** @throws IllegalArgumentException naming the first argument whose shape does not fit */
    public GptqProblem {
        require(bits != null, "GPTQ column loop: bits is null");
        require(
                k > 0 && n > 0 && groupSize > 0 && k % groupSize == 0 && blockSize > 0,
                "GPTQ column loop: K " + k + " must be a positive multiple of the group size " + groupSize + ", N " + n
                        + " and the block size " + blockSize + " positive");
        require(w1.length >= (long) k * n, "GPTQ column loop: W1 needs [" + k + ", " + n + "] values");
        require(u.length >= (long) k * k, "GPTQ column loop: U needs [" + k + ", " + k + "] values");
        require(
                staticScales == null || staticScales.length >= (long) (k / groupSize) * n,
                "GPTQ column loop: the static scales need [" + k / groupSize + ", " + n + "] values");
        if (perm != null) {
            require(perm.length >= k, "GPTQ column loop: perm has fewer than " + k + " values");
            boolean[] seen = new boolean[k];
            for (int i = 0; i < k; i++) {
                int p = perm[i];
                require(
                        p >= 0 && p < k && !seen[p],
                        "GPTQ column loop: perm is not a permutation of [0, " + k + ") at " + i);
                seen[p] = true;
            }
        }
    }

    /** Whether the groups' scales are fixed up front ({@link #staticScales} given). */
    public boolean staticGroups() {
        return staticScales != null;
    }

    /** K/G. */
    public int groups() {
        return k / groupSize;
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
