package dev.m2q.core.model;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.pipeline.CompressedTensorsRelease;
import dev.m2q.core.pipeline.ReleaseFormat;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Function;

/**
 * The parts of a Hugging Face {@code config.json} the Qwen2/Llama decoder needs. Validated on construction: a
 * config that cannot describe a working model is refused with the key that is wrong. Read, not guessed: a key that
 * would change the forward's math in transformers but that this forward does not implement is refused by name
 * ({@link #parse}), and {@link #load} bounds the sizes by the tensors present before anything is sized by them.
 *
 * @param ropeScaling {@code rope_scaling} (or v5's {@code rope_parameters}) as {@link Rope} applies it
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
        RopeScaling ropeScaling,
        int maxPositionEmbeddings,
        int vocabSize,
        boolean tieWordEmbeddings,
        boolean attentionBias,
        String torchDtype,
        Quantization quantization) {

    /**
     * The {@code quantization_config} of an already quantized checkpoint (null for a bf16 source).
     *
     * @param format the release format it declares ({@link ReleaseFormat#of}): the GPTQ layout labelled gptq or
     *     auto-round ("auto_round:auto_gptq" packing), or compressed-tensors ("pack-quantized": weight_packed /
     *     weight_scale / weight_shape)
     * @param descAct GPTQ's desc_act, or a compressed-tensors actorder that stores a g_idx
     */
    public record Quantization(ReleaseFormat format, int bits, int groupSize, boolean sym, boolean descAct) {}

    /** The widest row a Java array holds: no tensor dimension of a loadable checkpoint exceeds it. */
    private static final long MAX_WIDTH = Integer.MAX_VALUE - 8;

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
        if ((long) numHeads * headDim > MAX_WIDTH) {
            throw new InputException("config.json: num_attention_heads × head_dim = " + numHeads + " × " + headDim
                    + " is beyond any loadable projection");
        }
        if (!(rmsNormEps > 0) || !(ropeTheta > 0) || Double.isInfinite(ropeTheta)) {
            throw new InputException("config.json: rms_norm_eps and rope_theta must be positive numbers, got "
                    + rmsNormEps + " and " + ropeTheta);
        }
        Objects.requireNonNull(ropeScaling, "ropeScaling (RopeScaling.NONE for none)");
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
            for (Proj x : List.of(Proj.Q, Proj.K, Proj.V)) {
                m.put(p + x.weight(), x.shape(this));
            }
            if (attentionBias) {
                for (Proj x : List.of(Proj.Q, Proj.K, Proj.V)) {
                    m.put(p + x.bias(), new long[] {x.out(this)});
                }
            }
            m.put(p + Proj.O.weight(), Proj.O.shape(this));
            m.put(p + "post_attention_layernorm.weight", new long[] {h});
            for (Proj x : List.of(Proj.GATE, Proj.UP, Proj.DOWN)) {
                m.put(p + x.weight(), x.shape(this));
            }
        }
        m.put("model.norm.weight", new long[] {h});
        if (!tieWordEmbeddings) {
            m.put("lm_head.weight", new long[] {vocabSize, h});
        }
        return m;
    }

    /**
     * Reads {@code dir/config.json} and, when {@code dir} also holds the weights, {@linkplain #checkAgainst checks}
     * the layer count and sizes against the tensors present: every command (quantize, validate, eagle, inspect, bench)
     * reads its models through here before any of these sizes an allocation.
     */
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
        ModelConfig cfg;
        try {
            cfg = parse(Json.parseObject(text));
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        } catch (InputException e) {
            throw new InputException(file + ": " + e.getMessage().replaceFirst("^config\\.json: ", ""), e);
        }
        if (Files.isDirectory(dir)
                && (Files.isRegularFile(dir.resolve(Checkpoint.INDEX_FILE))
                        || Files.isRegularFile(dir.resolve(Checkpoint.SINGLE_FILE)))) {
            try (Checkpoint ckpt = Checkpoint.open(dir)) {
                try {
                    cfg.checkAgainst(ckpt.names(), name -> ckpt.tensor(name).shape());
                } catch (InputException e) {
                    throw new InputException(file + ": " + e.getMessage().replaceFirst("^config\\.json: ", ""), e);
                }
            }
        }
        return cfg;
    }

    /**
     * The sizes that size allocations, bounded by the tensors present (bf16, GPTQ or compressed-tensors names): the
     * decoder layers found under the family's layer prefix must be exactly num_hidden_layers, the embeddings
     * [vocab_size, hidden_size], layer 0's gate projection intermediate_size wide and its query projection
     * num_attention_heads·head_dim wide; biases the forward would ignore (o_proj, the MLP's, q/k/v ones the config
     * does not declare) and a missing untied lm_head are refused naming the key. Everything else (every shape of every
     * tensor) is checked by the loaders once these bounds hold.
     */
    public void checkAgainst(Set<String> names, Function<String, long[]> shape) {
        String prefix = arch.layerPrefix();
        int maxLayer = -1;
        for (String n : names) {
            if (n.startsWith(prefix)) {
                int dot = n.indexOf('.', prefix.length());
                String index = dot < 0 ? "" : n.substring(prefix.length(), dot);
                if (!index.isEmpty() && index.length() < 10 && index.chars().allMatch(Character::isDigit)) {
                    maxLayer = Math.max(maxLayer, Integer.parseInt(index));
                }
            }
        }
        int found = maxLayer + 1;
        if (found != numLayers) {
            String held = found == 0
                    ? "no decoder layers (no " + prefix + "N.* tensor)"
                    : found + " decoder layers (" + prefix + "0 to " + prefix + maxLayer + ", no " + prefix + found
                            + ")";
            throw new InputException("config.json: num_hidden_layers is " + numLayers + " but the weights hold " + held
                    + (found == 0 ? "" : "; set num_hidden_layers to " + found));
        }
        long[] embed = names.contains(EMBED) ? shape.apply(EMBED) : null;
        if (embed != null && (embed.length != 2 || embed[0] != vocabSize || embed[1] != hiddenSize)) {
            throw new InputException("config.json: vocab_size " + vocabSize + " and hidden_size " + hiddenSize
                    + " disagree with " + EMBED + " " + Arrays.toString(embed));
        }
        String p0 = prefix + "0.";
        checkWidth(names, shape, p0 + Proj.GATE.path(), "intermediate_size", intermediateSize);
        checkWidth(names, shape, p0 + Proj.Q.path(), "num_attention_heads × head_dim", qDim());
        for (Proj x : Proj.values()) {
            String module = x.path();
            if (!x.takesAttentionBias() && names.contains(p0 + x.bias())) {
                throw new InputException("config.json: the weights hold " + p0 + module + ".bias, which this"
                        + " forward has no place for (no " + module + " bias is implemented)");
            }
        }
        boolean qBias = names.contains(p0 + Proj.Q.bias());
        if (qBias && !attentionBias) {
            throw new InputException("config.json: attention_bias is false but the weights hold " + p0 + Proj.Q.bias()
                    + ", which the forward would ignore; set attention_bias to true");
        }
        if (!qBias && attentionBias) {
            throw new InputException("config.json: q/k/v biases are implied (attention_bias, or the " + arch.family()
                    + " default) but the weights hold no " + p0 + Proj.Q.bias());
        }
        if (!tieWordEmbeddings && !names.contains("lm_head.weight") && names.contains(EMBED)) {
            throw new InputException("config.json: tie_word_embeddings is false but the weights hold no"
                    + " lm_head.weight; set it to true if the output head shares the embeddings");
        }
    }

    private static final String EMBED = "model.embed_tokens.weight";

    /**
     * The output width of a linear, from whichever layout holds it: bf16 "weight" [out, in], GPTQ "qweight" [in/8,
     * out] or compressed-tensors "weight_packed" [out, in/8].
     */
    private static void checkWidth(
            Set<String> names, Function<String, long[]> shape, String module, String key, int expected) {
        long found = -1;
        if (names.contains(module + ".weight")) {
            found = first(shape.apply(module + ".weight"), 0);
        } else if (names.contains(module + ".qweight")) {
            found = first(shape.apply(module + ".qweight"), 1);
        } else if (names.contains(module + ".weight_packed")) {
            found = first(shape.apply(module + ".weight_packed"), 0);
        }
        if (found >= 0 && found != expected) {
            throw new InputException("config.json: " + key + " is " + expected + " but " + module + " is " + found
                    + " wide in the weights");
        }
    }

    private static long first(long[] shape, int axis) {
        return shape.length == 2 ? shape[axis] : -1;
    }

    /**
     * Builds a config from the parsed {@code config.json} object. Keys that change the math of transformers' Qwen2
     * or Llama forward but not of this one are refused by name: a {@code hidden_act} other than silu, an active
     * sliding window (Qwen2: {@code use_sliding_window} with a {@code sliding_window} shorter than the positions,
     * on the layers from {@code max_window_layers} or those {@code layer_types} marks), {@code mlp_bias},
     * {@code attention_bias} on Llama (it adds an o_proj bias), {@code partial_rotary_factor} ≠ 1, logit
     * soft-capping, q/k norms, and rope_scaling types other than linear, llama3 and yarn. Keys that do not change
     * inference ({@code attention_dropout}, {@code initializer_range}, {@code use_cache}, {@code torch_dtype},
     * {@code pretraining_tp}: transformers' tensor-parallel split of the same products) are read or ignored.
     */
    public static ModelConfig parse(Map<String, Object> c) {
        Object archs = c.get("architectures");
        if (!(archs instanceof List<?> list) || list.isEmpty() || !(list.getFirst() instanceof String)) {
            throw new InputException("config.json: \"architectures\" must be a non-empty list of names");
        }
        ArchSpec arch = ArchSpec.forArchitecture((String) list.getFirst());
        int hidden = intKey(c, "hidden_size", null);
        int heads = intKey(c, "num_attention_heads", null);
        int kvHeads = intKey(c, "num_key_value_heads", heads);
        positive("num_attention_heads", heads);
        int headDim = c.get("head_dim") == null ? hidden / heads : intKey(c, "head_dim", null);
        if (c.get("head_dim") == null && hidden % heads != 0) {
            throw new InputException("config.json: hidden_size " + hidden + " is not divisible by num_attention_heads "
                    + heads + " and head_dim is absent");
        }
        int layers = intKey(c, "num_hidden_layers", null);
        int maxPositions = c.containsKey("max_position_embeddings") ? intKey(c, "max_position_embeddings", null) : 4096;
        refuseUnimplemented(c, arch, layers, maxPositions);
        double theta = c.containsKey("rope_theta") ? number(c.get("rope_theta"), "rope_theta") : 10000.0;
        Object scaling = c.get("rope_scaling");
        if (c.get("rope_parameters") instanceof Map<?, ?> rp) {
            // transformers v5 writes rope_theta and the scaling into one object
            if (rp.get("rope_theta") != null) {
                double t = number(rp.get("rope_theta"), "rope_parameters.rope_theta");
                if (c.containsKey("rope_theta") && t != theta) {
                    throw new InputException(
                            "config.json: rope_theta " + theta + " and rope_parameters.rope_theta " + t + " disagree");
                }
                theta = t;
            }
            partialRotary(rp.get("partial_rotary_factor"), "rope_parameters.partial_rotary_factor");
            if (scaling == null) {
                scaling = rp;
            }
        } else if (c.get("rope_parameters") != null) {
            throw new InputException("config.json: rope_parameters must be an object, got " + c.get("rope_parameters"));
        }
        boolean bias = arch.qkvBias();
        if (c.get("attention_bias") instanceof Boolean b) {
            bias = b;
        }
        if (bias && !arch.qkvBias()) {
            throw new InputException("config.json: attention_bias=true on " + list.getFirst() + " also puts a bias on"
                    + " o_proj, which this forward does not implement");
        }
        return new ModelConfig(
                arch,
                hidden,
                intKey(c, "intermediate_size", null),
                layers,
                heads,
                kvHeads,
                headDim,
                c.containsKey("rms_norm_eps") ? number(c.get("rms_norm_eps"), "rms_norm_eps") : 1e-6,
                theta,
                RopeScaling.parse(scaling, maxPositions),
                maxPositions,
                intKey(c, "vocab_size", null),
                Boolean.TRUE.equals(c.getOrDefault("tie_word_embeddings", Boolean.FALSE)),
                bias,
                c.get("torch_dtype") instanceof String s ? s : "bfloat16",
                quantization(c.get("quantization_config")));
    }

    /** The keys of {@link #parse}'s refusals, each named with its value and what would make it loadable. */
    private static void refuseUnimplemented(Map<String, Object> c, ArchSpec arch, int layers, int maxPositions) {
        for (String key : List.of("hidden_act", "hidden_activation")) {
            Object act = c.get(key);
            if (act != null && !"silu".equals(act)) {
                throw new InputException("config.json: " + key + " is " + Json.write(act)
                        + "; this forward implements SwiGLU with silu only");
            }
        }
        if (Boolean.TRUE.equals(c.get("mlp_bias"))) {
            throw new InputException("config.json: mlp_bias is true; this forward has no MLP biases");
        }
        partialRotary(c.get("partial_rotary_factor"), "partial_rotary_factor");
        for (String key : List.of("attn_logit_softcapping", "final_logit_softcapping")) {
            if (c.get(key) != null) {
                throw new InputException("config.json: " + key + " is " + c.get(key)
                        + "; logit soft-capping is not implemented (it must be null or absent)");
            }
        }
        for (String key : List.of("use_qk_norm", "qk_norm", "qk_layernorm")) {
            if (Boolean.TRUE.equals(c.get(key))) {
                throw new InputException(
                        "config.json: " + key + " is true; query/key normalization is not implemented");
            }
        }
        if (arch.family().equals("qwen2")) {
            slidingWindow(c, layers, maxPositions);
        }
    }

    /**
     * transformers' Qwen2 applies {@code sliding_window} only with {@code use_sliding_window}, and then on the layers
     * {@code layer_types} marks "sliding_attention" or, without that list, on layers ≥ {@code max_window_layers}
     * (default 28). A window at least max_position_embeddings long never masks anything and is accepted.
     */
    private static void slidingWindow(Map<String, Object> c, int layers, int maxPositions) {
        if (!Boolean.TRUE.equals(c.get("use_sliding_window")) || c.get("sliding_window") == null) {
            return;
        }
        int window = intKey(c, "sliding_window", null);
        if (window >= maxPositions) {
            return;
        }
        boolean active;
        String where;
        if (c.get("layer_types") instanceof List<?> types) {
            active = types.contains("sliding_attention");
            where = "layer_types marks sliding_attention layers";
        } else {
            int from = c.containsKey("max_window_layers") ? intKey(c, "max_window_layers", null) : 28;
            active = from < layers;
            where = "max_window_layers " + from + " < num_hidden_layers " + layers;
        }
        if (active) {
            throw new InputException("config.json: use_sliding_window is true with sliding_window " + window + " and "
                    + where + "; sliding-window attention is not implemented (only full attention)");
        }
    }

    private static void partialRotary(Object v, String key) {
        if (v != null && number(v, key) != 1.0) {
            throw new InputException(
                    "config.json: " + key + " is " + v + "; only full-width rotary embeddings (1.0) are implemented");
        }
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
        ReleaseFormat format = ReleaseFormat.of(q);
        if (format instanceof CompressedTensorsRelease) {
            return compressedTensors(q, format);
        }
        for (String key : List.of("bits", "group_size", "sym")) {
            if (!q.containsKey(key)) {
                throw new InputException("config.json: quantization_config lacks \"" + key + "\"");
            }
        }
        int bits = intKey(q, "bits", null);
        boolean sym = Boolean.TRUE.equals(q.get("sym"));
        if ((bits != 4 && bits != 8) || !sym) {
            throw new InputException("config.json: quantization_config has bits=" + bits + ", sym=" + sym
                    + "; m2q reads 4- or 8-bit symmetric weights only");
        }
        return new Quantization(
                format, bits, intKey(q, "group_size", null), true, Boolean.TRUE.equals(q.get("desc_act")));
    }

    /** compressed-tensors "pack-quantized" with one int4 symmetric group-wise weight scheme (FORMATS.md §4). */
    private static Quantization compressedTensors(Map<String, Object> q, ReleaseFormat format) {
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
        if ((bits != 4 && bits != 8)
                || !sym
                || !"int".equals(weights.get("type"))
                || !(channel || "group".equals(weights.get("strategy")))) {
            throw new InputException(where + " weights are " + Json.write(weights)
                    + "; m2q reads 4- or 8-bit symmetric int weights with strategy \"group\" or \"channel\" only");
        }
        Object actorder = weights.get("actorder");
        return new Quantization(
                format,
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
