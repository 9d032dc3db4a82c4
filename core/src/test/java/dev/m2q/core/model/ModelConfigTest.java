package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelConfigTest {
    static Map<String, Object> qwen32b() {
        Map<String, Object> m = new HashMap<>();
        m.put("architectures", List.of("Qwen2ForCausalLM"));
        m.put("hidden_size", 5120L);
        m.put("intermediate_size", 27648L);
        m.put("num_hidden_layers", 64L);
        m.put("num_attention_heads", 40L);
        m.put("num_key_value_heads", 8L);
        m.put("rms_norm_eps", 1e-5);
        m.put("rope_theta", 1000000.0);
        m.put("rope_scaling", null);
        m.put("max_position_embeddings", 32768L);
        m.put("vocab_size", 152064L);
        m.put("tie_word_embeddings", false);
        return m;
    }

    @Test
    void parsesTheTargetShape() {
        ModelConfig c = ModelConfig.parse(qwen32b());
        assertEquals("qwen2", c.arch().family());
        assertEquals(128, c.headDim());
        assertEquals(5120, c.qDim());
        assertEquals(1024, c.kvDim());
        assertTrue(c.attentionBias());
        Map<String, long[]> shapes = c.expectedShapes();
        // embeddings + 64 × (2 norms + 7 weights + 3 biases) + final norm + lm_head
        assertEquals(1 + 64 * 12 + 2, shapes.size());
        assertArrayEquals(new long[] {1024, 5120}, shapes.get("model.layers.63.self_attn.k_proj.weight"));
        assertArrayEquals(new long[] {5120, 27648}, shapes.get("model.layers.0.mlp.down_proj.weight"));
        assertArrayEquals(new long[] {152064, 5120}, shapes.get("lm_head.weight"));
    }

    @Test
    void llamaHasNoBiasAndTiedHeadHasNoLmHead() {
        Map<String, Object> m = qwen32b();
        m.put("architectures", List.of("LlamaForCausalLM"));
        m.put("tie_word_embeddings", true);
        ModelConfig c = ModelConfig.parse(m);
        assertFalse(c.attentionBias());
        assertFalse(c.expectedShapes().containsKey("lm_head.weight"));
        assertFalse(c.expectedShapes().containsKey("model.layers.0.self_attn.q_proj.bias"));
    }

    @Test
    void refusesUnknownArchitectureNamingTheKnownOnes() {
        Map<String, Object> m = qwen32b();
        m.put("architectures", List.of("MixtralForCausalLM"));
        InputException e = assertThrows(InputException.class, () -> ModelConfig.parse(m));
        assertTrue(e.getMessage().contains("MixtralForCausalLM"), e.getMessage());
        assertTrue(e.getMessage().contains("Qwen2ForCausalLM"), e.getMessage());
    }

    @Test
    void refusesInconsistentOrMissingKeys() {
        Map<String, Object> m = qwen32b();
        m.put("num_key_value_heads", 7L);
        assertThrows(InputException.class, () -> ModelConfig.parse(m));
        Map<String, Object> n = qwen32b();
        n.remove("hidden_size");
        InputException e = assertThrows(InputException.class, () -> ModelConfig.parse(n));
        assertTrue(e.getMessage().contains("hidden_size"), e.getMessage());
        Map<String, Object> y = qwen32b();
        y.put("rope_scaling", Map.of("type", "dynamic", "factor", 4.0));
        assertTrue(assertThrows(InputException.class, () -> ModelConfig.parse(y))
                .getMessage()
                .contains("dynamic"));
        Map<String, Object> s = qwen32b();
        s.put("hidden_size", "5120");
        assertThrows(InputException.class, () -> ModelConfig.parse(s));
    }

    @Test
    void loadNamesTheFileOnMalformedJson(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\"architectures\": [\"Qwen2ForCausalLM\"], ");
        InputException e = assertThrows(InputException.class, () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        assertThrows(InputException.class, () -> ModelConfig.load(dir.resolve("absent")));
    }
}
