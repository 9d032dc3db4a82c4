package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.CompressedTensorsFormat;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/**
 * compressed-tensors "pack-quantized" (FORMATS.md §4; {@link CompressedTensorsFormat} packs its bits), the one
 * format that carries 8-bit activation and FP8 KV-cache scales to vLLM. Its scales are BF16, so every linear is
 * rounded to what the file holds ({@link #asWritten}) before it is written, propagated and replayed.
 *
 * @param actOrder the weights' actorder: whether a g_idx is stored (dynamic groups) and what the config says
 */
public record CompressedTensorsRelease(ActOrder actOrder) implements ReleaseFormat {
    /** config.json's quant_method. */
    public static final String QUANT_METHOD = CompressedTensorsFormat.QUANT_METHOD;

    /** Without act-order. */
    public static final CompressedTensorsRelease NO_ACT_ORDER = new CompressedTensorsRelease(ActOrder.NONE);

    /** compressed-tensors' weights.actorder. */
    public enum ActOrder {
        /** act-order off: actorder null, no g_idx. */
        NONE(null),
        /** act-order with static groups: actorder "weight", no g_idx (the groups stay contiguous). */
        WEIGHT("weight"),
        /** dynamic groups (GPTQ's desc_act): actorder "group", weight_g_idx stored. */
        GROUP("group");

        private final String value;

        ActOrder(String value) {
            this.value = value;
        }

        /** The config's value; null for {@link #NONE}. */
        public String value() {
            return value;
        }

        /** The act-order of GPTQ's options: dynamic groups (desc_act), static groups, or off. */
        public static ActOrder of(boolean descAct, boolean staticGroups) {
            return descAct ? GROUP : staticGroups ? WEIGHT : NONE;
        }

        /**
         * The act-order a compressed-tensors {@code quantization_config} declares in its first group's weights:
         * "group" (or "dynamic") stores a g_idx, "weight" does not; anything else, or no such key, is off.
         */
        static ActOrder of(Map<?, ?> qc) {
            if (qc.get("config_groups") instanceof Map<?, ?> groups
                    && !groups.isEmpty()
                    && groups.values().iterator().next() instanceof Map<?, ?> g
                    && g.get("weights") instanceof Map<?, ?> w) {
                Object a = w.get("actorder");
                if ("group".equals(a) || "dynamic".equals(a)) {
                    return GROUP;
                }
                if ("weight".equals(a)) {
                    return WEIGHT;
                }
            }
            return NONE;
        }
    }

    public CompressedTensorsRelease {
        if (actOrder == null) {
            throw new IllegalArgumentException("an act-order mode is required (NONE when off)");
        }
    }

    @Override
    public String id() {
        return QUANT_METHOD;
    }

    @Override
    public String quantMethod() {
        return QUANT_METHOD;
    }

    /**
     * At 8 bits, refuses 8-bit activations: the W4A8 schemes are 4-bit weights, and group-wise 8-bit weights with
     * 8-bit activations match no engine kernel; an FP8 KV cache is allowed (kv_cache_scheme is independent of the
     * weights).
     */
    @Override
    public void check(QuantScheme scheme, Bits bits) {
        if (bits.value() != 4 && scheme.activations() != null) {
            throw new InputException("--scheme " + scheme.schemeName() + " with --bits " + bits.value()
                    + ": 8-bit activations are written beside 4-bit weights only (the W4A8 schemes); group-wise "
                    + bits.value() + "-bit weights with 8-bit activations have no engine kernel. Use --bits 4, or"
                    + " --bits 8 with 16-bit activations (--kv-cache fp8 combines with either)");
        }
    }

    @Override
    public Optional<String> warning(QuantScheme scheme) {
        return Optional.empty();
    }

    @Override
    public CompressedTensorsRelease withActOrder(ActOrder a) {
        return new CompressedTensorsRelease(a);
    }

    @Override
    public boolean storesF16() {
        return false;
    }

    @Override
    public List<TensorSpec> plan(
            ModelConfig cfg, Function<String, TensorView> source, int groupSize, QuantScheme scheme, Bits bits) {
        return CompressedTensorsFormat.plan(cfg, source, groupSize, scheme, gIdx(), bits);
    }

    /** {@code q} with every scale rounded to BF16 ({@link CompressedTensorsFormat#asWritten}). */
    @Override
    public QuantizedLinear asWritten(QuantizedLinear q) {
        return CompressedTensorsFormat.asWritten(q);
    }

    @Override
    public boolean storesMethodWeights() {
        return false;
    }

    /** Writes the linear, its g_idx with dynamic groups, and its bias copied in the source dtype. */
    @Override
    public void writeLinear(CheckpointWriter w, String prefix, QuantizedLinear q, TensorView bias) {
        CompressedTensorsFormat.write(w, prefix, q, gIdx());
        if (bias != null) {
            w.write(prefix + ".bias", bias);
        }
    }

    /** The static input scales of an 8-bit activation scheme and the FP8 KV cache's k_scale / v_scale. */
    @Override
    public void writeScales(CheckpointWriter w, ModelConfig cfg, int layer, LayerScales scales) {
        scales.inputScales()
                .forEach((rel, s) ->
                        CompressedTensorsFormat.writeInputScale(w, cfg.arch().module(layer, rel), s));
        if (scales.kScale() != null) {
            CompressedTensorsFormat.writeKvScales(
                    w, cfg.arch().module(layer, "self_attn"), scales.kScale(), scales.vScale());
        }
    }

    @Override
    public CompressedTensorsFormat.QuantizationConfig quantizationConfig(Keys keys) {
        return CompressedTensorsFormat.quantizationConfig(
                keys.groupSize(), keys.scheme(), actOrder.value(), keys.bits());
    }

    /** None: the config lives in config.json only. */
    @Override
    public Optional<String> configFile() {
        return Optional.empty();
    }

    private boolean gIdx() {
        return actOrder == ActOrder.GROUP;
    }
}
