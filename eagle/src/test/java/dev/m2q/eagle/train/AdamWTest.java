package dev.m2q.eagle.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.InputException;
import dev.m2q.core.grad.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** AdamW, the global-norm clip and the learning-rate schedule against values worked out by hand. */
class AdamWTest {
    /**
     * fp32 storage of p, m, v rounds each to 24 bits: a relative error of ~6e-8 per stored value, a few of them per
     * update, so 1e-6 relative is ample and still far below any one-term mistake in the formulas (≥ 1e-3 here).
     */
    private static final double RTOL = 1e-6;

    private static void close(double expected, double actual, String what) {
        assertEquals(expected, actual, RTOL * Math.abs(expected) + 1e-12, what);
    }

    @Test
    void twoUpdatesMatchTheHandComputedValues() {
        Tensor.F32 p = new Tensor.F32(new float[] {1.0f, -2.0f}, 1, 2);
        Tensor.F32 g = new Tensor.F32(new float[] {0.5f, -0.1f}, 1, 2);
        Map<String, Tensor> params = Map.of("w", p);
        Map<String, Tensor> grads = Map.of("w", g);
        AdamW adam = AdamW.eagle3();
        adam.step(params, grads, 0.1);
        // t = 1: m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) = ±0.1 (ε = 1e-8 shifts it by 2e-9 relative or less).
        close(1.0 - 0.1 * 0.5 / (0.5 + 1e-8), p.get(0), "p0 after step 1");
        close(-2.0 + 0.1 * 0.1 / (0.1 + 1e-8), p.get(1), "p1 after step 1");
        g.data()[0] = -0.5f;
        g.data()[1] = 0.3f;
        adam.step(params, grads, 0.05);
        // t = 2, element 0: m = 0.9·0.05 + 0.1·(−0.5) = −0.005, v = 0.95·0.0125 + 0.05·0.25 = 0.024375;
        // m̂ = −0.005/0.19 = −0.0263158, v̂ = 0.024375/0.0975 = 0.25, step = 0.05·m̂/(0.5 + ε) = −0.00263158.
        close(0.9 + 0.05 * (0.005 / 0.19) / (0.5 + 1e-8), p.get(0), "p0 after step 2");
        // element 1: m = 0.9·(−0.01) + 0.1·0.3 = 0.021, v = 0.95·0.0005 + 0.05·0.09 = 0.004975;
        // m̂ = 0.021/0.19, v̂ = 0.004975/0.0975.
        double step = 0.05 * (0.021 / 0.19) / (Math.sqrt(0.004975 / 0.0975) + 1e-8);
        close(-1.9 - step, p.get(1), "p1 after step 2");
        assertEquals(2, adam.updates());
    }

    @Test
    void clipScalesAllGradientsByOneGlobalNorm() {
        Map<String, Tensor> grads = new LinkedHashMap<>();
        grads.put("a", new Tensor.F32(new float[] {3f}, 1, 1));
        grads.put("b", new Tensor.F32(new float[] {0f, 4f}, 1, 2));
        assertEquals(5.0, AdamW.clipGlobalNorm(grads, 0.5), 0.0);
        // scale 0.5/5 = 0.1: (3, 0, 4) → (0.3, 0, 0.4), each the float nearest (one multiply, rounded once)
        assertEquals((float) 0.3, (float) grads.get("a").get(0));
        assertEquals(0f, (float) grads.get("b").get(0));
        assertEquals((float) 0.4, (float) grads.get("b").get(1));
        // below the limit nothing changes, bit for bit
        assertEquals(0.5, AdamW.clipGlobalNorm(grads, 0.5), 1e-7);
        assertEquals((float) 0.3, (float) grads.get("a").get(0));
    }

    @Test
    void scheduleWarmsUpLinearlyThenDecaysByCosineToZero() {
        LrSchedule s = new LrSchedule(1e-3, 10, 110);
        close(1e-4, s.lr(0), "first warm-up step");
        close(5e-4, s.lr(4), "mid warm-up");
        close(1e-3, s.lr(9), "last warm-up step");
        close(1e-3, s.lr(10), "peak: cosine at progress 0");
        close(5e-4, s.lr(60), "half-way: ½(1 + cos π/2)");
        close(1e-3 * 0.5 * (1 + Math.cos(Math.PI * 99 / 100)), s.lr(109), "last step");
        assertEquals(0.0, s.lr(110), 1e-18);
        close(1e-3, new LrSchedule(1e-3, 0, 5).lr(0), "no warm-up starts at the peak");
        assertThrows(InputException.class, () -> new LrSchedule(1e-3, 5, 5));
        assertThrows(InputException.class, () -> new LrSchedule(0, 0, 5));
    }
}
