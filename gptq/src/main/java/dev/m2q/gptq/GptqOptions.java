package dev.m2q.gptq;

import dev.m2q.core.InputException;
import dev.m2q.core.quant.GroupSize;

/**
 * GPTQ settings, with the defaults users of GPTQModel expect ({@link #DEFAULTS}).
 *
 * @param bits code width, 4 or 8 (docs/FORMATS-8BIT.md)
 * @param groupSize G, input channels per scale (K must be a multiple), or -1 ({@link GroupSize#PER_ROW}): one group
 *     of the whole row, where static groups and act-order's dynamic groups coincide (g_idx all 0)
 * @param sym symmetric (zero point 2^(bits−1)); m2q writes symmetric only
 * @param damp λ, the dampening fraction of mean(diag H) added to the diagonal, in [0, 1)
 * @param blockSize B, columns per lazy-batch block
 * @param actOrder quantize columns by descending diag(H)
 * @param staticGroups with act-order, fix the group scales on the original column groups before permuting (g_idx
 *     stays k / G); ignored without act-order
 * @param exactLossRows 0 (the default): the report's loss is the loop's own, free; N &gt; 0: also the exact proxy
 *     loss with the undamped H on about N evenly spaced output rows ({@link Gptq#sampledLoss}), which costs a
 *     product with H per sampled row
 * @param clipSearch GPTQ's clipping search ({@code --clip-search}): the column loop once per scale rule of {@link
 *     ScaleRule#CLIP_SEARCH} (RTN's absmax scale, {@link dev.m2q.core.quant.ClipSearch}'s 2.4-norm search, fixed
 *     shrinks of the absmax), each output row keeping the rule whose loop loss (the row's share of
 *     tr((W − Q)·H_damped·(W − Q)ᵀ)) is the smallest, ties to the earlier rule: never above plain GPTQ's loss on any
 *     row ({@link GptqLoop#clipSearch})
 */
public record GptqOptions(
        int bits,
        int groupSize,
        boolean sym,
        double damp,
        int blockSize,
        boolean actOrder,
        boolean staticGroups,
        int exactLossRows,
        boolean clipSearch) {
    public static final GptqOptions DEFAULTS = new GptqOptions(4, 128, true, 0.01, 128, false, true, 0);

    /** The options without the clipping search. */
    public GptqOptions(
            int bits,
            int groupSize,
            boolean sym,
            double damp,
            int blockSize,
            boolean actOrder,
            boolean staticGroups,
            int exactLossRows) {
        this(bits, groupSize, sym, damp, blockSize, actOrder, staticGroups, exactLossRows, false);
    }

    public GptqOptions {
        if ((bits != 4 && bits != 8) || !sym) {
            throw new InputException("m2q writes 4- or 8-bit symmetric GPTQ only: got bits " + bits + ", sym " + sym
                    + " (use --bits 4 or 8 and symmetric quantization)");
        }
        if (!(damp >= 0 && damp < 1)) {
            throw new InputException("--damp " + damp + " must be in [0, 1) (default 0.01)");
        }
        if (blockSize <= 0) {
            throw new InputException("GPTQ block size " + blockSize + " must be positive (default 128)");
        }
        if (exactLossRows < 0) {
            throw new InputException("--exact-loss-rows " + exactLossRows + " must be 0 (off) or positive");
        }
        if (groupSize <= 0 && groupSize != GroupSize.PER_ROW) {
            throw new InputException(
                    "--group-size " + groupSize + " must be positive, or -1 for one group per row (default 128)");
        }
    }

    /** These options with another group size. */
    public GptqOptions withGroupSize(int g) {
        return new GptqOptions(bits, g, sym, damp, blockSize, actOrder, staticGroups, exactLossRows, clipSearch);
    }

    /** These options with another block size. */
    public GptqOptions withBlockSize(int b) {
        return new GptqOptions(bits, groupSize, sym, damp, b, actOrder, staticGroups, exactLossRows, clipSearch);
    }

    /** These options with act-order on or off and the given static-groups choice. */
    public GptqOptions withActOrder(boolean on, boolean staticGroupsOn) {
        return new GptqOptions(bits, groupSize, sym, damp, blockSize, on, staticGroupsOn, exactLossRows, clipSearch);
    }

    /** These options with another dampening fraction. */
    public GptqOptions withDamp(double d) {
        return new GptqOptions(bits, groupSize, sym, d, blockSize, actOrder, staticGroups, exactLossRows, clipSearch);
    }

    /** These options with the clipping search on or off. */
    public GptqOptions withClipSearch(boolean on) {
        return new GptqOptions(bits, groupSize, sym, damp, blockSize, actOrder, staticGroups, exactLossRows, on);
    }

    /** These options with the exact proxy loss on about {@code rows} output rows (0: off). */
    public GptqOptions withExactLossRows(int rows) {
        return new GptqOptions(bits, groupSize, sym, damp, blockSize, actOrder, staticGroups, rows, clipSearch);
    }
}
