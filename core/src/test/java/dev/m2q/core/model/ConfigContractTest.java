package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * "Configs are read, not guessed": keys that change transformers' math but not this forward's are refused by name,
 * sizes disagreeing with the tensors are refused before anything is sized by them, and the rope_scaling types that
 * are implemented load and change the forward.
 */
class ConfigContractTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    static String refusal(Consumer<Map<String, Object>> edit) {
        Map<String, Object> m = ModelConfigTest.qwen32b();
        edit.accept(m);
        return assertThrows(InputException.class, () -> ModelConfig.parse(m)).getMessage();
    }

    static ModelConfig accepted(Consumer<Map<String, Object>> edit) {
        Map<String, Object> m = ModelConfigTest.qwen32b();
        edit.accept(m);
        return ModelConfig.parse(m);
    }

    static void assertNames(String message, String... parts) {
        for (String p : parts) {
            assertTrue(message.contains(p), "\"" + p + "\" not in: " + message);
        }
    }

    @Test
    void refusesActivationsOtherThanSilu() {
        assertNames(refusal(m -> m.put("hidden_act", "gelu")), "hidden_act", "\"gelu\"", "silu");
        assertNames(
                refusal(m -> m.put("hidden_activation", "gelu_pytorch_tanh")),
                "hidden_activation",
                "gelu_pytorch_tanh");
        accepted(m -> m.put("hidden_act", "silu"));
    }

    /** transformers' Qwen2: the window applies only with use_sliding_window, on layers ≥ max_window_layers. */
    @Test
    void refusesAnActiveSlidingWindowOnly() {
        assertNames(
                refusal(m -> {
                    m.put("use_sliding_window", true);
                    m.put("sliding_window", 4096L);
                    m.put("max_window_layers", 28L);
                }),
                "use_sliding_window",
                "sliding_window 4096",
                "max_window_layers 28 < num_hidden_layers 64");
        assertNames(
                refusal(m -> {
                    m.put("use_sliding_window", true);
                    m.put("sliding_window", 4096L);
                    m.put("layer_types", List.of("full_attention", "sliding_attention"));
                }),
                "layer_types");
        // Qwen2.5's published configs: sliding_window set, use_sliding_window false
        accepted(m -> {
            m.put("use_sliding_window", false);
            m.put("sliding_window", 131072L);
            m.put("max_window_layers", 70L);
        });
        // switched on but for no layer, or wider than every position
        accepted(m -> {
            m.put("use_sliding_window", true);
            m.put("sliding_window", 4096L);
            m.put("max_window_layers", 64L);
        });
        accepted(m -> {
            m.put("use_sliding_window", true);
            m.put("sliding_window", 32768L);
            m.put("max_window_layers", 0L);
        });
        // Llama has no sliding window in transformers: the key does nothing there
        accepted(m -> {
            m.put("architectures", List.of("LlamaForCausalLM"));
            m.put("use_sliding_window", true);
            m.put("sliding_window", 4096L);
        });
    }

    @Test
    void refusesOtherKeysThatChangeTheMath() {
        assertNames(refusal(m -> m.put("mlp_bias", true)), "mlp_bias");
        assertNames(
                refusal(m -> {
                    m.put("architectures", List.of("LlamaForCausalLM"));
                    m.put("attention_bias", true);
                }),
                "attention_bias",
                "o_proj");
        assertNames(refusal(m -> m.put("partial_rotary_factor", 0.5)), "partial_rotary_factor", "0.5");
        assertNames(refusal(m -> m.put("final_logit_softcapping", 30.0)), "final_logit_softcapping");
        assertNames(refusal(m -> m.put("attn_logit_softcapping", 50.0)), "attn_logit_softcapping");
        assertNames(refusal(m -> m.put("use_qk_norm", true)), "use_qk_norm");
        assertNames(
                refusal(m -> m.put("rope_scaling", Map.of("rope_type", "dynamic", "factor", 2.0))),
                "rope_scaling",
                "\"dynamic\"");
        assertNames(refusal(m -> m.put("num_attention_heads", 0L)), "num_attention_heads");
        // keys that do not change inference
        accepted(m -> {
            m.put("pretraining_tp", 2L);
            m.put("attention_dropout", 0.1);
            m.put("initializer_range", 0.02);
            m.put("use_cache", false);
            m.put("partial_rotary_factor", 1.0);
            m.put("final_logit_softcapping", null);
        });
    }

    /** transformers v5 writes rope_theta and the scaling into rope_parameters. */
    @Test
    void readsV5RopeParameters() {
        ModelConfig c = accepted(m -> {
            m.remove("rope_theta");
            m.remove("rope_scaling");
            Map<String, Object> rp = RopeTest.llama3(8.0, 1.0, 4.0, 8192L);
            rp.put("rope_theta", 500000.0);
            m.put("rope_parameters", rp);
        });
        assertEquals(500000.0, c.ropeTheta());
        assertInstanceOf(RopeScaling.Llama3.class, c.ropeScaling());
        assertNames(
                refusal(m -> m.put("rope_parameters", Map.of("rope_type", "default", "rope_theta", 10000.0))),
                "rope_theta",
                "disagree");
    }

    /** A copy of the fixture (weights linked) with its config edited. */
    static Path fixtureWith(Path tmp, String name, Consumer<Map<String, Object>> edit) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Map<String, Object> cfg = Json.parseObject(Files.readString(FIXTURE.resolve("config.json")));
        edit.accept(cfg);
        Files.writeString(dir.resolve("config.json"), Json.writePretty(cfg));
        Files.createSymbolicLink(
                dir.resolve("model.safetensors"),
                FIXTURE.resolve("model.safetensors").toAbsolutePath());
        return dir;
    }

    static String loadRefusal(Path tmp, Consumer<Map<String, Object>> edit) throws IOException {
        Path dir = fixtureWith(tmp, "m" + System.nanoTime(), edit);
        return assertThrows(InputException.class, () -> ModelConfig.load(dir)).getMessage();
    }

    @Test
    void layerCountIsBoundedByTheTensors(@TempDir Path tmp) throws IOException {
        assertNames(
                loadRefusal(tmp, c -> c.put("num_hidden_layers", (long) Integer.MAX_VALUE)),
                "config.json",
                "num_hidden_layers is 2147483647",
                "8 decoder layers",
                "model.layers.0 to model.layers.7");
        assertNames(
                loadRefusal(tmp, c -> c.put("num_hidden_layers", 4L)),
                "num_hidden_layers is 4",
                "8 decoder layers",
                "set num_hidden_layers to 8");
        assertNames(
                loadRefusal(tmp, c -> c.put("num_hidden_layers", 9L)), "num_hidden_layers is 9", "no model.layers.8");
    }

    @Test
    void sizesAreBoundedByTheTensors(@TempDir Path tmp) throws IOException {
        assertNames(
                loadRefusal(tmp, c -> c.put("vocab_size", 1L << 30)),
                "vocab_size 1073741824",
                "model.embed_tokens.weight [2048, 256]");
        assertNames(loadRefusal(tmp, c -> c.put("hidden_size", 512L)), "hidden_size 512", "[2048, 256]");
        assertNames(
                loadRefusal(tmp, c -> c.put("intermediate_size", 1L << 30)),
                "intermediate_size is 1073741824",
                "768 wide");
        assertNames(
                loadRefusal(tmp, c -> c.put("head_dim", 128L)),
                "num_attention_heads × head_dim is 512",
                "model.layers.0.self_attn.q_proj is 256 wide");
        assertNames(loadRefusal(tmp, c -> c.put("attention_bias", false)), "attention_bias is false", "q_proj.bias");
        // the untouched copy loads
        assertEquals(8, ModelConfig.load(fixtureWith(tmp, "same", c -> {})).numLayers());
    }

    /** The same bounds on tensor names alone: biases the forward has no place for, a missing untied head, GPTQ. */
    @Test
    void checkAgainstReadsEveryLayout() {
        ModelConfig c = ModelConfig.parse(ModelConfigTest.qwen32b());
        Map<String, long[]> shapes = new LinkedHashMap<>(c.expectedShapes());
        c.checkAgainst(shapes.keySet(), shapes::get);
        Map<String, long[]> withOBias = new LinkedHashMap<>(shapes);
        withOBias.put("model.layers.0.self_attn.o_proj.bias", new long[] {5120});
        assertNames(
                assertThrows(InputException.class, () -> c.checkAgainst(withOBias.keySet(), withOBias::get))
                        .getMessage(),
                "model.layers.0.self_attn.o_proj.bias");
        Map<String, long[]> noHead = new LinkedHashMap<>(shapes);
        noHead.remove("lm_head.weight");
        assertNames(
                assertThrows(InputException.class, () -> c.checkAgainst(noHead.keySet(), noHead::get))
                        .getMessage(),
                "tie_word_embeddings is false",
                "lm_head.weight");
        // GPTQ's qweight [in/8, out]: a gate projection 27648 wide, an intermediate_size of 27647 is refused
        Map<String, long[]> gptq = new LinkedHashMap<>(shapes);
        gptq.remove("model.layers.0.mlp.gate_proj.weight");
        gptq.put("model.layers.0.mlp.gate_proj.qweight", new long[] {5120 / 8, 27648});
        c.checkAgainst(gptq.keySet(), gptq::get);
        Map<String, Object> m = ModelConfigTest.qwen32b();
        m.put("intermediate_size", 27647L);
        ModelConfig narrower = ModelConfig.parse(m);
        assertNames(
                assertThrows(InputException.class, () -> narrower.checkAgainst(gptq.keySet(), gptq::get))
                        .getMessage(),
                "intermediate_size is 27647",
                "27648 wide");
    }

    /**
     * Each implemented rope_scaling loads and runs the fixture's forward: finite logits that differ from the
     * unscaled model's (the scaled frequencies and YaRN's attention factor reach every layer), and "default" is the
     * unscaled model bit for bit.
     */
    @Test
    void eachScalingRunsAForward(@TempDir Path tmp) throws IOException {
        int[] ids = new int[24];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (i * 37 + 11) % 2048;
        }
        Kernels k = Kernels.byName("scalar");
        float[] plain;
        try (Qwen2Model m = Qwen2Model.load(FIXTURE, k)) {
            plain = m.forward(ids);
        }
        Map<String, Map<String, Object>> scalings = Map.of(
                "linear", Map.of("type", "linear", "factor", 2.0),
                "llama3", RopeTest.llama3(8.0, 1.0, 4.0, 16L),
                "yarn", Map.of("rope_type", "yarn", "factor", 4.0, "original_max_position_embeddings", 256L),
                "default", Map.of("rope_type", "default"));
        int vocab = 2048;
        for (Map.Entry<String, Map<String, Object>> e : scalings.entrySet()) {
            Path dir = fixtureWith(tmp, e.getKey(), c -> c.put("rope_scaling", e.getValue()));
            try (Qwen2Model m = Qwen2Model.load(dir, k)) {
                assertEquals(e.getKey(), m.config().ropeScaling().type());
                float[] logits = m.forward(ids);
                // the KV cache holds keys rotated (and scaled) at their own positions: decoding the second half after
                // the first gives the one-pass logits of the last position (fp32 rounding of the split sums only)
                KvCache cache = m.newCache(ids.length);
                m.forward(Arrays.copyOfRange(ids, 0, 13), cache, true);
                float[] last = m.forward(Arrays.copyOfRange(ids, 13, ids.length), cache, true);
                for (int v = 0; v < vocab; v++) {
                    float want = logits[(ids.length - 1) * vocab + v];
                    assertEquals(want, last[v], 1e-4 * (1 + Math.abs(want)), e.getKey() + ": cached logit " + v);
                }
                assertEquals(plain.length, logits.length);
                for (float v : logits) {
                    assertTrue(Float.isFinite(v), e.getKey() + ": non-finite logit");
                }
                if (e.getKey().equals("default")) {
                    assertArrayEquals(plain, logits, "default scaling is the unscaled model");
                } else {
                    assertFalse(Arrays.equals(plain, logits), e.getKey() + " changed nothing");
                }
            }
        }
    }
}
