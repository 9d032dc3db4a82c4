package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GptqPacking;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * GPTQ's column loop at 8 bits. With U = I every compensation term is err·0 = 0 (the weights are finite, so the
 * products are exact zeros and each FMA returns w unchanged), so the loop must give RTN's codes and scales at 8
 * bits bit for bit, on both CPU kernel sets.
 */
class GptqEightBitTest {
    @Test
    void identityHessianFactorGivesRtnAtEightBits() {
        Random rng = new Random(17_003L);
        int n = 8;
        int k = 64;
        int g = 16;
        float[] w = new float[n * k]; // W [N, K]
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rng.nextGaussian() * 0.05);
        }
        QuantizedLinear rtn = Rtn.quantize(w, n, k, g, Bits.EIGHT);
        for (Kernels kern : new Kernels[] {ScalarKernels.INSTANCE, VectorKernels.INSTANCE}) {
            float[] w1 = new float[k * n]; // Wᵀ
            for (int r = 0; r < n; r++) {
                for (int c = 0; c < k; c++) {
                    w1[c * n + r] = w[r * k + c];
                }
            }
            float[] u = new float[k * k];
            for (int i = 0; i < k; i++) {
                u[i * k + i] = 1f;
            }
            GptqCodes got = new JavaGptqKernels(kern)
                    .columnLoop(new GptqProblem(w1, u, k, n, g, 32, null, null, Bits.EIGHT, false));
            assertArrayEquals(rtn.codes(), got.codes(), kern.toString());
            assertArrayEquals(rtn.scales(), got.scales(), kern.toString());
            assertArrayEquals(GptqPacking.gIdxSequential(k, g), got.gIdx());
        }
        // 8-bit codes really use the wider range: a group of Gaussians spans far more than 16 levels.
        int max = 0;
        int min = 255;
        for (int c : rtn.codes()) {
            max = Math.max(max, c);
            min = Math.min(min, c);
        }
        assertEquals(true, max - min > 15, "8-bit codes span " + min + ".." + max);
    }
}
