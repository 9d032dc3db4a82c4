package dev.m2q.autoround;

import dev.m2q.core.grad.Tensor;
import dev.m2q.core.quant.GptqPacking;
import dev.m2q.core.quant.QuantizedLinear;

/**
 * Turns a fake-quantized weight into the codes and scales the GPTQ layout stores. SignRound's ŵ is s·q with q an
 * integer in [−8, 7] and s an fp16 value ({@code FakeQuantizer}), so per element q = ŵ/s is exact and the stored
 * code is q + 8; the product s·(code − 8) is exact in fp32 (an 11-bit mantissa times a 4-bit integer), so every
 * reader gets ŵ back bit for bit (a zero code included: the quantizer's q is an integer, so its s·0 has the sign
 * s·(code − 8) has). Anything else is a bug and is refused, not rounded.
 */
public final class ExactCodes {
    private ExactCodes() {}

    /**
     * @param wq ŵ [out, in]
     * @param scales s [out, in/G], the group scales ŵ was computed with (may be negative)
     * @return codes [in, out], scales [in/G, out] (transposed to the layout's order), g_idx = k/G
     * @throws IllegalStateException when an element is not s·q for an integer q in [−8, 7]
     */
    public static QuantizedLinear of(Tensor wq, Tensor scales, int groupSize) {
        int n = wq.rows();
        int k = wq.cols();
        int groups = k / groupSize;
        scales.requireShape(n, groups, "scales");
        int[] codes = new int[k * n];
        float[] s = new float[groups * n];
        for (int r = 0; r < n; r++) {
            for (int g = 0; g < groups; g++) {
                float sc = (float) scales.get(r * groups + g);
                s[g * n + r] = sc;
                for (int c = g * groupSize; c < (g + 1) * groupSize; c++) {
                    float w = (float) wq.get(r * k + c);
                    int q = (int) Math.rint(w / sc);
                    if (q < -QuantizedLinear.ZERO
                            || q > QuantizedLinear.MAX_CODE - QuantizedLinear.ZERO
                            || Float.floatToRawIntBits(sc * q) != Float.floatToRawIntBits(w)) {
                        throw new IllegalStateException("ŵ[" + r + ", " + c + "] = " + w + " is not " + sc
                                + " times an integer in [−8, 7]: the fake quantizer and the export disagree");
                    }
                    codes[c * n + r] = q + QuantizedLinear.ZERO;
                }
            }
        }
        return new QuantizedLinear(n, k, groupSize, codes, s, GptqPacking.gIdxSequential(k, groupSize));
    }
}
