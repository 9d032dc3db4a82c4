package dev.m2q.core.grad;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.quant.Rtn;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** SignRound's fake quantizer: its scale rule in closed form, RTN at the start point, its straight-through gradients. */
class FakeQuantizerTest {
    @Test
    void scaleRulePutsTheLargerClippedExtremeOnCodeMinus8() {
        FakeQuantizer fq = new FakeQuantizer(4);
        Tensor.F32 w = new Tensor.F32(
                new float[] {
                    -3,
                    1,
                    2,
                    0.5f, // negative side larger: s = 3/8
                    3,
                    -1,
                    0.25f,
                    0, // positive side larger: s = −3/8, so 3 is code −8
                    2,
                    -2,
                    1,
                    0, // tie: the positive side, s = −1/4; −2 would be code 8 and clamps to 7
                    0,
                    0,
                    0,
                    0, // all zero: s = τ, ŵ = 0
                    -3,
                    1,
                    2,
                    0.5f, // α = 0.5 clips the negative side to −1.5 < 2: s = −1/4, −3 clamps to 7
                    -3,
                    1,
                    2,
                    0.5f // α = 1.5 acts as 1
                },
                6,
                4);
        Tensor alpha = new Tensor.F32(new float[] {1, 1, 1, 1, 0.5f, 1.5f}, 6, 1);
        Tensor beta = new Tensor.F32(new float[] {1, 1, 1, 1, 1, 1}, 6, 1);
        Tensor wq = fq.forward(w, Tensor.f32(6, 4), alpha, beta);
        float[] want = {
            -3, 1.125f, 1.875f, 0.375f, 3, -1.125f, 0.375f, 0, 2, -1.75f, 1, 0, 0, 0, 0, 0, -1.75f, 1, 2, 0.5f, -3,
            1.125f, 1.875f, 0.375f
        };
        assertArrayEquals(want, ((Tensor.F32) wq).data(), 0f);
        Tensor s = fq.scales(w, alpha, beta);
        assertArrayEquals(
                new float[] {0.375f, -0.375f, -0.25f, (float) FakeQuantizer.MIN_SCALE, -0.25f, 0.375f},
                ((Tensor.F32) s).data(),
                0f);
    }

    /**
     * With V = 0 and α = β = 1 (iteration 0 of SignRound) every ŵ equals, bit for bit, RTN's code and dequant
     * functions applied with the group's scale: ŵ = Rtn.dequant(Rtn.code(w, s), s). Each group's extreme gets
     * code 0 (−8 before the zero point 8): full range.
     */
    @Test
    void withoutTuningItIsRtnWithAutoRoundsScale() {
        int rows = 8;
        int cols = 512;
        int g = 128;
        SplittableRandom r = new SplittableRandom(31);
        Tensor.F32 w = GradCheck.random(r, rows, cols, 0, 0.02).toF32();
        for (int i = 0; i < g; i++) {
            w.data()[i] = 0; // an all-zero group
            w.data()[cols + g + i] *= 1000; // a group with large weights
        }
        Tensor ones = Tensor.f32(rows, cols / g);
        for (int i = 0; i < ones.size(); i++) {
            ones.set(i, 1);
        }
        FakeQuantizer fq = new FakeQuantizer(g);
        Tensor.F32 wq = (Tensor.F32) fq.forward(w, Tensor.f32(rows, cols), ones, ones);
        Tensor s = fq.scales(w, ones, ones);
        for (int i = 0; i < w.size(); i++) {
            float sg = (float) s.get(i / g);
            assertEquals(Rtn.dequant(Rtn.code(w.data()[i], sg), sg), wq.data()[i], 0f, "element " + i);
        }
        for (int k = 1; k < s.size(); k++) { // every group but the all-zero one
            int extreme = k * g;
            for (int i = k * g; i < (k + 1) * g; i++) {
                extreme = Math.abs(w.data()[i]) > Math.abs(w.data()[extreme]) ? i : extreme;
            }
            assertEquals(0, Rtn.code(w.data()[extreme], (float) s.get(k)), "group " + k + "'s extreme is code 0");
            // ŵ = −8·s with s rounded to fp16: within fp16's relative rounding 2⁻¹¹ of w.
            float wi = w.data()[extreme];
            assertEquals(wi, wq.data()[extreme], 0x1p-11f * Math.abs(wi), "group " + k + "'s extreme");
        }
    }

    /**
     * The straight-through gradients are, by definition, the exact gradients of the surrogate in which round() and
     * the fp16 rounding of s are replaced by the identity plus the offsets they had at the evaluation point p₀
     * (round_ste(x) = x + (round(x₀) − x₀), frozen): that surrogate equals ŵ at p₀ and is smooth around it except
     * at the clamp bounds and where the other side of the group starts to set s. The fixture keeps p₀ away from
     * both: α, β ∈ [0.6, 0.8] push each group's extreme to |code| ≥ 9.6 (clamped, gradient 0 on both sides),
     * elements that would round to −8 or 7 get V moved one step inward, and the two clipped extremes differ by
     * ≥ 5 % in every group. Then central differences of the surrogate in fp64 must match at 1e−6 ({@link GradCheck}).
     */
    @Test
    void straightThroughGradientsMatchFiniteDifferencesOfTheFrozenSurrogate() {
        int rows = 3;
        int cols = 16;
        int g = 8;
        SplittableRandom r = new SplittableRandom(32);
        Tensor.F64 w = GradCheck.random(r, rows, cols, 0, 1);
        Tensor.F64 v = Tensor.f64(rows, cols);
        Tensor.F64 alpha = Tensor.f64(rows, cols / g);
        Tensor.F64 beta = Tensor.f64(rows, cols / g);
        for (int i = 0; i < v.size(); i++) {
            v.set(i, r.nextDouble(-0.4, 0.4));
        }
        for (int k = 0; k < alpha.size(); k++) {
            double min = 0;
            double max = 0;
            for (int i = k * g; i < (k + 1) * g; i++) {
                min = Math.min(min, w.get(i));
                max = Math.max(max, w.get(i));
            }
            do { // clip factors whose clipped extremes differ by ≥ 5 %: away from the side switch
                alpha.set(k, r.nextDouble(0.6, 0.8));
                beta.set(k, r.nextDouble(0.6, 0.8));
            } while (Math.abs(-min * alpha.get(k) - max * beta.get(k))
                    < 0.05 * Math.max(-min * alpha.get(k), max * beta.get(k)));
        }
        FakeQuantizer fq = new FakeQuantizer(g);
        Tensor s0 = fq.scales(w, alpha, beta);
        int outside = 0;
        for (int i = 0; i < w.size(); i++) {
            double u = Math.rint(w.get(i) / s0.get(i / g) + v.get(i));
            if (u == -8 || u == 7) {
                v.add(i, -Math.signum(u));
            }
            outside += Math.abs(Math.rint(w.get(i) / s0.get(i / g) + v.get(i))) > 8 ? 1 : 0;
        }
        assertTrue(outside >= alpha.size(), "every group's extreme lies outside the clamp");
        Surrogate f = new Surrogate(w, v, alpha, beta, g, s0);
        Tensor c = GradCheck.random(r, rows, cols, 0, 1);
        double[] at = ((Tensor.F64) fq.forward(w, v, alpha, beta)).data();
        assertArrayEquals(at, f.apply().data(), 1e-12, "the surrogate is ŵ at p₀");

        Tensor dv = v.zerosLike();
        Tensor dAlpha = alpha.zerosLike();
        Tensor dBeta = beta.zerosLike();
        fq.backward(w, v, alpha, beta, c, dv, dAlpha, dBeta);
        GradCheck.check("fake-quant dV", v, dv, () -> GradCheck.dot(c, f.apply()));
        GradCheck.check("fake-quant dα", alpha, dAlpha, () -> GradCheck.dot(c, f.apply()));
        GradCheck.check("fake-quant dβ", beta, dBeta, () -> GradCheck.dot(c, f.apply()));
    }

    /**
     * s̃·clamp(w/s̃ + V + (round(x₀) − x₀), −8, 7) with s̃ = the clipped extreme's −(·)/8 plus its fp16 offset at
     * p₀: written here from ALGORITHMS.md §3 with the sign convention of {@link FakeQuantizer}, not through it.
     */
    private static final class Surrogate {
        private final Tensor.F64 w;
        private final Tensor.F64 v;
        private final Tensor.F64 alpha;
        private final Tensor.F64 beta;
        private final int g;
        private final double[] scaleOffset;
        private final double[] roundOffset;

        Surrogate(Tensor.F64 w, Tensor.F64 v, Tensor.F64 alpha, Tensor.F64 beta, int g, Tensor s0) {
            this.w = w;
            this.v = v;
            this.alpha = alpha;
            this.beta = beta;
            this.g = g;
            scaleOffset = new double[alpha.size()];
            for (int k = 0; k < alpha.size(); k++) {
                scaleOffset[k] = s0.get(k) - rawScale(k);
            }
            roundOffset = new double[w.size()];
            for (int i = 0; i < w.size(); i++) {
                double x = w.get(i) / s0.get(i / g) + v.get(i);
                roundOffset[i] = Math.rint(x) - x;
            }
        }

        /** {−min(w, 0)·α, max(w, 0)·β} of group k. */
        private double[] clipped(int k) {
            double min = 0;
            double max = 0;
            for (int i = k * g; i < (k + 1) * g; i++) {
                min = Math.min(min, w.get(i));
                max = Math.max(max, w.get(i));
            }
            return new double[] {-min * alpha.get(k), max * beta.get(k)};
        }

        private double rawScale(int k) {
            double[] side = clipped(k);
            return side[0] > side[1] ? side[0] / 8 : -side[1] / 8;
        }

        Tensor.F64 apply() {
            Tensor.F64 out = Tensor.f64(w.rows(), w.cols());
            for (int i = 0; i < w.size(); i++) {
                double s = rawScale(i / g) + scaleOffset[i / g];
                double x = w.get(i) / s + v.get(i) + roundOffset[i];
                out.set(i, s * Math.clamp(x, -8, 7));
            }
            return out;
        }
    }

    /** The clamp of α to [0, 1] passes the gradient (as AutoRound's in-place clamp does): α = 1.3 acts as 1. */
    @Test
    void aClipFactorPastItsBoundGetsTheGradientAtTheBound() {
        SplittableRandom r = new SplittableRandom(33);
        Tensor w = new Tensor.F64(new double[] {-3, 1, 2, 0.5, -0.7, 1.9, -2.2, 0.1}, 1, 8);
        Tensor v = Tensor.f64(1, 8);
        Tensor c = GradCheck.random(r, 1, 8, 0, 1);
        FakeQuantizer fq = new FakeQuantizer(8);
        double[] grads = new double[2];
        for (int j = 0; j < 2; j++) {
            Tensor alpha = new Tensor.F64(new double[] {j == 0 ? 1.0 : 1.3}, 1, 1);
            Tensor beta = new Tensor.F64(new double[] {1}, 1, 1);
            Tensor dAlpha = alpha.zerosLike();
            fq.backward(w, v, alpha, beta, c, v.zerosLike(), dAlpha, beta.zerosLike());
            grads[j] = dAlpha.get(0);
        }
        assertNotEquals(0.0, grads[0], "the negative side (−3) sets the scale, so α has a gradient");
        assertEquals(grads[0], grads[1], 0.0);
    }

    /**
     * Group size −1 (one group per row) is group size K, element for element: the same ŵ, scales and gradients,
     * bit for bit, on a seeded weight with non-trivial V, α, β and upstream gradient.
     */
    @Test
    void perRowIsGroupSizeK() {
        int rows = 4;
        int cols = 96;
        SplittableRandom r = new SplittableRandom(17);
        Tensor.F32 w = GradCheck.random(r, rows, cols, 0, 0.02).toF32();
        Tensor.F32 v = GradCheck.random(r, rows, cols, 0, 0.1).toF32();
        Tensor.F32 dwq = GradCheck.random(r, rows, cols, 0, 1).toF32();
        Tensor alpha = Tensor.f32(rows, 1);
        Tensor beta = Tensor.f32(rows, 1);
        for (int i = 0; i < rows; i++) {
            alpha.set(i, 0.7 + 0.05 * i);
            beta.set(i, 0.9 - 0.05 * i);
        }
        FakeQuantizer perRow = new FakeQuantizer(-1);
        FakeQuantizer whole = new FakeQuantizer(cols);
        assertArrayEquals(
                ((Tensor.F32) whole.forward(w, v, alpha, beta)).data(),
                ((Tensor.F32) perRow.forward(w, v, alpha, beta)).data(),
                0f);
        assertArrayEquals(
                ((Tensor.F32) whole.scales(w, alpha, beta)).data(),
                ((Tensor.F32) perRow.scales(w, alpha, beta)).data(),
                0f);
        Tensor.F32[] a = {Tensor.f32(rows, cols), Tensor.f32(rows, 1), Tensor.f32(rows, 1)};
        Tensor.F32[] b = {Tensor.f32(rows, cols), Tensor.f32(rows, 1), Tensor.f32(rows, 1)};
        whole.backward(w, v, alpha, beta, dwq, a[0], a[1], a[2]);
        perRow.backward(w, v, alpha, beta, dwq, b[0], b[1], b[2]);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(a[i].data(), b[i].data(), 0f);
        }
    }
}
