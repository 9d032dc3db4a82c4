package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tensor.DType;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * The GPTQ checkpoint layout (FORMATS.md §2) for 4-bit symmetric weights: per quantized linear {@code <prefix>}
 * with W[N, K], {@code qweight} I32 [K/8, N], {@code qzeros} I32 [K/G, N/8] (v1 zeros: every word 0x77777777),
 * {@code scales} F16 [K/G, N], {@code g_idx} I32 [K] and, where the source has one, {@code bias} F16 [N]. Every
 * other tensor (embeddings, norms, lm_head) keeps its source dtype and shape. At 8 bits (docs/FORMATS-8BIT.md)
 * qweight is [K/4, N] and qzeros [K/G, N/4] with every word 0x7F7F7F7F; the rest is unchanged.
 */
public final class GptqFormat {
    private GptqFormat() {}

    /**
     * The tensors of the GPTQ checkpoint of {@code cfg}, in source order (what the shard plan lays out); with
     * {@code groupSize} −1 ({@link GroupSize#PER_ROW}) qzeros and scales have one row.
     */
    public static List<TensorSpec> plan(ModelConfig cfg, Function<String, TensorView> source, int groupSize) {
        return plan(cfg, source, groupSize, Bits.FOUR);
    }

    /** {@link #plan(ModelConfig, Function, int)} at {@code bits}: 32/b codes per qweight and qzeros word. */
    public static List<TensorSpec> plan(
            ModelConfig cfg, Function<String, TensorView> source, int groupSize, Bits bits) {
        int per = bits.perWord();
        List<TensorSpec> out = new ArrayList<>();
        Map<String, long[]> quantized = quantizedLinears(cfg);
        for (Map.Entry<String, long[]> e : cfg.expectedShapes().entrySet()) {
            String name = e.getKey();
            long[] shape = e.getValue();
            String prefix = name.endsWith(".weight") ? name.substring(0, name.length() - 7) : null;
            String biasOf = name.endsWith(".bias") ? name.substring(0, name.length() - 5) : null;
            if (prefix != null && quantized.containsKey(prefix)) {
                long n = shape[0];
                long k = shape[1];
                long g = GroupSize.resolve(groupSize, (int) k);
                if (k % g != 0 || k % per != 0 || n % per != 0) {
                    throw new InputException(prefix + ": W[" + n + ", " + k + "] cannot be packed with group size "
                            + groupSize + " (K must be a multiple of the group size and of " + per + ", N of " + per
                            + ")");
                }
                out.add(new TensorSpec(prefix + ".qweight", DType.I32, new long[] {k / per, n}));
                out.add(new TensorSpec(prefix + ".qzeros", DType.I32, new long[] {k / g, n / per}));
                out.add(new TensorSpec(prefix + ".scales", DType.F16, new long[] {k / g, n}));
                out.add(new TensorSpec(prefix + ".g_idx", DType.I32, new long[] {k}));
            } else if (biasOf != null && quantized.containsKey(biasOf)) {
                out.add(new TensorSpec(name, DType.F16, shape));
            } else {
                out.add(new TensorSpec(name, source.apply(name).dtype(), shape));
            }
        }
        return out;
    }

    /** Every quantized linear's prefix with its [N, K]. */
    public static Map<String, long[]> quantizedLinears(ModelConfig cfg) {
        Map<String, long[]> m = new LinkedHashMap<>();
        Map<String, long[]> shapes = cfg.expectedShapes();
        for (int l = 0; l < cfg.numLayers(); l++) {
            for (String rel : cfg.arch().linears()) {
                String prefix = cfg.arch().module(l, rel);
                m.put(prefix, shapes.get(prefix + ".weight"));
            }
        }
        return m;
    }

    /** The packed tensors of one linear, checked before they are written. */
    public record Packed(int[] qweight, int[] qzeros, short[] scales, int[] gIdx) {}

    /**
     * Packs {@code q} at its width and checks the result the way a loader will read it: every qzeros word is the
     * symmetric v1 word (0x77777777 at 4 bits, 0x7F7F7F7F at 8) and unpacking qweight and scales gives back exactly
     * the codes and scales the quantizer produced.
     */
    public static Packed pack(String prefix, QuantizedLinear q) {
        int n = q.outFeatures();
        int k = q.inFeatures();
        int groups = k / q.groupSize();
        Bits bits = q.bits();
        Packed p = new Packed(
                GptqPacking.packQweight(q.codes(), k, n, bits),
                GptqPacking.symmetricQzeros(groups, n, bits),
                GptqPacking.scalesF16(q.scales()),
                q.gIdx().clone());
        int zeros = GptqPacking.symmetricZerosWord(bits);
        for (int i = 0; i < p.qzeros().length; i++) {
            if (p.qzeros()[i] != zeros) {
                throw new IllegalStateException(prefix + ".qzeros word " + i + " is 0x"
                        + Integer.toHexString(p.qzeros()[i]) + ", not the v1 symmetric 0x"
                        + Integer.toHexString(zeros));
            }
        }
        if (!java.util.Arrays.equals(GptqPacking.unpackQweight(p.qweight(), k, n, bits), q.codes())) {
            throw new IllegalStateException(prefix + ".qweight does not unpack to the quantizer's codes");
        }
        if (!java.util.Arrays.equals(GptqPacking.scalesFromF16(p.scales()), q.scales())) {
            throw new IllegalStateException(prefix + ".scales are not exactly representable in F16");
        }
        return p;
    }

    /** Writes one quantized linear (and its bias as F16 when it has one). */
    public static void write(CheckpointWriter w, String prefix, Packed p, float[] bias) {
        w.writeInts(prefix + ".qweight", p.qweight());
        w.writeInts(prefix + ".qzeros", p.qzeros());
        w.writeFloats(prefix + ".scales", GptqPacking.scalesFromF16(p.scales()));
        w.writeInts(prefix + ".g_idx", p.gIdx());
        if (bias != null) {
            w.writeFloats(prefix + ".bias", bias);
        }
    }
}
