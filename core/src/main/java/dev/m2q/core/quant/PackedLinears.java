package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.pipeline.CompressedTensorsRelease;
import dev.m2q.core.pipeline.GptqRelease;
import dev.m2q.core.tensor.DType;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * Reads one quantized linear back from any layout m2q writes, a 4-bit one into a {@link Matrix.W4} (kept packed) and
 * either width as codes ({@link #readCodes}) or as a matrix ({@link #matrix}): the GPTQ layout
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
 *
 * <p>At 8 bits (docs/FORMATS-8BIT.md) the same rules hold with four codes per word: qweight [K/4, N], qzeros
 * [K/G, N/4] all 0x7F7F7F7F, weight_packed [N, K/4] (codes = signed value + 128, element 0 in the lowest byte).
 * There is no 8-bit kernel: such a linear is read as codes and dequantized to fp32.
 */
public final class PackedLinears {
    private PackedLinears() {}

    /**
     * The 4-bit linear {@code prefix} (e.g. "model.layers.3.mlp.down_proj") of shape W[n, k] as stored under {@code
     * q}, kept packed.
     *
     * @param source tensor lookup (throws when a name is absent)
     * @param has whether a tensor name is present
     * @throws InputException when {@code q} is not 4-bit (there is no packed 8-bit matrix), or a rule is broken
     */
    public static Matrix.W4 read(
            Function<String, TensorView> source,
            Predicate<String> has,
            ModelConfig.Quantization q,
            String prefix,
            int n,
            int k) {
        Bits bits = bits(q);
        if (bits.value() != 4) {
            throw new InputException(prefix + ": the release is " + bits.value()
                    + "-bit; the packed W4A16 kernel reads 4-bit linears only");
        }
        Parts p = parts(source, has, q, prefix, n, k, bits);
        return p.view != null
                ? new Matrix.W4(p.view.data(), p.scales, p.gIdx, n, k, p.g)
                : Matrix.W4.of(p.heap, p.scales, p.gIdx, n, k, p.g);
    }

    /**
     * The linear as {@link #read} checks it, for the reference forward: with {@code packed} a 4-bit linear stays a
     * {@link Matrix.W4} for the W4A16 kernel, otherwise it is dequantized to fp32, ŵ = s·(q − zero) (the same
     * products at either width).
     *
     * @throws InputException with {@code packed} on an 8-bit release (the W4A16 kernel has no 8-bit twin), naming
     *     the bits
     */
    public static Matrix matrix(
            Function<String, TensorView> source,
            Predicate<String> has,
            ModelConfig.Quantization q,
            String prefix,
            int n,
            int k,
            boolean packed) {
        Bits bits = bits(q);
        if (bits.value() == 4) {
            Matrix.W4 w4 = read(source, has, q, prefix, n, k);
            return packed ? w4 : new Matrix.F32(w4.dequantize(), n, k);
        }
        if (packed) {
            throw new InputException("--w4-kernel: the release is " + bits.value() + "-bit (quantization_config bits "
                    + bits.value() + "); the packed W4A16 kernel reads 4-bit linears only, run without --w4-kernel"
                    + " to dequantize to fp32");
        }
        Parts p = parts(source, has, q, prefix, n, k, bits);
        int[] codes = GptqPacking.unpackQweight(p.words(), k, n, bits);
        float[] w = new float[n * k];
        int zero = bits.zero();
        for (int i = 0; i < k; i++) {
            int g = p.gIdx[i] * n;
            int c = i * n;
            for (int o = 0; o < n; o++) {
                w[o * k + i] = p.scales[g + o] * (codes[c + o] - zero);
            }
        }
        return new Matrix.F32(w, n, k);
    }

    /**
     * The linear's codes, scales and g_idx at the width {@code q} declares, checked as {@link #read} does (the scales
     * must also be fp16 values, as {@link QuantizedLinear} requires: true of every release m2q writes).
     */
    public static QuantizedLinear readCodes(
            Function<String, TensorView> source,
            Predicate<String> has,
            ModelConfig.Quantization q,
            String prefix,
            int n,
            int k) {
        Bits bits = bits(q);
        Parts p = parts(source, has, q, prefix, n, k, bits);
        return new QuantizedLinear(n, k, p.g, GptqPacking.unpackQweight(p.words(), k, n, bits), p.scales, p.gIdx, bits);
    }

    private static Bits bits(ModelConfig.Quantization q) {
        if (q.bits() != 4 && q.bits() != 8) {
            throw new InputException("quantization_config bits " + q.bits() + ": m2q reads 4- or 8-bit weights");
        }
        return Bits.of(q.bits());
    }

    /**
     * One linear's tensors, checked: qweight in GPTQ orientation [K/(32/b), N], either a view of the mapped file
     * (GPTQ) or words on the heap (compressed-tensors, transposed back); scales [groups, N]; g_idx [K].
     */
    private record Parts(TensorView view, int[] heap, float[] scales, int[] gIdx, int g) {
        int[] words() {
            return heap != null ? heap : view.toIntArray();
        }
    }

    private static Parts parts(
            Function<String, TensorView> source,
            Predicate<String> has,
            ModelConfig.Quantization q,
            String prefix,
            int n,
            int k,
            Bits bits) {
        int g = q.groupSize() == -1 ? k : q.groupSize();
        int per = bits.perWord();
        if (k % g != 0 || k % per != 0) {
            throw new InputException(prefix + ": W[" + n + ", " + k + "] cannot hold groups of " + g
                    + " (K must be a multiple of the group size and of " + per + ")");
        }
        int groups = k / g;
        return switch (q.format()) {
            case GptqRelease r -> gptq(source, has, prefix, n, k, g, groups, bits);
            case CompressedTensorsRelease r -> compressedTensors(source, has, prefix, n, k, g, groups, bits);
        };
    }

    private static Parts gptq(
            Function<String, TensorView> source,
            Predicate<String> has,
            String prefix,
            int n,
            int k,
            int g,
            int groups,
            Bits bits) {
        int per = bits.perWord();
        TensorView qweight = require(source, has, prefix + ".qweight", DType.I32, k / per, n);
        if (n % per != 0) {
            throw new InputException(
                    prefix + ": N = " + n + " is not a multiple of " + per + ", so qzeros cannot pack it");
        }
        TensorView qzeros = require(source, has, prefix + ".qzeros", DType.I32, groups, n / per);
        int sym = GptqPacking.symmetricZerosWord(bits);
        for (long i = 0; i < qzeros.numel(); i++) {
            int word = qzeros.getInt(i);
            if (word != sym) {
                String why = word == GptqLayoutCheck.v2SymZeros(bits)
                        ? "the v2 convention (zero stored without the −1) under a v1 \"gptq\" label: engines would"
                                + " dequantize every weight one step off"
                        : "not the symmetric v1 word 0x" + Integer.toHexString(sym) + " (zero " + bits.zero()
                                + " stored as " + (bits.zero() - 1) + "): m2q reads symmetric " + bits.value()
                                + "-bit only";
                throw new InputException(prefix + ".qzeros[" + i / (n / per) + ", " + i % (n / per) + "] is 0x"
                        + Integer.toHexString(word) + ": " + why);
            }
        }
        TensorView sv = require(source, has, prefix + ".scales", DType.F16, groups, n);
        float[] scales = finite(sv, new float[groups * n], false, groups, n);
        int[] gIdx = groupIndex(require(source, has, prefix + ".g_idx", DType.I32, k), groups);
        return new Parts(qweight, null, scales, gIdx, g);
    }

    private static Parts compressedTensors(
            Function<String, TensorView> source,
            Predicate<String> has,
            String prefix,
            int n,
            int k,
            int g,
            int groups,
            Bits bits) {
        if (has.test(prefix + ".weight_zero_point")) {
            throw new InputException(prefix + ".weight_zero_point is present: an asymmetric scheme, but the config"
                    + " says symmetric (m2q reads symmetric weights only)");
        }
        TensorView shape = require(source, has, prefix + ".weight_shape", DType.I64, 2);
        if (shape.getLong(0) != n || shape.getLong(1) != k) {
            throw new InputException(prefix + ".weight_shape is [" + shape.getLong(0) + ", " + shape.getLong(1)
                    + "] but config.json implies [" + n + ", " + k + "]");
        }
        int words = k / bits.perWord();
        TensorView packed = require(source, has, prefix + ".weight_packed", DType.I32, n, words);
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
        return new Parts(null, qweight, scales, gIdx, g);
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
