package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** {@link QuantizedLinear#dequantize}, tiled and split over threads, against its own element rule. */
class QuantizedLinearTest {
    @Test
    void dequantizeIsTheElementRuleBitForBit() {
        // N = 300, K = 1024: ragged 64-row tiles of Ŵ, eight groups of 128 with a permuted g_idx (act-order), and
        // enough work to split over threads. Each element is one product, so any order gives the same bits.
        int n = 300;
        int k = 1024;
        int g = 128;
        SplittableRandom rnd = new SplittableRandom(17);
        int[] codes = new int[k * n];
        for (int e = 0; e < codes.length; e++) {
            codes[e] = rnd.nextInt(16);
        }
        float[] scales = new float[(k / g) * n];
        for (int e = 0; e < scales.length; e++) {
            scales[e] = Float.float16ToFloat(Float.floatToFloat16((float) (0.001 + rnd.nextDouble() * 0.1)));
        }
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = (c * 5 + 3) % k / g;
        }
        QuantizedLinear q = new QuantizedLinear(n, k, g, codes, scales, gIdx);
        float[] w = q.dequantize();
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                assertEquals(
                        Float.floatToRawIntBits(q.dequant(r, c)),
                        Float.floatToRawIntBits(w[r * k + c]),
                        "w[" + r + ", " + c + "]");
            }
        }
    }
}
