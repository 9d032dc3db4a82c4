package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import java.util.List;

/**
 * The group size G users name with {@code --group-size} and configs store as {@code group_size}: a positive number
 * of input channels per scale, or {@link #PER_ROW} (−1), one group spanning the whole row K of each linear (the
 * GPTQ paper's setting without grouping; "channel" strategy in compressed-tensors).
 *
 * <p>−1 lives only at the edges: the option, the written configs and the readers. Everything between (the
 * quantizers, {@link QuantizedLinear}, the W4 kernels) works with the resolved G = K of each linear ({@link
 * #resolve}), so one code path serves both.
 */
public final class GroupSize {
    /** One group per output row: G = K for each linear. */
    public static final int PER_ROW = -1;

    /**
     * The group sizes vLLM's Marlin kernels take, {@code MARLIN_SUPPORTED_GROUP_SIZES} in vLLM's
     * model_executor/layers/quantization/utils/marlin_utils.py. Any other group size still loads, but
     * gptq_marlin.py then declines the checkpoint and vLLM runs it on its older GPTQ kernel (gptq.py, ExLlama /
     * gptq_gemm), and a compressed-tensors W4A16 checkpoint on a non-Marlin mixed-precision kernel: several times
     * slower at decode.
     */
    public static final List<Integer> MARLIN = List.of(PER_ROW, 32, 64, 128);

    /** The smallest positive group m2q quantizes with (one packed int32 word of codes). */
    public static final int MIN = 8;

    private GroupSize() {}

    /** G for a linear with {@code k} input channels: {@code k} for {@link #PER_ROW}, else {@code groupSize}. */
    public static int resolve(int groupSize, int k) {
        return groupSize == PER_ROW ? k : groupSize;
    }

    /** Whether Marlin takes {@code groupSize} (see {@link #MARLIN}). */
    public static boolean isMarlin(int groupSize) {
        return MARLIN.contains(groupSize);
    }

    /**
     * The warning for a group size Marlin lacks, or null when Marlin takes it: the release still loads, on a
     * slower kernel.
     */
    public static String marlinWarning(int groupSize) {
        if (isMarlin(groupSize)) {
            return null;
        }
        return "group size " + groupSize + " is not one of vLLM's Marlin group sizes (-1, 32, 64, 128): vLLM loads"
                + " it on its slower GPTQ (ExLlama) kernel for gptq/auto_round releases, or a non-Marlin kernel for"
                + " compressed-tensors, several times slower at decode; --group-size 128 is the usual choice";
    }

    /** "g128", or "per-row (g -1)" for {@link #PER_ROW}: how logs name the setting. */
    public static String label(int groupSize) {
        return groupSize == PER_ROW ? "per-row (g -1)" : "g" + groupSize;
    }

    /**
     * Checks a {@code --group-size} value.
     *
     * @throws InputException unless it is −1 or at least {@link #MIN}
     */
    public static int require(int groupSize) {
        if (groupSize != PER_ROW && groupSize < MIN) {
            throw new InputException("--group-size " + groupSize + ": must be -1 (one group per row) or at least " + MIN
                    + "; 128 is the usual choice");
        }
        return groupSize;
    }
}
