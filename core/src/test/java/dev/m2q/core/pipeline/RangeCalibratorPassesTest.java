package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.ModelConfig;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The ranges when the calibrator is shown every pass of a layer ({@link LayerContext#observeEveryPass}): each tensor's
 * are those of the last pass that showed it, whatever earlier passes saw (absmax is exact: compared bitwise).
 */
class RangeCalibratorPassesTest {
    @Test
    void eachTensorKeepsTheLastPassThatShowedIt() {
        ModelConfig cfg = ModelConfig.load(QuantizeJobTest.FIXTURE);
        Backend b = new JavaBackend(Kernels.byName("vector"));
        int h = cfg.hiddenSize();
        int inter = cfg.intermediateSize();
        int kv = cfg.kvDim();
        try (RangeCalibrator r = new RangeCalibrator(cfg, 0, b, false)) {
            // pass 1 (from the input, with weights the method replaces later): every tensor, large values
            r.newPass();
            show(r, b, "self_attn.q_proj", h, 9f);
            keys(r, b, kv, 9f, 9f);
            show(r, b, "self_attn.o_proj", cfg.qDim(), 9f);
            show(r, b, "mlp.gate_proj", h, 9f);
            show(r, b, "mlp.down_proj", inter, 9f);
            // pass 2: q/k/v's input (the same), the keys and o's input with the final weights, then it stops
            r.newPass();
            show(r, b, "self_attn.q_proj", h, 9f);
            keys(r, b, kv, 2f, 3f);
            show(r, b, "self_attn.o_proj", cfg.qDim(), 4f);
            // pass 3, from the residual: the MLP's inputs only, over two batches
            r.newPass();
            show(r, b, "mlp.gate_proj", h, 5f);
            show(r, b, "mlp.gate_proj", h, 5.5f);
            show(r, b, "mlp.down_proj", inter, 6f);
            RangeCalibrator.Ranges got = r.ranges();
            assertEquals(9f, got.inputs().get("self_attn.q_proj").amax());
            assertEquals(9f, got.inputs().get("self_attn.v_proj").amax(), "q, k and v share their input's record");
            assertEquals(4f, got.inputs().get("self_attn.o_proj").amax());
            assertEquals(5.5f, got.inputs().get("mlp.up_proj").amax(), "the two batches of the last pass");
            assertEquals(6f, got.inputs().get("mlp.down_proj").amax());
            float[] keys = new float[kv];
            Arrays.fill(keys, 2f);
            assertArrayEquals(keys, got.keyChannels());
            float[] values = new float[kv];
            Arrays.fill(values, 3f);
            assertArrayEquals(values, got.valueChannels());
        }
    }

    /** One batch of 2 rows of {@code cols} values, all {@code v} but one −v, as module's input. */
    private static void show(RangeCalibrator r, Backend b, String module, int cols, float v) {
        try (Backend.Buf x = filled(b, 2 * cols, v)) {
            r.linearInput(module, b, x, 2, cols);
        }
    }

    /** One batch of 2 rows of keys (all ±k) and values (all ±v). */
    private static void keys(RangeCalibrator r, Backend b, int kvDim, float k, float v) {
        try (Backend.Buf kb = filled(b, 2 * kvDim, k);
                Backend.Buf vb = filled(b, 2 * kvDim, v)) {
            r.keysValues(b, kb, vb, 2, kvDim);
        }
    }

    private static Backend.Buf filled(Backend b, int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        a[n - 1] = -v;
        return b.wrap(a);
    }
}
