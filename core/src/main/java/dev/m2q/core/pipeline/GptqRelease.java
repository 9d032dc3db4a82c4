package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * The GPTQ layout (FORMATS.md §2; {@link GptqFormat} packs its bits): qweight, qzeros (v1 symmetric zeros), F16
 * scales and g_idx. Its two labels store exactly the same tensors and differ only in config.json's {@code
 * quantization_config} and the file that repeats it; AutoRound's symmetric export "auto_round:auto_gptq" is this
 * layout. Activation and KV-cache scales are not stored: the config has no activation scheme.
 */
public record GptqRelease(Label label) implements ReleaseFormat {
    /** quant_method "gptq". */
    public static final GptqRelease GPTQ = new GptqRelease(Label.GPTQ);
    /** quant_method "auto-round", packing_format "auto_round:auto_gptq". */
    public static final GptqRelease AUTO_ROUND = new GptqRelease(Label.AUTO_ROUND);

    /** The label: the id, the quant_method and the file beside config.json that repeats the config. */
    public enum Label {
        /** FORMATS.md §2: quant_method "gptq", repeated in quantize_config.json. */
        GPTQ("gptq", "gptq", "quantize_config.json"),
        /**
         * FORMATS.md §3: quant_method "auto-round" with packing_format "auto_round:auto_gptq", repeated in
         * quantization_config.json.
         */
        AUTO_ROUND("auto_round", "auto-round", "quantization_config.json");

        final String id;
        final String quantMethod;
        final String configFile;

        Label(String id, String quantMethod, String configFile) {
            this.id = id;
            this.quantMethod = quantMethod;
            this.configFile = configFile;
        }
    }

    public GptqRelease {
        if (label == null) {
            throw new IllegalArgumentException("a GPTQ label is required");
        }
    }

    @Override
    public String id() {
        return label.id;
    }

    @Override
    public String quantMethod() {
        return label.quantMethod;
    }

    /** Refuses 8-bit activations: the GPTQ config has no activation scheme, so engines would run W4A16. */
    @Override
    public void check(QuantScheme scheme, Bits bits) {
        if (scheme.activations() != null) {
            throw new InputException("--scheme " + scheme.schemeName()
                    + " needs --format compressed-tensors: the GPTQ layout's quantization_config has no activation"
                    + " scheme, so engines would run W4A16");
        }
    }

    @Override
    public Optional<String> warning(QuantScheme scheme) {
        return scheme.kvCache() == null
                ? Optional.empty()
                : Optional.of("warning: --kv-cache fp8 with --format gptq: vLLM and SGLang ignore KV-cache scales in"
                        + " GPTQ checkpoints, so they are calibrated and recorded in m2q-report.jsonl only; write"
                        + " --format compressed-tensors to ship them");
    }

    /** The GPTQ layout carries act-order in the method's keys (desc_act, static_groups): unchanged. */
    @Override
    public GptqRelease withActOrder(CompressedTensorsRelease.ActOrder actOrder) {
        return this;
    }

    @Override
    public boolean storesF16() {
        return true;
    }

    @Override
    public List<TensorSpec> plan(
            ModelConfig cfg, Function<String, TensorView> source, int groupSize, QuantScheme scheme, Bits bits) {
        return GptqFormat.plan(cfg, source, groupSize, bits);
    }

    @Override
    public QuantizedLinear asWritten(QuantizedLinear q) {
        return q;
    }

    @Override
    public boolean storesMethodWeights() {
        return true;
    }

    /** Packs and checks {@code q} ({@link GptqFormat#pack}) and writes it, with the bias as F16. */
    @Override
    public void writeLinear(CheckpointWriter w, String prefix, QuantizedLinear q, TensorView bias) {
        GptqFormat.write(w, prefix, GptqFormat.pack(prefix, q), bias != null ? bias.toFloatArray() : null);
    }

    /** None: engines ignore KV-cache scales in a GPTQ checkpoint (the run warns), and there are no input scales. */
    @Override
    public void writeScales(CheckpointWriter w, ModelConfig cfg, int layer, LayerScales scales) {}

    /**
     * The format's fixed keys, with the method keys merged over the defaults among them (new keys in sorted order, so
     * the bytes do not depend on the map's iteration order). GPTQ: quant_method "gptq", bits, group_size, sym true,
     * desc_act false, lm_head false, then the method's keys (desc_act, static_groups, true_sequential, damp_percent,
     * …; after AutoRound its iters, lr, …), then checkpoint_format "gptq", pack_dtype "int32" and meta {quantizer
     * ["m2q:VERSION"], method}. AUTO_ROUND: quant_method "auto-round", packing_format "auto_round:auto_gptq", bits,
     * group_size, sym true, data_type "int", then the method's keys (iters, nsamples, seqlen, lr, minmax_lr, …), then
     * autoround_version, m2q's version.
     */
    @Override
    public Map<String, Object> quantizationConfig(Keys keys) {
        Map<String, Object> qc = new LinkedHashMap<>();
        int bits = keys.bits().value();
        switch (label) {
            case GPTQ -> {
                qc.put("quant_method", "gptq");
                qc.put("bits", bits);
                qc.put("group_size", keys.groupSize());
                qc.put("sym", true);
                qc.put("desc_act", false);
                qc.put("lm_head", false);
                qc.putAll(new TreeMap<>(keys.methodKeys()));
                qc.put("checkpoint_format", "gptq");
                qc.put("pack_dtype", "int32");
                Map<String, Object> meta = new LinkedHashMap<>();
                meta.put("quantizer", List.of("m2q:" + keys.m2qVersion()));
                meta.put("method", keys.method());
                qc.put("meta", meta);
            }
            case AUTO_ROUND -> {
                qc.put("quant_method", "auto-round");
                qc.put("packing_format", "auto_round:auto_gptq");
                qc.put("bits", bits);
                qc.put("group_size", keys.groupSize());
                qc.put("sym", true);
                qc.put("data_type", "int");
                qc.putAll(new TreeMap<>(keys.methodKeys()));
                qc.put("autoround_version", keys.m2qVersion());
            }
        }
        return qc;
    }

    @Override
    public Optional<String> configFile() {
        return Optional.of(label.configFile);
    }
}
