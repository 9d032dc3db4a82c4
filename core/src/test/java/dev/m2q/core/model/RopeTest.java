package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.grad.RotaryEmbedding;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The scaled rotary frequencies against the published formulas, written here again in double from the papers and
 * model cards (not from {@link RopeScaling}): Llama 3.1's rule and YaRN's ramp, on the published configurations.
 *
 * <p>Tolerance: the tables are fp32 and start from torch's fp32 default frequencies (pow and reciprocal each rounded
 * to fp32, ≤ 1 ulp together), then one rounding of the scaled value; the interpolation weights depend on the
 * frequency smoothly, so the whole is within a few ulps (2⁻²⁴ ≈ 6e-8 relative each). 1e-6 relative is ~16 ulps: a
 * wrong branch, ramp end or factor moves a frequency by at least 1/factor − 1 of a percent or more and fails.
 */
class RopeTest {
    static final double REL = 1e-6;

    /** Llama-3.1-8B's published config: theta 500000, head_dim 128, factor 8, low 1, high 4, original 8192. */
    @Test
    void llama3FrequenciesFollowTheLlama31Rule() {
        int d = 128;
        double theta = 500000.0;
        Rope rope = Rope.of(d, theta, RopeScaling.parse(llama3(8.0, 1.0, 4.0, 8192L), 131072));
        float[] got = rope.inverseFrequencies();
        assertEquals(64, got.length);
        assertEquals(1f, rope.attentionFactor());
        int kept = 0;
        int divided = 0;
        for (int i = 0; i < d / 2; i++) {
            double base = 1.0 / Math.pow(theta, 2.0 * i / d);
            double wavelength = 2 * Math.PI / base;
            double want;
            if (wavelength < 8192.0 / 4.0) { // high-frequency: unchanged
                want = base;
                kept++;
            } else if (wavelength > 8192.0 / 1.0) { // low-frequency: interpolated by the factor
                want = base / 8.0;
                divided++;
            } else { // between: a smooth blend, s = (original/λ − low) / (high − low)
                double s = (8192.0 / wavelength - 1.0) / (4.0 - 1.0);
                want = (1 - s) * base / 8.0 + s * base;
            }
            assertClose(want, got[i], "llama3 invFreq[" + i + "]");
        }
        // 2π·500000^(i/64) < 2048 for i ≤ 28 and > 8192 for i ≥ 35 (by hand: ln(2048/2π)/ln(500000)·64 = 28.2,
        // ln(8192/2π)/ln(500000)·64 = 34.98): 29 kept, 29 divided, 6 blended
        assertEquals(29, kept);
        assertEquals(29, divided);
        assertEquals(got[0], (float) 1.0, "the highest frequency is never scaled");
    }

    /**
     * Qwen2.5's published long-context setting: rope_scaling {type: yarn, factor 4, original 32768}, theta 1e6,
     * head_dim 128. YaRN's ramp runs over pair indices from floor(d·ln(L/(2π·32))/(2 ln θ)) = floor(23.60) = 23 to
     * ceil(d·ln(L/(2π·1))/(2 ln θ)) = ceil(39.65) = 40 (computed by hand); the attention factor is 0.1·ln 4 + 1.
     */
    @Test
    void yarnFrequenciesAndAttentionFactorFollowThePaper() {
        int d = 128;
        double theta = 1e6;
        Map<String, Object> yarn = new HashMap<>();
        yarn.put("type", "yarn");
        yarn.put("factor", 4.0);
        yarn.put("original_max_position_embeddings", 32768L);
        Rope rope = Rope.of(d, theta, RopeScaling.parse(yarn, 32768));
        float[] got = rope.inverseFrequencies();
        double low = 23;
        double high = 40;
        for (int i = 0; i < d / 2; i++) {
            double base = 1.0 / Math.pow(theta, 2.0 * i / d);
            double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
            double want = base * (1 - ramp) + base / 4.0 * ramp;
            assertClose(want, got[i], "yarn invFreq[" + i + "]");
        }
        assertEquals((float) (0.1 * Math.log(4.0) + 1.0), rope.attentionFactor());
        assertEquals(1.1386294f, rope.attentionFactor(), 1e-6f);
    }

    /** truncate=false keeps the ramp's fractional ends; mscale/mscale_all_dim give the ratio of the two mscales. */
    @Test
    void yarnOptionsTruncateAndMscale() {
        int d = 128;
        double theta = 1e6;
        Map<String, Object> yarn = new HashMap<>(Map.of("rope_type", "yarn", "factor", 4.0, "truncate", false));
        yarn.put("mscale", 1.0);
        yarn.put("mscale_all_dim", 0.5);
        Rope rope = Rope.of(d, theta, RopeScaling.parse(yarn, 32768));
        double low = 128 * Math.log(32768 / (32 * 2 * Math.PI)) / (2 * Math.log(theta));
        double high = 128 * Math.log(32768 / (1 * 2 * Math.PI)) / (2 * Math.log(theta));
        float[] got = rope.inverseFrequencies();
        for (int i = 0; i < d / 2; i++) {
            double base = 1.0 / Math.pow(theta, 2.0 * i / d);
            double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
            assertClose(base * (1 - ramp) + base / 4.0 * ramp, got[i], "yarn (no truncation) invFreq[" + i + "]");
        }
        double mscale = (0.1 * 1.0 * Math.log(4) + 1) / (0.1 * 0.5 * Math.log(4) + 1);
        assertEquals((float) mscale, rope.attentionFactor());
        yarn.put("attention_factor", 1.25);
        assertEquals(1.25f, Rope.of(d, theta, RopeScaling.parse(yarn, 32768)).attentionFactor());
    }

    /** Linear scaling divides every frequency; "default" and null are the unscaled table, bit for bit. */
    @Test
    void linearAndDefault() {
        float[] none = Rope.of(64, 10000.0, RopeScaling.NONE).inverseFrequencies();
        assertArrayEquals(
                none,
                Rope.of(64, 10000.0, RopeScaling.parse(Map.of("rope_type", "default"), 2048))
                        .inverseFrequencies());
        float[] lin = Rope.of(64, 10000.0, RopeScaling.parse(Map.of("type", "linear", "factor", 2.0), 2048))
                .inverseFrequencies();
        for (int i = 0; i < none.length; i++) {
            assertEquals(none[i] / 2f, lin[i], "linear invFreq[" + i + "]");
        }
    }

    /**
     * The forward's rotation (kernel + attention factor) and the backward's {@link RotaryEmbedding} agree, and the
     * backward is the transpose of the forward: ⟨m·R·x, y⟩ = ⟨x, m·Rᵀ·y⟩, with YaRN's m ≠ 1.
     */
    @Test
    void forwardAndBackwardShareTheScaledRotation() {
        int d = 16;
        int heads = 2;
        int rows = 5;
        Map<String, Object> yarn = Map.of("rope_type", "yarn", "factor", 8.0, "original_max_position_embeddings", 4L);
        Rope rope = Rope.of(d, 10000.0, RopeScaling.parse(yarn, 4));
        assertNotEquals(1f, rope.attentionFactor());
        SplittableRandom r = new SplittableRandom(19);
        float[] x = new float[rows * heads * d];
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextDouble(-1, 1);
            y[i] = (float) r.nextDouble(-1, 1);
        }
        int[] positions = {0, 1, 2, 3, 4};
        float[] fx = x.clone();
        rope.apply(Kernels.byName("scalar"), fx, rows, heads, positions);
        Tensor tx = f64(x, rows, heads * d);
        RotaryEmbedding grad = new RotaryEmbedding(rope);
        grad.forward(tx, heads, rows);
        for (int i = 0; i < x.length; i++) {
            // fp32 kernel then fp32 scale vs double: a few fp32 ulps of |x| ≤ 1.5
            assertEquals(fx[i], tx.get(i), 1e-6, "forward twins at " + i);
        }
        Tensor ty = f64(y, rows, heads * d);
        grad.backward(ty, heads, rows);
        double lhs = 0;
        double rhs = 0;
        for (int i = 0; i < x.length; i++) {
            lhs += tx.get(i) * y[i];
            rhs += x[i] * ty.get(i);
        }
        assertEquals(lhs, rhs, 1e-9 * x.length, "⟨m·R·x, y⟩ = ⟨x, m·Rᵀ·y⟩");
    }

    @Test
    void refusesTheTypesItDoesNotImplementByName() {
        for (String type : List.of("dynamic", "longrope", "su", "mrope")) {
            InputException e = assertThrows(
                    InputException.class, () -> RopeScaling.parse(Map.of("rope_type", type, "factor", 2.0), 2048));
            assertTrue(e.getMessage().contains("\"" + type + "\""), e.getMessage());
        }
        InputException missing = assertThrows(
                InputException.class, () -> RopeScaling.parse(Map.of("rope_type", "llama3", "factor", 8.0), 2048));
        assertTrue(missing.getMessage().contains("rope_scaling.low_freq_factor"), missing.getMessage());
    }

    static Map<String, Object> llama3(double factor, double low, double high, long original) {
        Map<String, Object> m = new HashMap<>();
        m.put("rope_type", "llama3");
        m.put("factor", factor);
        m.put("low_freq_factor", low);
        m.put("high_freq_factor", high);
        m.put("original_max_position_embeddings", original);
        return m;
    }

    private static Tensor f64(float[] a, int rows, int cols) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return new Tensor.F64(d, rows, cols);
    }

    private static void assertClose(double want, float got, String what) {
        assertTrue(Math.abs(got - want) <= REL * Math.abs(want), what + ": " + got + " vs " + want);
    }
}
