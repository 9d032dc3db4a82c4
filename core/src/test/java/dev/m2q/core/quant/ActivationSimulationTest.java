package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.ModelConfig;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The simulation applies the written scales where the scheme says, and counts what they saturate. Bit-exact. */
class ActivationSimulationTest {
    static final ModelConfig CFG = ModelConfig.parse(Map.of(
            "architectures", List.of("Qwen2ForCausalLM"),
            "hidden_size", 8L,
            "intermediate_size", 16L,
            "num_hidden_layers", 1L,
            "num_attention_heads", 2L,
            "num_key_value_heads", 2L,
            "vocab_size", 10L));

    @Test
    void staticInputsUseTheLargestScaleOfTheLinearsThatShareThem() {
        Map<String, Float> scales = Map.of(
                "model.layers.0.self_attn.q_proj", 0.01f,
                "model.layers.0.self_attn.k_proj", 0.02f,
                "model.layers.0.self_attn.v_proj", 0.015f);
        ActivationSimulation sim =
                new ActivationSimulation(CFG, QuantScheme.of("w4a8-int8", true, null, null, null), scales, null, null);
        float[] x = {0.013f, -3f, 0.5f, 0f};
        float[] want = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            want[i] = EightBit.INT8.fakeQuant(x[i], 0.02f);
        }
        sim.linearInput(0, DecoderLayer.QKV, x, 1, 4);
        for (int i = 0; i < x.length; i++) {
            assertEquals(want[i], x[i], 0f);
        }
        assertEquals(-128 * 0.02f, x[1], 0f, "−3 is beyond −128 steps: saturated");
        assertEquals(0.25, sim.saturation().staticInputs(), 0.0, "1 of 4 values beyond 127 steps");
        assertTrue(Double.isNaN(sim.saturation().keys()), "no KV cache simulated");
    }

    @Test
    void kvScalesApplyPerHeadAndDynamicInputsPerToken() {
        float[][] k = {{0.5f, 0.001f}};
        float[][] v = {{0.25f, 0.25f}};
        ActivationSimulation sim =
                new ActivationSimulation(CFG, QuantScheme.of("w4a8-fp8", false, null, "fp8", "head"), Map.of(), k, v);
        int headDim = CFG.headDim();
        float[] keys = new float[2 * headDim];
        float[] values = new float[2 * headDim];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = 0.1f * (i + 1);
            values[i] = -0.05f * i;
        }
        float[] wantK = keys.clone();
        float[] wantV = values.clone();
        long saturated = 0;
        for (int i = 0; i < keys.length; i++) {
            float s = i < headDim ? 0.5f : 0.001f;
            saturated += Math.abs(keys[i]) / s > 448 ? 1 : 0;
            wantK[i] = EightBit.FP8.fakeQuant(keys[i], s);
            wantV[i] = EightBit.FP8.fakeQuant(values[i], 0.25f);
        }
        sim.keysValues(0, keys, values, 1, 2, headDim);
        for (int i = 0; i < keys.length; i++) {
            assertEquals(wantK[i], keys[i], 0f, "key " + i);
            assertEquals(wantV[i], values[i], 0f, "value " + i);
        }
        assertEquals(0.448f, keys[headDim], 0f, "head 1's keys saturate at 448 · 0.001");
        assertEquals((double) saturated / keys.length, sim.saturation().keys(), 0.0);
        assertTrue(saturated > 0);

        float[] row = {1f, -0.3f, 0.02f, 0f, 2f, 0f, 0f, 0f};
        float[] want = row.clone();
        EightBit.FP8.fakeQuantPerToken(want, 2, 4);
        sim.linearInput(0, DecoderLayer.DOWN, row, 2, 4);
        for (int i = 0; i < row.length; i++) {
            assertEquals(want[i], row[i], 0f);
        }
        assertTrue(Double.isNaN(sim.saturation().staticInputs()), "per-token scales never saturate");
    }
}
