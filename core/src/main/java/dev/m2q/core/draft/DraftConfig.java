package dev.m2q.core.draft;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.RopeScaling;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code config.json} of an EAGLE-3 draft head (FORMATS.md §5): a one-layer Llama whose attention reads 2H
 * features, with a draft vocabulary of {@code draftVocabSize} target tokens.
 *
 * @param ropeScaling the target's {@code rope_scaling} value as written (null, or its JSON object), which the engines
 *     read from the head's config.json; {@link #scaling()} is what it means
 * @param auxLayers the pinned taps as "state entering target layer j" ids, or null for the engines' default
 *     (2, L/2, L−3), in which case the config names none
 */
public record DraftConfig(
        int hiddenSize,
        int intermediateSize,
        int numHeads,
        int numKvHeads,
        int headDim,
        double rmsNormEps,
        double ropeTheta,
        Object ropeScaling,
        int maxPositionEmbeddings,
        int vocabSize,
        int draftVocabSize,
        int[] auxLayers) {
    public static final String ARCHITECTURE = "LlamaForCausalLMEagle3";
    public static final String FILE = "config.json";
    /** vLLM's key: ids of the target layers whose input is tapped. */
    public static final String AUX_KEY = "eagle_aux_hidden_state_layer_ids";
    /**
     * Whether the residual added after the head's attention is hidden_norm(g) (true) or the raw g (false). m2q's
     * forward ({@link DraftModel}) adds the raw g, so a head m2q writes says false; vLLM's speculators path defaults
     * the key to true when it is absent, the EAGLE/SpecForge path to false, so it is always written.
     */
    public static final String NORM_BEFORE_RESIDUAL = "norm_before_residual";
    /** Keys whose absence lets an engine fill in a default that differs between engines (FORMATS §5). */
    public static final List<String> ENGINE_DEFAULTED = List.of(NORM_BEFORE_RESIDUAL);

    public DraftConfig {
        for (int v : new int[] {
            hiddenSize,
            intermediateSize,
            numHeads,
            numKvHeads,
            headDim,
            maxPositionEmbeddings,
            vocabSize,
            draftVocabSize
        }) {
            if (v <= 0) {
                throw new InputException(
                        "draft config: sizes must be positive: hidden " + hiddenSize + ", intermediate "
                                + intermediateSize + ", heads " + numHeads + "/" + numKvHeads + ", head_dim " + headDim
                                + ", vocab " + vocabSize + ", draft vocab " + draftVocabSize);
            }
        }
        if (numHeads % numKvHeads != 0 || headDim % 2 != 0) {
            throw new InputException("draft config: " + numHeads + " query heads cannot share " + numKvHeads
                    + " kv heads of (even) dimension " + headDim);
        }
        if (draftVocabSize > vocabSize) {
            throw new InputException(
                    "draft config: draft_vocab_size " + draftVocabSize + " exceeds vocab_size " + vocabSize);
        }
        auxLayers = auxLayers == null ? null : auxLayers.clone();
        RopeScaling.parse(ropeScaling, maxPositionEmbeddings);
    }

    /** The rotary scaling {@link #ropeScaling} describes (the target's, so the head rotates as the target does). */
    public RopeScaling scaling() {
        return RopeScaling.parse(ropeScaling, maxPositionEmbeddings);
    }

    /**
     * A head for {@code target}: its sizes, norms and rotary settings, and a draft vocabulary of {@code draftVocab}.
     * {@code targetRopeScaling} is the target's rope_scaling as written, kept verbatim for the engines (it must mean
     * what the target's config means); null writes the target's in canonical form.
     */
    public static DraftConfig forTarget(ModelConfig target, Object targetRopeScaling, int draftVocab, int[] auxLayers) {
        if (auxLayers != null) {
            checkTaps(auxLayers, target.numLayers());
        }
        Object rope = targetRopeScaling == null ? target.ropeScaling().toJson() : targetRopeScaling;
        if (!RopeScaling.parse(rope, target.maxPositionEmbeddings()).equals(target.ropeScaling())) {
            throw new InputException("draft config: rope_scaling " + Json.write(rope) + " is not the target's ("
                    + Json.write(target.ropeScaling().toJson()) + ")");
        }
        return new DraftConfig(
                target.hiddenSize(),
                target.intermediateSize(),
                target.numHeads(),
                target.numKvHeads(),
                target.headDim(),
                target.rmsNormEps(),
                target.ropeTheta(),
                rope,
                target.maxPositionEmbeddings(),
                target.vocabSize(),
                draftVocab,
                auxLayers);
    }

    /** The engines' default taps for an L-layer target: the residual stream entering layers 2, L/2 and L−3. */
    public static int[] defaultTaps(int targetLayers) {
        int[] taps = {2, targetLayers / 2, targetLayers - 3};
        checkTaps(taps, targetLayers);
        return taps;
    }

    /** The taps this head reads from an L-layer target (pinned or default). */
    public int[] taps(int targetLayers) {
        if (auxLayers == null) {
            return defaultTaps(targetLayers);
        }
        checkTaps(auxLayers, targetLayers);
        return auxLayers.clone();
    }

    private static void checkTaps(int[] taps, int layers) {
        boolean ok = taps.length == 3;
        for (int i = 0; ok && i < 3; i++) {
            ok = taps[i] >= 1 && taps[i] < layers && (i == 0 || taps[i] > taps[i - 1]);
        }
        if (!ok) {
            throw new InputException("EAGLE-3 taps " + Arrays.toString(taps)
                    + " are not three ascending layer ids in [1, " + (layers - 1) + "] of a " + layers
                    + "-layer target (the defaults 2, L/2, L-3 need L >= 8)");
        }
    }

    /** Width of the query projection output. */
    public int qDim() {
        return numHeads * headDim;
    }

    public int kvDim() {
        return numKvHeads * headDim;
    }

    /**
     * Refuses a head that cannot run on {@code target}: every size the engines share between the two (hidden, heads,
     * kv heads, head_dim, vocabulary, positions, rotary base) must match, and pinned taps must lie inside it.
     */
    public void checkAgainst(ModelConfig target) {
        List<String> bad = new ArrayList<>();
        mismatch(bad, "hidden_size", hiddenSize, target.hiddenSize());
        mismatch(bad, "num_attention_heads", numHeads, target.numHeads());
        mismatch(bad, "num_key_value_heads", numKvHeads, target.numKvHeads());
        mismatch(bad, "head_dim", headDim, target.headDim());
        mismatch(bad, "vocab_size", vocabSize, target.vocabSize());
        mismatch(bad, "max_position_embeddings", maxPositionEmbeddings, target.maxPositionEmbeddings());
        if (ropeTheta != target.ropeTheta() || !scaling().equals(target.ropeScaling())) {
            bad.add("rope_theta/scaling " + ropeTheta + "/"
                    + Json.write(scaling().toJson()) + " vs the target's " + target.ropeTheta() + "/"
                    + Json.write(target.ropeScaling().toJson()));
        }
        if (!bad.isEmpty()) {
            throw new InputException("draft head does not fit the target: " + String.join("; ", bad));
        }
        taps(target.numLayers());
    }

    private static void mismatch(List<String> bad, String key, int draft, int target) {
        if (draft != target) {
            bad.add(key + " " + draft + " vs the target's " + target);
        }
    }

    /** The config.json object, keys in FORMATS §5's order. */
    public Map<String, Object> toJson() {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("architectures", List.of(ARCHITECTURE));
        c.put("model_type", "llama");
        c.put("num_hidden_layers", 1);
        c.put("hidden_size", hiddenSize);
        c.put("intermediate_size", intermediateSize);
        c.put("num_attention_heads", numHeads);
        c.put("num_key_value_heads", numKvHeads);
        c.put("head_dim", headDim);
        c.put("hidden_act", "silu");
        c.put("rms_norm_eps", rmsNormEps);
        c.put("rope_theta", ropeTheta);
        c.put("rope_scaling", ropeScaling);
        c.put("max_position_embeddings", maxPositionEmbeddings);
        c.put("vocab_size", vocabSize);
        c.put("draft_vocab_size", draftVocabSize);
        c.put(NORM_BEFORE_RESIDUAL, false);
        c.put("tie_word_embeddings", false);
        c.put("torch_dtype", "bfloat16");
        if (auxLayers != null) {
            // vLLM: "state entering layer j"; SGLang: "output of layer j", one less (FORMATS §5).
            c.put(AUX_KEY, Arrays.stream(auxLayers).boxed().toList());
            c.put(
                    "eagle_config",
                    Map.of(
                            AUX_KEY,
                            Arrays.stream(auxLayers).map(j -> j - 1).boxed().toList()));
        }
        return c;
    }

    public void write(Path dir) {
        try {
            Files.writeString(dir.resolve(FILE), Json.writePretty(toJson()) + "\n", StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new InputException(dir.resolve(FILE) + ": cannot write: " + e.getMessage(), e);
        }
    }

    /** Reads and checks {@code dir/config.json}. */
    public static DraftConfig load(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            throw new InputException(dir + ": no " + FILE + " (an EAGLE-3 draft head folder has config.json and"
                    + " model.safetensors)");
        }
        try {
            return parse(Json.parseObject(Files.readString(file, StandardCharsets.UTF_8)), file);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
    }

    /** Parses a draft config object; {@code where} names it in messages. */
    public static DraftConfig parse(Map<String, Object> c, Object where) {
        String w = where + ": ";
        if (!(c.get("architectures") instanceof List<?> arch) || !arch.contains(ARCHITECTURE)) {
            throw new InputException(
                    w + "architectures must name " + ARCHITECTURE + ", found " + c.get("architectures"));
        }
        if (!"llama".equals(c.get("model_type"))) {
            throw new InputException(w + "model_type must be \"llama\", found " + c.get("model_type"));
        }
        if (integer(c, "num_hidden_layers", w) != 1) {
            throw new InputException(w + "num_hidden_layers must be 1 for an EAGLE-3 head");
        }
        if (!"silu".equals(c.get("hidden_act"))) {
            throw new InputException(w + "hidden_act must be \"silu\", found " + c.get("hidden_act"));
        }
        if (!Boolean.FALSE.equals(c.get("tie_word_embeddings"))) {
            throw new InputException(w + "tie_word_embeddings must be false (the head has its own lm_head)");
        }
        if (c.containsKey(NORM_BEFORE_RESIDUAL) && !Boolean.FALSE.equals(c.get(NORM_BEFORE_RESIDUAL))) {
            throw new InputException(w + NORM_BEFORE_RESIDUAL + " must be false (m2q's head adds the un-normed hidden"
                    + " input as the attention residual), found " + c.get(NORM_BEFORE_RESIDUAL));
        }
        Object rs = c.get("rope_scaling");
        if (!c.containsKey("rope_scaling")) {
            throw new InputException(w + "rope_scaling must be present, null or an object");
        }
        int positions = integer(c, "max_position_embeddings", w);
        try {
            RopeScaling.parse(rs, positions);
        } catch (InputException e) {
            throw new InputException(w + e.getMessage().replaceFirst("^config\\.json: ", ""), e);
        }
        int[] aux = null;
        if (c.containsKey(AUX_KEY)) {
            aux = ints(c.get(AUX_KEY), w + AUX_KEY);
            Object ec = c.get("eagle_config");
            if (ec instanceof Map<?, ?> m && m.containsKey(AUX_KEY)) {
                int[] sg = ints(m.get(AUX_KEY), w + "eagle_config." + AUX_KEY);
                int[] expect = Arrays.stream(aux).map(j -> j - 1).toArray();
                if (!Arrays.equals(sg, expect)) {
                    throw new InputException(w + "eagle_config." + AUX_KEY + " " + Arrays.toString(sg)
                            + " must be the top-level " + AUX_KEY + " minus one (" + Arrays.toString(expect)
                            + "): SGLang counts layer outputs, vLLM layer inputs");
                }
            }
        }
        return new DraftConfig(
                integer(c, "hidden_size", w),
                integer(c, "intermediate_size", w),
                integer(c, "num_attention_heads", w),
                integer(c, "num_key_value_heads", w),
                integer(c, "head_dim", w),
                number(c, "rms_norm_eps", w),
                number(c, "rope_theta", w),
                rs,
                positions,
                integer(c, "vocab_size", w),
                integer(c, "draft_vocab_size", w),
                aux);
    }

    /**
     * The {@link #ENGINE_DEFAULTED} keys a draft config object leaves out: each is read by some engine as true and by
     * another as false, so a head without it runs with different semantics depending on where it is served.
     */
    public static List<String> missingEngineDefaulted(Map<String, Object> c) {
        return ENGINE_DEFAULTED.stream().filter(k -> !c.containsKey(k)).toList();
    }

    private static int integer(Map<String, Object> c, String key, String w) {
        if (!(c.get(key) instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue())) {
            throw new InputException(w + key + " must be an integer, found " + c.get(key));
        }
        return n.intValue();
    }

    private static double number(Map<String, Object> c, String key, String w) {
        if (!(c.get(key) instanceof Number n)) {
            throw new InputException(w + key + " must be a number, found " + c.get(key));
        }
        return n.doubleValue();
    }

    private static int[] ints(Object v, String what) {
        if (!(v instanceof List<?> l) || !l.stream().allMatch(x -> x instanceof Number)) {
            throw new InputException(what + " must be a list of integers, found " + v);
        }
        return l.stream().mapToInt(x -> ((Number) x).intValue()).toArray();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DraftConfig d && toJson().equals(d.toJson());
    }

    @Override
    public int hashCode() {
        return toJson().hashCode();
    }

    @Override
    public String toString() {
        return Json.write(toJson());
    }
}
