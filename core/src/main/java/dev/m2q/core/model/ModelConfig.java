package dev.m2q.core.model;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parts of a Hugging Face {@code config.json} the Qwen2/Llama decoder needs. Validated on construction: a
 * config that cannot describe a working model is refused with the key that is wrong.
 *
 * @param ropeScalingFactor 1 when {@code rope_scaling} is null; the linear factor otherwise
 */
public record ModelConfig(
        ArchSpec arch,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        double rmsNormEps,
        double ropeTheta,
        double ropeScalingFactor,
        int maxPositionEmbeddings,
        int vocabSize,
        boolean tieWordEmbeddings,
        boolean attentionBias,
        String torchDtype,
        Quantization quantization) {

    /**
     * The {@code quantization_config} of an already quantized checkpoint (null for a bf16 source).
     *
     * @param method {@link #GPTQ}, {@link #AUTO_ROUND} (its "auto_round:auto_gptq" packing is the GPTQ layout) or
     *     {@link #COMPRESSED_TENSORS} ("pack-quantized": weight_packed / weight_scale / weight_shape)
     * @param descAct GPTQ's desc_act, or a compressed-tensors actorder that stores a g_idx
     */
    public record Quantization(String method, int bits, int groupSize, boolean sym, boolean descAct) {
        public static final String GPTQ = "gptq";
        public static final String AUTO_ROUND = "auto-round";
        public static final String COMPRESSED_TENSORS = "compressed-tensors";

        /** True for the layouts that store qweight / qzeros / scales / g_idx (GPTQ and AutoRound's GPTQ packing). */
        public boolean gptqTensors() {
            return !COMPRESSED_TENSORS.equals(method);
        }
    }

    public ModelConfig {
        positive("hidden_size", hiddenSize);
        positive("intermediate_size", intermediateSize);
        positive("num_hidden_layers", numLayers);
        positive("num_attention_heads", numHeads);
        positive("num_key_value_heads", numKvHeads);
        positive("head_dim", headDim);
        positive("max_position_embeddings", maxPositionEmbeddings);
        positive("vocab_size", vocabSize);
        if (numHeads % numKvHeads != 0) {
            throw new InputException("config.json: num_attention_heads (" + numHeads
                    + ") is not a multiple of num_key_value_heads (" + numKvHeads + ")");
        }
        if (headDim % 2 != 0) {
            throw new InputException("config.json: head_dim " + headDim + " must be even for rotary embeddings");
        }
        if (!(rmsNormEps > 0) || !(ropeTheta > 0) || !(ropeScalingFactor > 0)) {
            throw new InputException("config.json: rms_norm_eps, rope_theta and the rope scaling factor must be > 0");
        }
    }

    /** Width of the query projection output: heads × head_dim. */
    public int qDim() {
        return numHeads * headDim;
    }

    /** Width of each of the key and value projection outputs: kv_heads × head_dim. */
    public int kvDim() {
        return numKvHeads * headDim;
    }

    /**
     * Every tensor name this config implies, with its shape, in checkpoint order: embeddings, then each layer's
     * norms, projections (and q/k/v biases when the family has them), then the final norm and, when untied,
     * lm_head.
     */
    public Map<String, long[]> expectedShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        long h = hiddenSize;
        m.put("model.embed_tokens.weight", new long[] {vocabSize, h});
        for (int i = 0; i < numLayers; i++) {
            String p = arch.layerPrefix() + i + ".";
            m.put(p + "input_layernorm.weight", new long[] {h});
            m.put(p + "self_attn.q_proj.weight", new long[] {qDim(), h});
            m.put(p + "self_attn.k_proj.weight", new long[] {kvDim(), h});
            m.put(p + "self_attn.v_proj.weight", new long[] {kvDim(), h});
            if (attentionBias) {
                m.put(p + "self_attn.q_proj.bias", new long[] {qDim()});
                m.put(p + "self_attn.k_proj.bias", new long[] {kvDim()});
                m.put(p + "self_attn.v_proj.bias", new long[] {kvDim()});
            }
            m.put(p + "self_attn.o_proj.weight", new long[] {h, qDim()});
            m.put(p + "post_attention_layernorm.weight", new long[] {h});
            m.put(p + "mlp.gate_proj.weight", new long[] {intermediateSize, h});
            m.put(p + "mlp.up_proj.weight", new long[] {intermediateSize, h});
            m.put(p + "mlp.down_proj.weight", new long[] {h, intermediateSize});
        }
        m.put("model.norm.weight", new long[] {h});
        if (!tieWordEmbeddings) {
            m.put("lm_head.weight", new long[] {vocabSize, h});
        }
        return m;
    }

    /** Reads {@code dir/config.json}. */
    public static ModelConfig load(Path dir) {
        Path file = Files.isDirectory(dir) ? dir.resolve("config.json") : dir;
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + ": no config.json (expected a Hugging Face model directory)");
        }
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        }
        try {
            return parse(Json.parseObject(text));
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        } catch (InputException e) {
            throw new InputException(file + ": " + e.getMessage().replaceFirst("^config\\.json: ", ""), e);
        }
    }

    /** Builds a config from the parsed {@code config.json} object. */
    public static ModelConfig parse(Map<String, Object> c) {
        Object archs = c.get("architectures");
        if (!(archs instanceof List<?> list) || list.isEmpty() || !(list.getFirst() instanceof String)) {
            throw new InputException("config.json: \"architectures\" must be a non-empty list of names");
        }
        ArchSpec arch = ArchSpec.forArchitecture((String) list.getFirst());
        int hidden = intKey(c, "hidden_size", null);
        int heads = intKey(c, "num_attention_heads", null);
        int kvHeads = intKey(c, "num_key_value_heads", heads);
        int headDim = c.get("head_dim") == null ? hidden / heads : intKey(c, "head_dim", null);
        if (c.get("head_dim") == null && hidden % heads != 0) {
            throw new InputException("config.json: hidden_size " + hidden + " is not divisible by num_attention_heads "
                    + heads + " and head_dim is absent");
        }
        double scaling = 1.0;
        Object rs = c.get("rope_scaling");
        if (rs != null) {
            if (!(rs instanceof Map<?, ?> m)) {
                throw new InputException("config.json: rope_scaling must be an object or null");
            }
            Object type = m.containsKey("rope_type") ? m.get("rope_type") : m.get("type");
            if ("linear".equals(type)) {
                scaling = number(m.get("factor"), "rope_scaling.factor");
            } else if (!"default".equals(type)) {
                throw new InputException("config.json: rope_scaling type \"" + type
                        + "\" is not supported (supported: null, \"default\", \"linear\")");
            }
        }
        boolean bias = arch.qkvBias();
        if (c.get("attention_bias") instanceof Boolean b) {
            bias = b;
        }
        if (Boolean.TRUE.equals(c.get("mlp_bias"))) {
            throw new InputException("config.json: mlp_bias=true is not supported");
        }
        return new ModelConfig(
                arch,
                hidden,
                intKey(c, "intermediate_size", null),
                intKey(c, "num_hidden_layers", null),
                heads,
                kvHeads,
                headDim,
                c.containsKey("rms_norm_eps") ? number(c.get("rms_norm_eps"), "rms_norm_eps") : 1e-6,
                c.containsKey("rope_theta") ? number(c.get("rope_theta"), "rope_theta") : 10000.0,
                scaling,
                c.containsKey("max_position_embeddings") ? intKey(c, "max_position_embeddings", null) : 4096,
                intKey(c, "vocab_size", null),
                Boolean.TRUE.equals(c.getOrDefault("tie_word_embeddings", Boolean.FALSE)),
                bias,
                c.get("torch_dtype") instanceof String s ? s : "bfloat16",
                quantization(c.get("quantization_config")));
    }

    private static Quantization quantization(Object v) {
        if (v == null) {
            return null;
        }
        if (!(v instanceof Map<?, ?> raw)) {
            throw new InputException("config.json: quantization_config must be an object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> q = (Map<String, Object>) raw;
        Object method = q.get("quant_method");
        if ("compressed-tensors".equals(method)) {
            return compressedTensors(q);
        }
        boolean autoRound = "auto-round".equals(method) || "intel/auto-round".equals(method);
        boolean gptqLayout = "gptq".equals(method)
                || (autoRound && String.valueOf(q.get("packing_format")).contains("gptq"));
        if (!gptqLayout) {
            throw new InputException("config.json: quantization_config.quant_method \"" + method
                    + "\" is not a layout m2q reads (reads: gptq, auto-round with auto_round:auto_gptq packing,"
                    + " compressed-tensors pack-quantized)");
        }
        for (String key : List.of("bits", "group_size", "sym")) {
            if (!q.containsKey(key)) {
                throw new InputException("config.json: quantization_config lacks \"" + key + "\"");
            }
        }
        int bits = intKey(q, "bits", null);
        boolean sym = Boolean.TRUE.equals(q.get("sym"));
        if (bits != 4 || !sym) {
            throw new InputException("config.json: quantization_config has bits=" + bits + ", sym=" + sym
                    + "; m2q reads 4-bit symmetric weights only");
        }
        return new Quantization(
                autoRound ? Quantization.AUTO_ROUND : Quantization.GPTQ,
                bits,
                intKey(q, "group_size", null),
                true,
                Boolean.TRUE.equals(q.get("desc_act")));
    }

    /** compressed-tensors "pack-quantized" with one int4 symmetric group-wise weight scheme (FORMATS.md §4). */
    private static Quantization compressedTensors(Map<String, Object> q) {
        String where = "config.json: quantization_config";
        if (!"pack-quantized".equals(q.get("format"))) {
            throw new InputException(where + ".format is " + Json.write(q.get("format"))
                    + "; m2q reads compressed-tensors \"pack-quantized\" only");
        }
        if (!(q.get("config_groups") instanceof Map<?, ?> groups) || groups.size() != 1) {
            throw new InputException(
                    where + ".config_groups must hold exactly one group (m2q reads one weight scheme)");
        }
        Object group = groups.values().iterator().next();
        if (!(group instanceof Map<?, ?> g) || !(g.get("weights") instanceof Map<?, ?> w)) {
            throw new InputException(
                    where + ".config_groups." + groups.keySet().iterator().next() + " has no \"weights\" object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> weights = (Map<String, Object>) w;
        int bits = intKey(weights, "num_bits", null);
        boolean sym = Boolean.TRUE.equals(weights.get("symmetric"));
        // "channel": one scale per output channel (weight_scale [N, 1]), stored here as group size -1.
        boolean channel = "channel".equals(weights.get("strategy"));
        if (bits != 4
                || !sym
                || !"int".equals(weights.get("type"))
                || !(channel || "group".equals(weights.get("strategy")))) {
            throw new InputException(where + " weights are " + Json.write(weights)
                    + "; m2q reads 4-bit symmetric int weights with strategy \"group\" or \"channel\" only");
        }
        Object actorder = weights.get("actorder");
        return new Quantization(
                Quantization.COMPRESSED_TENSORS,
                bits,
                channel ? -1 : intKey(weights, "group_size", null),
                true,
                "group".equals(actorder) || "dynamic".equals(actorder));
    }

    private static int intKey(Map<String, Object> c, String key, Integer dflt) {
        Object v = c.get(key);
        if (v == null) {
            if (dflt != null) {
                return dflt;
            }
            throw new InputException("config.json: missing \"" + key + "\"");
        }
        if (!(v instanceof Long l) || l < Integer.MIN_VALUE || l > Integer.MAX_VALUE) {
            throw new InputException("config.json: \"" + key + "\" must be an integer, got " + v);
        }
        return (int) (long) l;
    }

    private static double number(Object v, String key) {
        if (!(v instanceof Number n)) {
            throw new InputException("config.json: \"" + key + "\" must be a number, got " + v);
        }
        return n.doubleValue();
    }

    private static void positive(String key, int v) {
        if (v <= 0) {
            throw new InputException("config.json: \"" + key + "\" must be positive, got " + v);
        }
    }
}
