package dev.m2q.validate;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Kernels;
import java.nio.file.Path;
import java.util.List;

/**
 * What one {@code m2q validate} run compares and how.
 *
 * @param reference the BF16 checkpoint folder
 * @param candidate the quantized release folder (GPTQ, auto_round or compressed-tensors), read back from disk
 * @param text the held-out text file (for the report; ids are already tokenized)
 * @param ids the held-out token ids, scored in non-overlapping windows of {@code seqLen}
 * @param w4Kernel run the candidate on the packed W4A16 kernel instead of dequantizing its linears to fp32
 * @param baselineRtn also quantize the reference with RTN on the fly (same group size) and report it beside
 * @param tpSizes tensor-parallel sizes the format checks apply
 * @param decodeTokens tokens generated per model for the batch-1 decode throughput (0: no throughput figures)
 * @param gates the user's limits; empty ones are not checked
 */
public record ValidateOptions(
        Path reference,
        Path candidate,
        Path text,
        int[] ids,
        int seqLen,
        Kernels kernels,
        boolean w4Kernel,
        boolean baselineRtn,
        List<Integer> tpSizes,
        int decodeTokens,
        Gates gates) {

    public ValidateOptions {
        if (seqLen < 2) {
            throw new InputException("--seqlen must be at least 2, got " + seqLen);
        }
        if (ids.length < 2) {
            throw new InputException(text + ": has " + ids.length + " token(s); the metrics need at least 2");
        }
        if (decodeTokens < 0) {
            throw new InputException("--decode-tokens must be ≥ 0, got " + decodeTokens);
        }
        tpSizes = List.copyOf(tpSizes);
    }

    /**
     * Pass/fail limits.
     *
     * @param maxPplIncreasePercent largest allowed (ppl_cand / ppl_ref − 1)·100, or null
     * @param maxKl largest allowed mean per-token KL(P_ref ‖ P_cand) in nats, or null
     * @param minTop1 smallest allowed fraction of positions whose argmax agrees, in [0, 1], or null
     */
    public record Gates(Double maxPplIncreasePercent, Double maxKl, Double minTop1) {
        public static final Gates NONE = new Gates(null, null, null);

        public Gates {
            if (maxKl != null && !(maxKl >= 0)) {
                throw new InputException("--max-kl must be ≥ 0, got " + maxKl);
            }
            if (minTop1 != null && !(minTop1 >= 0 && minTop1 <= 1)) {
                throw new InputException("--min-top1 is a fraction in [0, 1], got " + minTop1);
            }
            if (maxPplIncreasePercent != null && Double.isNaN(maxPplIncreasePercent)) {
                throw new InputException("--max-ppl-increase must be a number");
            }
        }
    }
}
