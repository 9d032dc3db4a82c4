package dev.m2q.core.quant;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * The compressed-tensors "pack-quantized" layout (FORMATS.md §4), the one format that carries 8-bit activation and
 * FP8 KV-cache scales to vLLM. Per quantized linear {@code <prefix>} with W[N, K]: {@code weight_packed} I32 [N, K/8],
 * the GPTQ qweight transposed (codes = signed value + 8, element 0 in the lowest nibble); {@code weight_scale} BF16
 * [N, K/G] (the model dtype); {@code weight_shape} I64 [2] = [N, K]; {@code weight_g_idx} I32 [K] only for dynamic
 * act-order groups; {@code input_scale} F32 [1] only for static activations. Per layer with an FP8 KV cache:
 * {@code self_attn.k_scale} and {@code self_attn.v_scale}, F32 [1] or [kvHeads, 1, 1]. q/k/v biases keep the source
 * dtype and name; every other tensor is copied. At 8 bits (docs/FORMATS-8BIT.md) {@code weight_packed} is [N, K/4],
 * four codes (signed value + 128) per word, element 0 in the lowest byte, and the config says num_bits 8.
 *
 * <p>The scales are stored in BF16, which has three mantissa bits fewer than the F16 the quantizers round to, so the
 * job first rounds each scale to BF16 ({@link #asWritten}) and carries on with exactly what the file holds: the next
 * layer calibrates on it, {@code --resume} replays it and validate measures it. (Engines already run GPTQ
 * checkpoints of a BF16 model with BF16 scales: vLLM casts the F16 scales to the model dtype at load.)
 */
public final class CompressedTensorsFormat {
    /** config.json's quant_method. */
    public static final String QUANT_METHOD = "compressed-tensors";

    private CompressedTensorsFormat() {}

    /**
     * The tensors of the compressed-tensors checkpoint of {@code cfg}, in source order.
     *
     * @param groupSize G, or −1 ({@link GroupSize#PER_ROW}): the "channel" strategy, weight_scale [N, 1]
     * @param gIdx whether to store weight_g_idx (dynamic act-order groups)
     */
    public static List<TensorSpec> plan(
            ModelConfig cfg, Function<String, TensorView> source, int groupSize, QuantScheme scheme, boolean gIdx) {
        return plan(cfg, source, groupSize, scheme, gIdx, Bits.FOUR);
    }

    /** {@link #plan(ModelConfig, Function, int, QuantScheme, boolean)} at {@code bits}: weight_packed [N, K/(32/b)]. */
    public static List<TensorSpec> plan(
            ModelConfig cfg,
            Function<String, TensorView> source,
            int groupSize,
            QuantScheme scheme,
            boolean gIdx,
            Bits bits) {
        int per = bits.perWord();
        List<TensorSpec> out = new ArrayList<>();
        Map<String, long[]> quantized = GptqFormat.quantizedLinears(cfg);
        for (Map.Entry<String, long[]> e : cfg.expectedShapes().entrySet()) {
            String name = e.getKey();
            long[] shape = e.getValue();
            String prefix = name.endsWith(".weight") ? name.substring(0, name.length() - 7) : null;
            if (prefix != null && quantized.containsKey(prefix)) {
                long n = shape[0];
                long k = shape[1];
                long g = GroupSize.resolve(groupSize, (int) k);
                if (k % g != 0 || k % per != 0) {
                    throw new InputException(prefix + ": W[" + n + ", " + k + "] cannot be packed with group size "
                            + groupSize + " (K must be a multiple of the group size and of " + per + ")");
                }
                out.add(new TensorSpec(prefix + ".weight_packed", DType.I32, new long[] {n, k / per}));
                out.add(new TensorSpec(prefix + ".weight_scale", DType.BF16, new long[] {n, k / g}));
                out.add(new TensorSpec(prefix + ".weight_shape", DType.I64, new long[] {2}));
                if (gIdx) {
                    out.add(new TensorSpec(prefix + ".weight_g_idx", DType.I32, new long[] {k}));
                }
                if (scheme.staticActivations()) {
                    out.add(new TensorSpec(prefix + ".input_scale", DType.F32, new long[] {1}));
                }
                if (scheme.kvCache() != null && prefix.endsWith(".self_attn.v_proj")) {
                    String attn = prefix.substring(0, prefix.length() - ".v_proj".length());
                    long[] kvShape = kvScaleShape(cfg, scheme.kvCache());
                    out.add(new TensorSpec(attn + ".k_scale", DType.F32, kvShape));
                    out.add(new TensorSpec(attn + ".v_scale", DType.F32, kvShape));
                }
            } else {
                out.add(new TensorSpec(name, source.apply(name).dtype(), shape));
            }
        }
        return out;
    }

    /** [1] per tensor, [kvHeads, 1, 1] per head. */
    public static long[] kvScaleShape(ModelConfig cfg, QuantScheme.KvGranularity g) {
        return g == QuantScheme.KvGranularity.HEAD ? new long[] {cfg.numKvHeads(), 1, 1} : new long[] {1};
    }

    /**
     * {@code q} with every scale rounded to BF16 (nearest even), the values the file stores; the codes and the width
     * are kept.
     *
     * @throws IllegalStateException when a rounded scale leaves the F16 range (a scale near 65504)
     */
    public static QuantizedLinear asWritten(QuantizedLinear q) {
        float[] s = q.scales().clone();
        for (int i = 0; i < s.length; i++) {
            s[i] = Bf16.round(s[i]);
        }
        try {
            return new QuantizedLinear(
                    q.outFeatures(), q.inFeatures(), q.groupSize(), q.codes(), s, q.gIdx(), q.bits());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("a weight scale rounded to BF16 is out of range: " + e.getMessage(), e);
        }
    }

    /**
     * weight_packed [N, K/8]: row n packs codes q[8r .. 8r+7, n] into word r, element 0 lowest; at 8 bits [N, K/4],
     * codes q[4r .. 4r+3, n] one per byte.
     */
    public static int[] packRows(QuantizedLinear q) {
        int n = q.outFeatures();
        int k = q.inFeatures();
        int[] qweight = GptqPacking.packQweight(q.codes(), k, n, q.bits());
        int words = k / q.bits().perWord();
        int[] packed = new int[n * words];
        for (int r = 0; r < words; r++) {
            for (int c = 0; c < n; c++) {
                packed[c * words + r] = qweight[r * n + c];
            }
        }
        return packed;
    }

    /**
     * Writes one linear whose scales are already BF16 values ({@link #asWritten}), and its g_idx when planned.
     *
     * @throws IllegalStateException when a scale is not a BF16 value (it would not be stored exactly)
     */
    public static void write(CheckpointWriter w, String prefix, QuantizedLinear q, boolean gIdx) {
        int n = q.outFeatures();
        int groups = q.inFeatures() / q.groupSize();
        float[] transposed = new float[n * groups];
        for (int g = 0; g < groups; g++) {
            for (int c = 0; c < n; c++) {
                float s = q.scales()[g * n + c];
                if (Bf16.round(s) != s) {
                    throw new IllegalStateException(prefix + ": scale " + s + " at [" + g + ", " + c
                            + "] is not a BF16 value; round it with asWritten first");
                }
                transposed[c * groups + g] = s;
            }
        }
        w.writeInts(prefix + ".weight_packed", packRows(q));
        w.writeFloats(prefix + ".weight_scale", transposed);
        w.writeLongs(prefix + ".weight_shape", new long[] {n, q.inFeatures()});
        if (gIdx) {
            w.writeInts(prefix + ".weight_g_idx", q.gIdx());
        }
    }

    /** Writes a static activation scale. */
    public static void writeInputScale(CheckpointWriter w, String prefix, float scale) {
        w.writeFloats(prefix + ".input_scale", new float[] {requirePositive(prefix + ".input_scale", scale)});
    }

    /** Writes one attention layer's KV scales (one value, or one per KV head) under {@code attnPrefix}. */
    public static void writeKvScales(CheckpointWriter w, String attnPrefix, float[] k, float[] v) {
        for (float s : k) {
            requirePositive(attnPrefix + ".k_scale", s);
        }
        for (float s : v) {
            requirePositive(attnPrefix + ".v_scale", s);
        }
        w.writeFloats(attnPrefix + ".k_scale", k);
        w.writeFloats(attnPrefix + ".v_scale", v);
    }

    private static float requirePositive(String name, float s) {
        if (!(s > 0) || Float.isInfinite(s)) {
            throw new IllegalStateException(name + " is " + s + ": a scale must be finite and > 0");
        }
        return s;
    }

    /**
     * config.json's {@code quantization_config} (FORMATS.md §4): one group targeting every Linear but lm_head with
     * 4-bit symmetric int weights in groups, the scheme's input activations (null for W4A16) and KV-cache scheme
     * (null without one).
     *
     * <p>With {@code groupSize} −1 ({@link GroupSize#PER_ROW}) the weights use compressed-tensors' "channel"
     * strategy (one scale per output channel, weight_scale [N, 1], no group_size key; vLLM's CompressedTensorsWNA16
     * reads it, with group_size −1 for its Marlin kernel) and actorder is null whatever is passed: compressed-tensors
     * allows activation ordering with the group strategy only, and with one group per row it changes nothing in
     * the stored tensors.
     *
     * @param actorder compressed-tensors' weights.actorder: null (act-order off), "weight" (act-order with static
     *     groups: no g_idx) or "group" (dynamic groups, weight_g_idx stored)
     */
    public static QuantizationConfig quantizationConfig(int groupSize, QuantScheme scheme, String actorder) {
        return quantizationConfig(groupSize, scheme, actorder, Bits.FOUR);
    }

    /** {@link #quantizationConfig(int, QuantScheme, String)} with weights of {@code bits} (num_bits 4 or 8). */
    public static QuantizationConfig quantizationConfig(int groupSize, QuantScheme scheme, String actorder, Bits bits) {
        boolean channel = groupSize == GroupSize.PER_ROW;
        WeightArgs weights = new WeightArgs(
                bits.value(),
                "int",
                true,
                channel ? "channel" : "group",
                channel ? null : groupSize,
                false,
                channel ? null : actorder);
        ActivationArgs acts = scheme.activations() == null
                ? null
                : new ActivationArgs(
                        8,
                        scheme.activations().type(),
                        scheme.staticActivations() ? "tensor" : "token",
                        !scheme.staticActivations(),
                        true);
        ActivationArgs kv = scheme.kvCache() == null
                ? null
                : new ActivationArgs(
                        8,
                        "float",
                        scheme.kvCache() == QuantScheme.KvGranularity.HEAD ? "attn_head" : "tensor",
                        false,
                        true);
        return new QuantizationConfig(
                QUANT_METHOD,
                "pack-quantized",
                "compressed",
                Map.of("group_0", new ConfigGroup(List.of("Linear"), weights, acts, null)),
                kv,
                List.of("lm_head"));
    }

    /**
     * The {@code quantization_config} m2q writes (keys in the order compressed-tensors writes them; a null is
     * written as null).
     *
     * @param configGroups the one scheme group, {@code group_0}, over every Linear
     * @param kvCacheScheme the FP8 KV cache; null without one
     * @param ignore modules left unquantized
     */
    public record QuantizationConfig(
            @JsonProperty("quant_method") String quantMethod,
            String format,
            @JsonProperty("quantization_status") String quantizationStatus,
            @JsonProperty("config_groups") Map<String, ConfigGroup> configGroups,
            @JsonProperty("kv_cache_scheme") ActivationArgs kvCacheScheme,
            List<String> ignore) {}

    /**
     * A scheme group: the modules it targets and their weights' and activations' quantization.
     *
     * @param inputActivations null for 16-bit activations
     * @param outputActivations always null (m2q quantizes no outputs)
     */
    public record ConfigGroup(
            List<String> targets,
            WeightArgs weights,
            @JsonProperty("input_activations") ActivationArgs inputActivations,
            @JsonProperty("output_activations") ActivationArgs outputActivations) {}

    /**
     * The weights' quantization.
     *
     * @param strategy "group", or "channel" for one group per row
     * @param groupSize G; null (and not written) with the channel strategy
     * @param actorder null, "weight" or "group" (written even when null)
     */
    public record WeightArgs(
            @JsonProperty("num_bits") int numBits,
            String type,
            boolean symmetric,
            String strategy,

            @JsonProperty("group_size") @JsonInclude(JsonInclude.Include.NON_NULL)
            Integer groupSize,

            boolean dynamic,
            String actorder) {}

    /**
     * 8-bit activations' or the KV cache's quantization.
     *
     * @param type "float" (FP8 e4m3) or "int"
     * @param strategy "token" (dynamic) or "tensor" (static) for activations; "tensor" or "attn_head" for the KV
     *     cache
     */
    public record ActivationArgs(
            @JsonProperty("num_bits") int numBits, String type, String strategy, boolean dynamic, boolean symmetric) {}

    /**
     * The 8-bit scheme a compressed-tensors {@code quantization_config} declares: its first group's
     * input_activations and its kv_cache_scheme (W4A16 for any other quant_method). Only what m2q can simulate is
     * accepted: 8-bit symmetric activations, float or int, per token dynamic or per tensor static, and an 8-bit
     * float KV cache per tensor or per attention head with static scales.
     *
     * @throws InputException for anything else, naming the key
     */
    public static QuantScheme scheme(Map<?, ?> qc) {
        if (qc == null || !QUANT_METHOD.equals(qc.get("quant_method"))) {
            return QuantScheme.W4A16;
        }
        String where = "config.json: quantization_config";
        EightBit acts = null;
        boolean isStatic = false;
        if (qc.get("config_groups") instanceof Map<?, ?> groups
                && !groups.isEmpty()
                && groups.values().iterator().next() instanceof Map<?, ?> g
                && g.get("input_activations") instanceof Map<?, ?> a) {
            String at = where + ".config_groups.*.input_activations";
            acts = eightBit(a, at);
            isStatic = switch (String.valueOf(a.get("strategy"))) {
                case "token" -> false;
                case "tensor" -> true;
                default ->
                    throw new InputException(at + ".strategy is " + a.get("strategy")
                            + "; m2q simulates \"token\" (dynamic) or \"tensor\" (static) activations");
            };
            if (!Boolean.valueOf(!isStatic).equals(a.get("dynamic"))) {
                throw new InputException(at + ": strategy " + a.get("strategy") + " needs dynamic " + !isStatic
                        + ", got " + a.get("dynamic"));
            }
        }
        QuantScheme.KvGranularity kv = null;
        if (qc.get("kv_cache_scheme") instanceof Map<?, ?> k) {
            String at = where + ".kv_cache_scheme";
            if (eightBit(k, at) != EightBit.FP8 || !Boolean.FALSE.equals(k.get("dynamic"))) {
                throw new InputException(
                        at + " is " + k + "; m2q simulates an FP8 (float, 8-bit) KV cache with" + " static scales");
            }
            kv = switch (String.valueOf(k.get("strategy"))) {
                case "tensor" -> QuantScheme.KvGranularity.TENSOR;
                case "attn_head" -> QuantScheme.KvGranularity.HEAD;
                default ->
                    throw new InputException(at + ".strategy is " + k.get("strategy")
                            + "; m2q reads \"tensor\" or \"attn_head\" KV scales");
            };
        }
        return new QuantScheme(acts, isStatic, 100, kv);
    }

    /** The scheme declared by {@code dir}'s config.json ({@link #scheme(Map)}). */
    public static QuantScheme scheme(Path dir) {
        Path file = dir.resolve("config.json");
        try {
            return scheme((Map<?, ?>) Json.parseObject(Files.readString(file, StandardCharsets.UTF_8))
                    .get("quantization_config"));
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
    }

    private static EightBit eightBit(Map<?, ?> args, String at) {
        if (!Long.valueOf(8).equals(args.get("num_bits")) || !Boolean.TRUE.equals(args.get("symmetric"))) {
            throw new InputException(at + " is " + args + "; m2q reads 8-bit symmetric quantization only");
        }
        return switch (String.valueOf(args.get("type"))) {
            case "float" -> EightBit.FP8;
            case "int" -> EightBit.INT8;
            default -> throw new InputException(at + ".type is " + args.get("type") + "; expected float or int");
        };
    }
}
