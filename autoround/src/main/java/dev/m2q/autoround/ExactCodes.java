package dev.m2q.autoround;

import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GptqPacking;
import dev.m2q.core.quant.GroupSize;
import dev.m2q.core.quant.QuantizedLinear;

/**
 * Turns a fake-quantized weight into the codes and scales the GPTQ layout stores. SignRound's ŵ is s·q with q an
 * integer in [−8, 7] and s an fp16 value ({@code FakeQuantizer}), so per element q = ŵ/s is exact and the stored
 * code is q + 8; the product s·(code − 8) is exact in fp32 (an 11-bit mantissa times a 4-bit integer), so every
 * reader gets ŵ back bit for bit (a zero code included: the quantizer's q is an integer, so its s·0 has the sign
 * s·(code − 8) has). Anything else is a bug and is refused, not rounded. At 8 bits the same holds with q in
 * [−128, 127] stored as q + 128 (an 11-bit mantissa times an 8-bit integer is still exact in fp32); a code is one
 * unsigned byte either way.
 */
public final class ExactCodes {
    private ExactCodes() {}

    /** {@link #codes} then {@link #of(byte[], Tensor, int)}. */
    public static QuantizedLinear of(Tensor wq, Tensor scales, int groupSize) {
        return of(wq, scales, groupSize, Bits.FOUR);
    }

    /** {@link #of(Tensor, Tensor, int)} at {@code bits}. */
    public static QuantizedLinear of(Tensor wq, Tensor scales, int groupSize, Bits bits) {
        byte[] codes = new byte[wq.size()];
        codes(wq, scales, groupSize, codes, bits);
        return of(codes, scales, groupSize, bits);
    }

    /** {@link #codes(Tensor, Tensor, int, byte[], Bits)} at 4 bits. */
    public static void codes(Tensor wq, Tensor scales, int groupSize, byte[] codes) {
        codes(wq, scales, groupSize, codes, Bits.FOUR);
    }

    /**
     * Writes the codes of ŵ into {@code codes} [out, in] row-major (an unsigned byte each, 0..2^b − 1), rows in
     * parallel.
     *
     * @param wq ŵ [out, in]
     * @param scales s [out, in/G], the group scales ŵ was computed with (may be negative)
     * @param groupSize G, or {@link GroupSize#PER_ROW} for one group of the whole row
     * @throws IllegalStateException when an element is not s·q for an integer q in [−2^(b−1), 2^(b−1) − 1] ([−8, 7]
     *     at 4 bits), bit for bit
     */
    public static void codes(Tensor wq, Tensor scales, int groupSize, byte[] codes, Bits bits) {
        int zero = bits.zero();
        int top = bits.maxCode() - zero;
        int k = wq.cols();
        groupSize = GroupSize.resolve(groupSize, k);
        int g1 = groupSize;
        int groups = k / groupSize;
        scales.requireShape(wq.rows(), groups, "scales");
        if (codes.length != wq.size() || k % groupSize != 0) {
            throw new IllegalArgumentException("codes for ŵ [" + wq.rows() + ", " + k + "] in groups of " + groupSize
                    + " need " + wq.size() + " bytes and whole groups, got " + codes.length);
        }
        Parallel.forRange(wq.rows(), k, (from, to) -> {
            for (int r = from; r < to; r++) {
                for (int g = 0; g < groups; g++) {
                    float sc = (float) scales.get(r * groups + g);
                    for (int c = g * g1; c < (g + 1) * g1; c++) {
                        float w = (float) wq.get(r * k + c);
                        int q = (int) Math.rint(w / sc);
                        if (q < -zero || q > top || Float.floatToRawIntBits(sc * q) != Float.floatToRawIntBits(w)) {
                            throw new IllegalStateException("ŵ[" + r + ", " + c + "] = " + w + " is not " + sc
                                    + " times an integer in [" + -zero + ", " + top
                                    + "]: the fake quantizer and the export disagree");
                        }
                        codes[r * k + c] = (byte) (q + zero);
                    }
                }
            }
        });
    }

    /**
     * The layout's linear from codes [out, in] (as {@link #codes} writes them) and scales [out, in/G]: codes
     * transposed to [in, out], scales to [in/G, out], g_idx = k/G. With {@link GroupSize#PER_ROW} the scales have
     * one column and K is the codes' row length.
     */
    public static QuantizedLinear of(byte[] codes, Tensor scales, int groupSize) {
        return of(codes, scales, groupSize, Bits.FOUR);
    }

    /** {@link #of(byte[], Tensor, int)} of codes at {@code bits} (each byte read unsigned). */
    public static QuantizedLinear of(byte[] codes, Tensor scales, int groupSize, Bits bits) {
        int n = scales.rows();
        int groups = scales.cols();
        if (groupSize == GroupSize.PER_ROW && groups == 1) {
            groupSize = codes.length / n;
        }
        int k = groups * groupSize;
        if (codes.length != (long) n * k) {
            throw new IllegalArgumentException(codes.length + " codes do not make W [" + n + ", " + k
                    + "] with scales [" + n + ", " + groups + "]");
        }
        int[] transposed = new int[k * n];
        float[] s = new float[groups * n];
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                transposed[c * n + r] = codes[r * k + c] & 0xFF;
            }
            for (int g = 0; g < groups; g++) {
                s[g * n + r] = (float) scales.get(r * groups + g);
            }
        }
        return new QuantizedLinear(n, k, groupSize, transposed, s, GptqPacking.gIdxSequential(k, groupSize), bits);
    }
}
