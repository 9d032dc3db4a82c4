package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tensor.DType;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * Reads one 4-bit linear back from any layout m2q writes, into a {@link Matrix.W4} (kept packed): the GPTQ layout
 * (FORMATS.md §2, also AutoRound's "auto_round:auto_gptq" packing, §3) and compressed-tensors "pack-quantized"
 * (§4). This is the reader {@code m2q validate} and the reference forward use, so every rule an engine relies on
 * is checked here and a file that breaks one is refused with the tensor and the rule named, never silently
 * dequantized to something else.
 *
 * <ul>
 *   <li>GPTQ: qweight I32 [K/8, N] is used in place (a view of the mapped file); qzeros I32 [K/G, N/8] must be
 *       the v1 symmetric word 0x77777777 everywhere; scales F16 [K/G, N], finite; g_idx I32 [K] in [0, K/G).
 *   <li>compressed-tensors: weight_packed I32 [N, K/8] is the GPTQ qweight transposed (codes = signed value + 8,
 *       element 0 in the lowest nibble) and is transposed back on the heap; weight_scale [N, K/G] in BF16, F16 or
 *       F32, finite; weight_shape I64 [2] = [N, K]; an optional weight_g_idx I32 [K]; a weight_zero_point means
 *       an asymmetric scheme and is refused.
 * </ul>
 */
public final class PackedLinears {
    private PackedLinears() {}

    /**
     * The linear {@code prefix} (e.g. "model.layers.3.mlp.down_proj") of shape W[n, k] as stored under {@code q}.
     *
     * @param source tensor lookup (throws when a name is absent)
     * @param has whether a tensor name is present
     */
    public static Matrix.W4 read(
            Function<String, TensorView> source,
            Predicate<String> has,
            ModelConfig.Quantization q,
            String prefix,
            int n,
            int k) {
        int g = q.groupSize() == -1 ? k : q.groupSize();
        if (k % g != 0 || k % 8 != 0) {
            throw new InputException(prefix + ": W[" + n + ", " + k + "] cannot hold groups of " + g
                    + " (K must be a multiple of the group size and of 8)");
        }
        int groups = k / g;
        return q.gptqTensors()
                ? gptq(source, has, prefix, n, k, g, groups)
                : compressedTensors(source, has, prefix, n, k, g, groups);
    }

    private static Matrix.W4 gptq(
            Function<String, TensorView> source,
            Predicate<String> has,
            String prefix,
            int n,
            int k,
            int g,
            int groups) {
        TensorView qweight = require(source, has, prefix + ".qweight", DType.I32, k / 8, n);
        if (n % 8 != 0) {
            throw new InputException(prefix + ": N = " + n + " is not a multiple of 8, so qzeros cannot pack it");
        }
        TensorView qzeros = require(source, has, prefix + ".qzeros", DType.I32, groups, n / 8);
        for (long i = 0; i < qzeros.numel(); i++) {
            int word = qzeros.getInt(i);
            if (word != GptqPacking.SYMMETRIC_ZEROS_WORD) {
                String why = word == GptqLayoutCheck.V2_SYM_ZEROS
                        ? "the v2 convention (zero stored without the −1) under a v1 \"gptq\" label: engines would"
                                + " dequantize every weight one step off"
                        : "not the symmetric v1 word 0x77777777 (zero 8 stored as 7): m2q reads symmetric 4-bit only";
                throw new InputException(prefix + ".qzeros[" + i / (n / 8) + ", " + i % (n / 8) + "] is 0x"
                        + Integer.toHexString(word) + ": " + why);
            }
        }
        TensorView sv = require(source, has, prefix + ".scales", DType.F16, groups, n);
        float[] scales = finite(sv, new float[groups * n], false, groups, n);
        int[] gIdx = groupIndex(require(source, has, prefix + ".g_idx", DType.I32, k), groups);
        return new Matrix.W4(qweight.data(), scales, gIdx, n, k, g);
    }

    private static Matrix.W4 compressedTensors(
            Function<String, TensorView> source,
            Predicate<String> has,
            String prefix,
            int n,
            int k,
            int g,
            int groups) {
        if (has.test(prefix + ".weight_zero_point")) {
            throw new InputException(prefix + ".weight_zero_point is present: an asymmetric scheme, but the config"
                    + " says symmetric (m2q reads symmetric 4-bit only)");
        }
        TensorView shape = require(source, has, prefix + ".weight_shape", DType.I64, 2);
        if (shape.getLong(0) != n || shape.getLong(1) != k) {
            throw new InputException(prefix + ".weight_shape is [" + shape.getLong(0) + ", " + shape.getLong(1)
                    + "] but config.json implies [" + n + ", " + k + "]");
        }
        TensorView packed = require(source, has, prefix + ".weight_packed", DType.I32, n, k / 8);
        int words = k / 8;
        int[] qweight = new int[words * n];
        for (int row = 0; row < n; row++) {
            long base = (long) row * words;
            for (int r = 0; r < words; r++) {
                qweight[r * n + row] = packed.getInt(base + r);
            }
        }
        if (!has.test(prefix + ".weight_scale")) {
            throw new InputException(prefix + ".weight_scale: missing; every quantized linear needs its weight_scale");
        }
        TensorView sv = source.apply(prefix + ".weight_scale");
        sv.requireDtype(DType.BF16, DType.F16, DType.F32).requireShape(n, groups);
        float[] scales = finite(sv, new float[groups * n], true, groups, n);
        int[] gIdx;
        if (has.test(prefix + ".weight_g_idx")) {
            gIdx = groupIndex(require(source, has, prefix + ".weight_g_idx", DType.I32, k), groups);
        } else {
            gIdx = new int[k];
            for (int i = 0; i < k; i++) {
                gIdx[i] = i / g;
            }
        }
        return Matrix.W4.of(qweight, scales, gIdx, n, k, g);
    }

    private static TensorView require(
            Function<String, TensorView> source, Predicate<String> has, String name, DType dtype, long... shape) {
        if (!has.test(name)) {
            String suffix = name.substring(name.lastIndexOf('.') + 1);
            throw new InputException(name + ": missing; every quantized linear needs its " + suffix);
        }
        return source.apply(name).requireDtype(dtype).requireShape(shape);
    }

    /** Scales into [groups, n] fp32, transposing from [n, groups] when {@code transposed}; refuses NaN/Inf. */
    private static float[] finite(TensorView sv, float[] dst, boolean transposed, int groups, int n) {
        for (int gi = 0; gi < groups; gi++) {
            for (int c = 0; c < n; c++) {
                long src = transposed ? (long) c * groups + gi : (long) gi * n + c;
                float s = sv.getFloat(src);
                if (!Float.isFinite(s)) {
                    throw new InputException(sv.name() + "[" + (transposed ? c + ", " + gi : gi + ", " + c) + "] is "
                            + s + ": every scale must be finite");
                }
                dst[gi * n + c] = s;
            }
        }
        return dst;
    }

    private static int[] groupIndex(TensorView t, int groups) {
        int[] gIdx = t.toIntArray();
        for (int i = 0; i < gIdx.length; i++) {
            if (gIdx[i] < 0 || gIdx[i] >= groups) {
                throw new InputException(
                        t.name() + "[" + i + "] = " + gIdx[i] + ": a group index must lie in [0, " + groups + ")");
            }
        }
        return gIdx;
    }
}
