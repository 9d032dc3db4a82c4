package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.grad.FakeQuantizer;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * AutoRound at 8 bits (docs/FORMATS-8BIT.md): the fake quantizer's range and scale come from {@link Bits} (s =
 * fp16(−m/128), q ∈ [−128, 127]), its fp32 fast path equals its twin, and {@link ExactCodes} stores q + 128 as an
 * unsigned byte and gives ŵ back bit for bit. All bit-exact.
 */
class EightBitSignRoundTest {
    static Tensor filled(int rows, int cols, double v) {
        Tensor t = Tensor.f32(rows, cols);
        for (int i = 0; i < t.size(); i++) {
            t.set(i, v);
        }
        return t;
    }

    @Test
    void scaleRuleAndRangeByHand() {
        FakeQuantizer fq = new FakeQuantizer(4, Bits.EIGHT);
        // Negative side larger: s = 2.56/128 = 0.02 rounded to fp16; the extreme lands on −128.
        Tensor.F32 w = new Tensor.F32(new float[] {-2.56f, 1f, 0.5f, 0f, 2.56f, -1f, 0.25f, 0f}, 2, 4);
        Tensor ones = filled(2, 1, 1);
        Tensor s = fq.scales(w, ones, ones);
        float s0 = Float.float16ToFloat(Float.floatToFloat16(2.56f / 128));
        assertEquals(s0, (float) s.get(0), 0f);
        assertEquals(-s0, (float) s.get(1), 0f, "positive side larger: s negative, the extreme on code −128");
        Tensor.F32 wq = (Tensor.F32) fq.forward(w, Tensor.f32(2, 4), ones, ones);
        assertEquals(s0 * -128, wq.data()[0], 0f);
        assertEquals(s0 * (float) Math.rint(1f / s0), wq.data()[1], 0f);
        assertEquals(-s0 * -128, wq.data()[4], 0f);
        // The same weights at 4 bits divide by 8: the width changes the scale, not only the clamp.
        assertEquals(
                Float.float16ToFloat(Float.floatToFloat16(2.56f / 8)),
                (float) new FakeQuantizer(4).scales(w, ones, ones).get(0),
                0f);
    }

    @Test
    void withoutTuningItIsEightBitRtnWithAutoRoundsScaleAndExportsExactly() {
        int rows = 8;
        int cols = 256;
        int g = 128;
        SplittableRandom r = new SplittableRandom(43);
        Tensor w = Tensor.f32(rows, cols);
        for (int i = 0; i < w.size(); i++) {
            w.set(i, r.nextGaussian() * 0.02);
        }
        Tensor ones = filled(rows, cols / g, 1);
        FakeQuantizer fq = new FakeQuantizer(g, Bits.EIGHT);
        Tensor.F32 wq = (Tensor.F32) fq.forward(w, Tensor.f32(rows, cols), ones, ones);
        Tensor s = fq.scales(w, ones, ones);
        for (int i = 0; i < w.size(); i++) {
            float sg = (float) s.get(i / g);
            float wi = (float) w.get(i);
            assertEquals(Rtn.dequant(Rtn.code(wi, sg, Bits.EIGHT), sg, Bits.EIGHT), wq.data()[i], 0f, "element " + i);
        }
        QuantizedLinear q = ExactCodes.of(wq, s, g, Bits.EIGHT);
        assertEquals(Bits.EIGHT, q.bits());
        assertArrayEquals(wq.data(), q.dequantize(), "ŵ = s·(code − 128), bit for bit");
        int high = 0;
        for (int c : q.codes()) {
            high += c > 127 ? 1 : 0;
        }
        assertTrue(high > 0, "codes above 127 survive the byte (read unsigned)");
    }

    @Test
    void fastPathEqualsTheTwinWithTunedOffsets() {
        int rows = 6;
        int cols = 96;
        int g = 32;
        SplittableRandom r = new SplittableRandom(47);
        Tensor w = Tensor.f32(rows, cols);
        Tensor v = Tensor.f32(rows, cols);
        for (int i = 0; i < w.size(); i++) {
            w.set(i, r.nextGaussian() * 0.05);
            v.set(i, r.nextDouble(-0.5, 0.5));
        }
        Tensor alpha = Tensor.f32(rows, cols / g);
        Tensor beta = Tensor.f32(rows, cols / g);
        for (int i = 0; i < alpha.size(); i++) {
            alpha.set(i, r.nextDouble(0.7, 1.0));
            beta.set(i, r.nextDouble(0.7, 1.0));
        }
        FakeQuantizer fq = new FakeQuantizer(g, Bits.EIGHT);
        Tensor.F32 fast = (Tensor.F32) fq.forward(w, v, alpha, beta);
        Tensor twin = Tensor.f32(rows, cols);
        fq.forwardTwin(w, v, alpha, beta, twin);
        assertArrayEquals(((Tensor.F32) twin).data(), fast.data());
        QuantizedLinear q = ExactCodes.of(fast, fq.scales(w, alpha, beta), g, Bits.EIGHT);
        assertArrayEquals(fast.data(), q.dequantize());
        // A 4-bit export of 8-bit ŵ is refused: its codes leave [−8, 7].
        assertThrows(IllegalStateException.class, () -> ExactCodes.of(fast, fq.scales(w, alpha, beta), g));
    }
}
