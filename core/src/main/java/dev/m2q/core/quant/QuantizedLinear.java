package dev.m2q.core.quant;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.Parallel;

/**
 * A linear layer's weight W[N, K] (N = out_features, K = in_features, the PyTorch layout) quantized to 4-bit
 * symmetric codes with one scale per (group, output channel) and the fixed zero point 8 ({@link Bits#zero}):
 * ŵ[n, k] = scales[gIdx[k], n] · (codes[k, n] − 8). This is the GPTQ layout before packing (FORMATS.md §2);
 * {@link GptqPacking} turns it into qweight / qzeros / scales / g_idx.
 *
 * @param outFeatures N
 * @param inFeatures K
 * @param groupSize G; K % G == 0 (a written group_size of −1, one group per row, is G = K here: {@link GroupSize})
 * @param codes [K, N] row-major (input-channel major), each in [0, 15]
 * @param scales [K/G, N] row-major, each finite and exactly representable in IEEE fp16 (the format stores F16, so
 *     an engine dequantizing the file reproduces ŵ bit for bit). RTN and GPTQ write s ≥ 0; AutoRound's full-range
 *     rule puts a group's dominant extreme on code 0 (q − 8 = −8), so where the positive side dominates its scale is
 *     negative. The format has no sign rule: engines just multiply.
 * @param gIdx [K], the group of each input channel, in [0, K/G)
 * @param bits the code width; at 8 bits codes are in [0, 255] and the zero point is 128 (docs/FORMATS-8BIT.md)
 */
public record QuantizedLinear(
        int outFeatures, int inFeatures, int groupSize, int[] codes, float[] scales, int[] gIdx, Bits bits) {
    /** A 4-bit linear, the layout of FORMATS.md. */
    public QuantizedLinear(int outFeatures, int inFeatures, int groupSize, int[] codes, float[] scales, int[] gIdx) {
        this(outFeatures, inFeatures, groupSize, codes, scales, gIdx, Bits.FOUR);
    }

    public QuantizedLinear {
        if (bits == null) {
            throw new IllegalArgumentException("bits is null");
        }
        if (outFeatures <= 0 || inFeatures <= 0 || groupSize <= 0) {
            throw new IllegalArgumentException("bad shape: out " + outFeatures + ", in " + inFeatures + ", group "
                    + groupSize + " (all must be positive)");
        }
        if (inFeatures % groupSize != 0) {
            throw new IllegalArgumentException(
                    "in_features " + inFeatures + " is not a multiple of the group size " + groupSize);
        }
        long n = outFeatures;
        long k = inFeatures;
        int groups = inFeatures / groupSize;
        requireLength("codes", codes.length, k * n);
        requireLength("scales", scales.length, (long) groups * n);
        requireLength("gIdx", gIdx.length, k);
        int maxCode = bits.maxCode();
        for (int i = 0; i < codes.length; i++) {
            if (codes[i] < 0 || codes[i] > maxCode) {
                throw new IllegalArgumentException("code " + codes[i] + " at [" + i / outFeatures + ", "
                        + i % outFeatures + "] not in [0, " + maxCode + "]");
            }
        }
        for (int i = 0; i < scales.length; i++) {
            float s = scales[i];
            if (!Float.isFinite(s) || Float.float16ToFloat(Float.floatToFloat16(s)) != s) {
                throw new IllegalArgumentException("scale " + s + " at [" + i / outFeatures + ", " + i % outFeatures
                        + "] is not a finite fp16 value");
            }
        }
        for (int i = 0; i < gIdx.length; i++) {
            if (gIdx[i] < 0 || gIdx[i] >= groups) {
                throw new IllegalArgumentException("g_idx[" + i + "] = " + gIdx[i] + " not in [0, " + groups + ")");
            }
        }
    }

    /**
     * The codes, scales and g_idx of a packed W4 linear (as {@link PackedLinears} reads any layout); {@code
     * groupSize} may be {@link GroupSize#PER_ROW}, which is K here.
     */
    public static QuantizedLinear of(Matrix.W4 w, int groupSize) {
        int n = w.rows();
        int k = w.cols();
        groupSize = GroupSize.resolve(groupSize, k);
        int[] qweight = new int[k / 8 * n];
        for (int i = 0; i < qweight.length; i++) {
            qweight[i] = w.qweight().getAtIndex(Matrix.LE_INT, i);
        }
        return new QuantizedLinear(n, k, groupSize, GptqPacking.unpackQweight(qweight, k, n), w.scales(), w.gIdx());
    }

    private static void requireLength(String what, int actual, long expected) {
        if (actual != expected) {
            throw new IllegalArgumentException(what + " has " + actual + " values, expected " + expected);
        }
    }

    /** Number of groups, K / G. */
    public int groups() {
        return inFeatures / groupSize;
    }

    /** ŵ[n, k] = scales[gIdx[k], n] · (codes[k, n] − 8), in fp32 (the product is what the algorithms produced). */
    public float dequant(int n, int k) {
        return scales[gIdx[k] * outFeatures + n] * (codes[k * outFeatures + n] - bits.zero());
    }

    /** Ŵ [N, K] row-major fp32. */
    public float[] dequantize() {
        int nn = outFeatures;
        int kk = inFeatures;
        float[] w = new float[nn * kk];
        int zero = bits.zero();
        // The codes are [K, N] and Ŵ is [N, K]: by 64 × 64 tiles so that the transposed writes stay in cache, row
        // blocks of Ŵ over threads (each element is one product, so the split does not change a bit).
        int tile = 64;
        Parallel.forRange((nn + tile - 1) / tile, (long) tile * kk, (from, to) -> {
            for (int n0 = from * tile; n0 < Math.min(nn, to * tile); n0 += tile) {
                int n1 = Math.min(nn, n0 + tile);
                for (int k0 = 0; k0 < kk; k0 += tile) {
                    int k1 = Math.min(kk, k0 + tile);
                    for (int k = k0; k < k1; k++) {
                        int g = gIdx[k] * nn;
                        int c = k * nn;
                        for (int n = n0; n < n1; n++) {
                            w[n * kk + k] = scales[g + n] * (codes[c + n] - zero);
                        }
                    }
                }
            }
        });
        return w;
    }
}
