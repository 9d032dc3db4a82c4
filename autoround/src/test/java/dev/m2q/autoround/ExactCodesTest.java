package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.grad.FakeQuantizer;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The export of a fake-quantized weight: codes q + 8, scales transposed, ŵ back bit for bit; off-grid refused. */
class ExactCodesTest {
    @Test
    void tunedWeightsBecomeCodesThatDequantizeToThemExactly() {
        int rows = 16;
        int cols = 64;
        int g = 32;
        SplittableRandom r = new SplittableRandom(9);
        Tensor w = Tensor.f32(rows, cols);
        Tensor v = Tensor.f32(rows, cols);
        for (int i = 0; i < w.size(); i++) {
            w.set(i, r.nextGaussian() * 0.02);
            v.set(i, r.nextDouble(-0.5, 0.5)); // a tuned-looking offset: many codes move off RTN's
        }
        Tensor alpha = Tensor.f32(rows, cols / g);
        Tensor beta = alpha.zerosLike();
        for (int i = 0; i < alpha.size(); i++) {
            alpha.set(i, r.nextDouble(0.7, 1.0));
            beta.set(i, r.nextDouble(0.7, 1.0));
        }
        FakeQuantizer fq = new FakeQuantizer(g);
        Tensor.F32 wq = (Tensor.F32) fq.forward(w, v, alpha, beta);
        Tensor s = fq.scales(w, alpha, beta);
        QuantizedLinear q = ExactCodes.of(wq, s, g);
        assertArrayEquals(wq.data(), q.dequantize(), "ŵ = s·(code − 8), bit for bit");
        int negative = 0;
        for (int row = 0; row < rows; row++) {
            for (int gi = 0; gi < cols / g; gi++) {
                assertEquals((float) s.get(row * (cols / g) + gi), q.scales()[gi * rows + row], 0f);
                negative += q.scales()[gi * rows + row] < 0 ? 1 : 0;
            }
        }
        assertTrue(negative > 0 && negative < rows * cols / g, "both signs of scale occur: " + negative);
        assertEquals(1, q.gIdx()[g]);
    }

    @Test
    void aWeightOffTheGridIsABugNotSomethingToRound() {
        Tensor wq = new Tensor.F32(new float[] {0.25f, -0.5f, 0.3f, 0f}, 1, 4);
        Tensor s = new Tensor.F32(new float[] {0.25f}, 1, 1);
        String msg = assertThrows(IllegalStateException.class, () -> ExactCodes.of(wq, s, 4))
                .getMessage();
        assertTrue(msg.contains("ŵ[0, 2] = 0.3"), msg);
        Tensor beyond = new Tensor.F32(new float[] {2.25f, 0, 0, 0}, 1, 4); // q = 9 > 7
        assertThrows(IllegalStateException.class, () -> ExactCodes.of(beyond, s, 4));
    }
}
