package dev.m2q.core.draft;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Rope;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The written head against FORMATS §5 (names, shapes, dtypes, config keys, vocabulary invariants), read back. */
class DraftHeadTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    /** A head for the fixture target with N(0, 0.05) weights (norms around 1) and every other id drafted. */
    static DraftHead randomHead(ModelConfig target, int[] aux, long seed) {
        int v = target.vocabSize();
        int[] ids = new int[v / 2];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 2 * i + 1;
        }
        DraftConfig cfg = DraftConfig.forTarget(target, null, ids.length, aux);
        Random rnd = new Random(seed);
        Map<String, float[]> w = new LinkedHashMap<>();
        DraftHead.shapes(cfg).forEach((name, shape) -> {
            float[] a = new float[(int) TensorView.numel(shape)];
            boolean norm = shape.length == 1;
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (norm ? 1 + 0.1 * rnd.nextGaussian() : 0.05 * rnd.nextGaussian());
            }
            w.put(name, a);
        });
        return new DraftHead(cfg, DraftVocab.of(ids, v), w);
    }

    @Test
    void roundTripIsBitExactAfterBf16Rounding(@TempDir Path dir) throws IOException {
        ModelConfig target = ModelConfig.load(FIXTURE);
        DraftHead head = randomHead(target, null, 1);
        Map<String, String> files = head.write(dir);
        assertEquals(List.of("config.json", "model.safetensors"), List.copyOf(files.keySet()));
        DraftHead back = DraftHead.read(dir);
        assertEquals(head.config(), back.config());
        assertEquals(head.vocab(), back.vocab());
        DraftHead rounded = head.roundedToBf16();
        for (String name : DraftHead.shapes(head.config()).keySet()) {
            assertArrayEquals(rounded.weight(name), back.weight(name), name);
        }
        back.checkAgainst(target);

        try (Checkpoint ck = Checkpoint.open(dir)) {
            for (var e : DraftHead.shapes(head.config()).entrySet()) {
                TensorView t = ck.tensor(e.getKey());
                assertEquals(DType.BF16, t.dtype(), e.getKey());
                assertArrayEquals(e.getValue(), t.shape(), e.getKey());
            }
            assertEquals(DType.I64, ck.tensor("d2t").dtype());
            assertArrayEquals(new long[] {1024}, ck.tensor("d2t").shape());
            assertEquals(DType.BOOL, ck.tensor("t2d").dtype());
            assertArrayEquals(new long[] {2048}, ck.tensor("t2d").shape());
            assertEquals(15, ck.names().size(), "13 weights, d2t, t2d and no embeddings");
            // fc reads the three taps [H, 3H]; attention reads the 2H-wide concat.
            assertArrayEquals(new long[] {256, 768}, ck.tensor("fc.weight").shape());
            assertArrayEquals(
                    new long[] {256, 512},
                    ck.tensor("midlayer.self_attn.q_proj.weight").shape());
            assertArrayEquals(
                    new long[] {128, 512},
                    ck.tensor("midlayer.self_attn.k_proj.weight").shape());
        }
        Map<String, Object> c = Json.parseObject(Files.readString(dir.resolve("config.json")));
        assertEquals(
                List.of(
                        "architectures",
                        "model_type",
                        "num_hidden_layers",
                        "hidden_size",
                        "intermediate_size",
                        "num_attention_heads",
                        "num_key_value_heads",
                        "head_dim",
                        "hidden_act",
                        "rms_norm_eps",
                        "rope_theta",
                        "rope_scaling",
                        "max_position_embeddings",
                        "vocab_size",
                        "draft_vocab_size",
                        "norm_before_residual",
                        "tie_word_embeddings",
                        "torch_dtype"),
                List.copyOf(c.keySet()),
                "FORMATS §5's keys and no aux-layer key for the default taps");
        assertEquals(List.of("LlamaForCausalLMEagle3"), c.get("architectures"));
        assertEquals(2048L, ((Number) c.get("vocab_size")).longValue());
        assertEquals(1024L, ((Number) c.get("draft_vocab_size")).longValue());
        assertEquals(1024L, ((Number) c.get("max_position_embeddings")).longValue());
        // m2q's forward adds the raw hidden input as the residual: norm_before_residual false, written explicitly.
        assertEquals(Boolean.FALSE, c.get("norm_before_residual"));
        assertEquals(List.of(), DraftConfig.missingEngineDefaulted(c));
        Map<String, Object> implicit = new LinkedHashMap<>(c);
        implicit.remove("norm_before_residual");
        assertEquals(List.of("norm_before_residual"), DraftConfig.missingEngineDefaulted(implicit));
        Map<String, Object> other = new LinkedHashMap<>(c);
        other.put("norm_before_residual", true);
        assertTrue(assertThrows(InputException.class, () -> DraftConfig.parse(other, "head"))
                .getMessage()
                .contains("norm_before_residual must be false"));
        assertArrayEquals(new int[] {2, 4, 5}, back.config().taps(target.numLayers()));
    }

    @Test
    void pinnedTapsWriteVllmsLayerInputsAndSglangsLayerOutputs(@TempDir Path dir) throws IOException {
        ModelConfig target = ModelConfig.load(FIXTURE);
        randomHead(target, new int[] {1, 3, 6}, 2).write(dir);
        Map<String, Object> c = Json.parseObject(Files.readString(dir.resolve("config.json")));
        assertEquals(List.of(1L, 3L, 6L), longs(c.get("eagle_aux_hidden_state_layer_ids")));
        Map<?, ?> eagle = (Map<?, ?>) c.get("eagle_config");
        assertEquals(List.of(0L, 2L, 5L), longs(eagle.get("eagle_aux_hidden_state_layer_ids")));
        assertArrayEquals(new int[] {1, 3, 6}, DraftHead.read(dir).config().taps(8));

        c.put("eagle_config", Map.of("eagle_aux_hidden_state_layer_ids", List.of(1, 3, 6)));
        Files.writeString(dir.resolve("config.json"), Json.writePretty(c));
        assertTrue(assertThrows(InputException.class, () -> DraftHead.read(dir))
                .getMessage()
                .contains("minus one"));
        assertThrows(InputException.class, () -> DraftConfig.forTarget(target, null, 10, new int[] {3, 3, 6}));
        assertThrows(InputException.class, () -> DraftConfig.forTarget(target, null, 10, new int[] {1, 3, 8}));
    }

    private static List<Long> longs(Object o) {
        return ((List<?>) o).stream().map(x -> ((Number) x).longValue()).toList();
    }

    @Test
    void readRefusesEachBrokenTensorWithItsName(@TempDir Path root) throws IOException {
        ModelConfig target = ModelConfig.load(FIXTURE);
        DraftHead head = randomHead(target, null, 3);
        Path good = root.resolve("good");
        head.write(good);

        assertRefused(root, good, "missing", ts -> ts.removeIf(t -> t.name().equals("norm.weight")), "norm.weight");
        assertRefused(
                root,
                good,
                "shape",
                ts -> ts.replaceAll(t -> t.name().equals("fc.weight")
                        ? new TensorView(
                                t.name(),
                                t.dtype(),
                                new long[] {256, 512},
                                t.data().asSlice(0, 256L * 512 * 2))
                        : t),
                "fc.weight");
        assertRefused(root, good, "extra", ts -> ts.add(bytes("model.layers.0.mlp.up_proj.weight", 4)), "unexpected");
        assertRefused(
                root,
                good,
                "t2d",
                ts -> ts.replaceAll(t -> {
                    if (!t.name().equals("t2d")) {
                        return t;
                    }
                    byte[] b = t.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                    b[0] = 1; // id 0 is not in the draft vocabulary (only odd ids are)
                    return new TensorView("t2d", DType.BOOL, t.shape(), MemorySegment.ofArray(b));
                }),
                "t2d[0]");
        assertRefused(
                root,
                good,
                "d2t-dtype",
                ts -> ts.replaceAll(t ->
                        t.name().equals("d2t") ? new TensorView("d2t", DType.I32, new long[] {2048}, t.data()) : t),
                "d2t");

        Path cfgBad = root.resolve("cfg");
        head.write(cfgBad);
        Map<String, Object> c = Json.parseObject(Files.readString(cfgBad.resolve("config.json")));
        c.remove("draft_vocab_size");
        Files.writeString(cfgBad.resolve("config.json"), Json.writePretty(c));
        assertTrue(assertThrows(InputException.class, () -> DraftHead.read(cfgBad))
                .getMessage()
                .contains("draft_vocab_size"));
    }

    /**
     * A Llama-3.1-style target (rope_scaling llama3): the head writes the target's scaling, reads it back to the same
     * rule, rotates with the target's scaled table, and is refused against a target without that scaling.
     */
    @Test
    void headCarriesTheTargetsRopeScaling(@TempDir Path dir) throws IOException {
        Map<String, Object> llama3 = new LinkedHashMap<>();
        llama3.put("rope_type", "llama3");
        llama3.put("factor", 8.0);
        llama3.put("low_freq_factor", 1.0);
        llama3.put("high_freq_factor", 4.0);
        llama3.put("original_max_position_embeddings", 16L);
        Map<String, Object> t = Json.parseObject(Files.readString(FIXTURE.resolve("config.json")));
        t.put("rope_scaling", llama3);
        ModelConfig target = ModelConfig.parse(t);
        DraftHead head = randomHead(target, null, 5);
        head.write(dir.resolve("head"));
        Map<String, Object> written = Json.parseObject(Files.readString(dir.resolve("head/config.json")));
        assertEquals(llama3, written.get("rope_scaling"));
        DraftConfig back = DraftHead.read(dir.resolve("head")).config();
        assertEquals(target.ropeScaling(), back.scaling());
        back.checkAgainst(target);
        assertArrayEquals(
                Rope.of(target).inverseFrequencies(),
                Rope.of(back.headDim(), back.ropeTheta(), back.scaling()).inverseFrequencies());
        InputException e = assertThrows(InputException.class, () -> back.checkAgainst(ModelConfig.load(FIXTURE)));
        assertTrue(e.getMessage().contains("rope_theta/scaling"), e.getMessage());
        InputException wrong = assertThrows(
                InputException.class,
                () -> DraftConfig.forTarget(target, Map.of("rope_type", "linear", "factor", 8.0), 10, null));
        assertTrue(wrong.getMessage().contains("is not the target's"), wrong.getMessage());
        Map<String, Object> dynamic = new LinkedHashMap<>(back.toJson());
        dynamic.put("rope_scaling", Map.of("rope_type", "dynamic", "factor", 2.0));
        InputException refused = assertThrows(InputException.class, () -> DraftConfig.parse(dynamic, "head"));
        assertTrue(refused.getMessage().startsWith("head: rope_scaling type \"dynamic\""), refused.getMessage());
    }

    @Test
    void checkAgainstRefusesAHeadForAnotherTarget() {
        ModelConfig target = ModelConfig.load(FIXTURE);
        DraftHead head = randomHead(target, null, 4);
        Map<String, Object> raw = new LinkedHashMap<>(head.config().toJson());
        raw.put("num_key_value_heads", 4);
        DraftConfig other = DraftConfig.parse(raw, "test");
        InputException e = assertThrows(InputException.class, () -> other.checkAgainst(target));
        assertTrue(e.getMessage().contains("num_key_value_heads 4 vs the target's 2"), e.getMessage());
        assertFalse(head.config().equals(other));
    }

    private static TensorView bytes(String name, int n) {
        return new TensorView(name, DType.BF16, new long[] {n}, MemorySegment.ofArray(new byte[2 * n]));
    }

    private interface Edit {
        void apply(List<TensorView> tensors);
    }

    /** Copies {@code good}'s tensors, applies {@code edit}, writes them beside its config and expects a refusal. */
    private static void assertRefused(Path root, Path good, String name, Edit edit, String mention) throws IOException {
        Path dir = root.resolve(name);
        Files.createDirectories(dir);
        Files.copy(good.resolve("config.json"), dir.resolve("config.json"));
        try (Checkpoint ck = Checkpoint.open(good)) {
            List<TensorView> ts = new ArrayList<>();
            for (String n : ck.names()) {
                TensorView t = ck.tensor(n);
                ts.add(new TensorView(
                        n,
                        t.dtype(),
                        t.shape(),
                        MemorySegment.ofArray(t.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE))));
            }
            edit.apply(ts);
            SafetensorsWriter.writeFile(dir.resolve("model.safetensors"), ts, Map.of("format", "pt"));
        }
        InputException e = assertThrows(InputException.class, () -> DraftHead.read(dir), name);
        assertTrue(e.getMessage().contains(mention), name + ": " + e.getMessage());
    }
}
