package dev.m2q.core.quant;

import dev.m2q.core.kernels.Parallel;

/**
 * Round to nearest (ALGORITHMS.md §1), the 4-bit symmetric quantizer every report compares against and the
 * per-column rule inside GPTQ: per output row and group of G consecutive input columns, s = 2·absmax/15, zero 8,
 * q = clamp(round(w/s) + 8, 0, 15), ŵ = s·(q − 8).
 *
 * <p>The scale is rounded to IEEE fp16 <em>before</em> any code is chosen. The checkpoint stores scales as F16,
 * so quantizing with the fp32 scale and rounding it afterwards would make every engine dequantize to a slightly
 * different ŵ than the one the algorithm measured (and, in GPTQ, compensated). Rounding first makes the written
 * file reproduce ŵ exactly. Because the rounded scale may be a hair below 2·absmax/15, the extreme weight can
 * land just past ±7.5 steps; the clamp keeps codes in [0, 15] as usual.
 */
public final class Rtn {
    private Rtn() {}

    /**
     * The fp16-rounded symmetric scale for a group whose largest |w| is {@code absmax}: 2·absmax/15, computed in
     * fp32 like torch. An all-zero group (absmax 0) uses the range [−1, 1], s = 2/15, so it still has a usable
     * non-zero scale. A scale that underflows fp16 to 0 becomes the smallest fp16 subnormal (2⁻²⁴); every code
     * of such a group is then 8, i.e. ŵ = 0.
     *
     * @throws IllegalArgumentException when absmax is NaN, negative, or so large that the scale overflows fp16
     */
    public static float scale(float absmax) {
        if (!(absmax >= 0)) {
            throw new IllegalArgumentException("group absmax " + absmax + " is not a non-negative number");
        }
        float s = absmax == 0f ? 2f / 15f : 2f * absmax / 15f;
        float h = Float.float16ToFloat(Float.floatToFloat16(s));
        if (Float.isInfinite(h)) {
            throw new IllegalArgumentException(
                    "group absmax " + absmax + " needs scale " + s + ", beyond the fp16 range (max 65504)");
        }
        return h == 0f ? Float.float16ToFloat((short) 1) : h;
    }

    /** q = clamp(rint(w/s) + 8, 0, 15): w/s in fp32, rounded half to even like torch.round. */
    public static int code(float w, float scale) {
        int q = (int) Math.rint(w / scale) + Bits.FOUR.zero();
        return Math.max(0, Math.min(Bits.FOUR.maxCode(), q));
    }

    /** ŵ = s·(q − 8) in fp32, the value {@link QuantizedLinear#dequant} gives back. */
    public static float dequant(int code, float scale) {
        return scale * (code - Bits.FOUR.zero());
    }

    /**
     * RTN of W [N, K] row-major fp32 with group size G (K % G == 0); g_idx = k / G.
     *
     * @throws IllegalArgumentException on a bad shape or a non-finite weight
     */
    public static QuantizedLinear quantize(float[] w, int n, int k, int groupSize) {
        return quantize(w, n, k, groupSize, false);
    }

    /**
     * RTN of W [N, K] as {@link #quantize(float[], int, int, int)}, each group's scale from {@link ClipSearch} when
     * {@code clipSearch} (rows in parallel: the search measures each group about a hundred times).
     *
     * @throws IllegalArgumentException on a bad shape or a non-finite weight
     */
    public static QuantizedLinear quantize(float[] w, int n, int k, int groupSize, boolean clipSearch) {
        return quantize(w, n, k, groupSize, Bits.FOUR, clipSearch);
    }

    /**
     * RTN of W [N, K] at {@code bits} (codes, zero point and scale from the width: 4 bits is
     * {@link #quantize(float[], int, int, int)}'s rule), each group's scale from {@link ClipSearch} at the same width
     * when {@code clipSearch}.
     *
     * @throws IllegalArgumentException on a bad shape or a non-finite weight
     */
    public static QuantizedLinear quantize(float[] w, int n, int k, int groupSize, Bits bits, boolean clipSearch) {
        if (n <= 0 || k <= 0 || groupSize <= 0 || k % groupSize != 0 || w.length != (long) n * k) {
            throw new IllegalArgumentException("RTN needs W [" + n + ", " + k + "] (" + (long) n * k + " values, got "
                    + w.length + ") with K a multiple of the group size " + groupSize);
        }
        int groups = k / groupSize;
        int[] codes = new int[k * n];
        float[] scales = new float[groups * n];
        for (int r = 0; r < n; r++) {
            int row = r * k;
            for (int c = row; c < row + k; c++) {
                if (!Float.isFinite(w[c])) {
                    throw new IllegalArgumentException(
                            "weight [" + r + ", " + (c - row) + "] is " + w[c] + "; cannot quantize");
                }
            }
        }
        Parallel.forRange(n, clipSearch ? (long) k * ClipSearch.STEPS : k, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int row = r * k;
                for (int g = 0; g < groups; g++) {
                    int from = row + g * groupSize;
                    float absmax = 0f;
                    for (int c = from; c < from + groupSize; c++) {
                        absmax = Math.max(absmax, Math.abs(w[c]));
                    }
                    float s = clipSearch ? ClipSearch.scale(w, from, 1, groupSize, absmax, bits) : scale(absmax, bits);
                    scales[g * n + r] = s;
                    for (int c = from; c < from + groupSize; c++) {
                        codes[(c - row) * n + r] = code(w[c], s, bits);
                    }
                }
            }
        });
        return new QuantizedLinear(n, k, groupSize, codes, scales, GptqPacking.gIdxSequential(k, groupSize), bits);
    }

    /**
     * The fp16-rounded symmetric scale at {@code bits}: 2·absmax/(2^b − 1) in fp32 (2·absmax/255 at 8 bits), with
     * the same all-zero, underflow and overflow rules as {@link #scale(float)}; at 4 bits it is that method.
     */
    public static float scale(float absmax, Bits bits) {
        if (bits.value() == 4) {
            return scale(absmax);
        }
        if (!(absmax >= 0)) {
            throw new IllegalArgumentException("group absmax " + absmax + " is not a non-negative number");
        }
        float levels = bits.maxCode();
        float s = absmax == 0f ? 2f / levels : 2f * absmax / levels;
        float h = Float.float16ToFloat(Float.floatToFloat16(s));
        if (Float.isInfinite(h)) {
            throw new IllegalArgumentException(
                    "group absmax " + absmax + " needs scale " + s + ", beyond the fp16 range (max 65504)");
        }
        return h == 0f ? Float.float16ToFloat((short) 1) : h;
    }

    /** q = clamp(rint(w/s) + zero, 0, 2^b − 1) at {@code bits}. */
    public static int code(float w, float scale, Bits bits) {
        int q = (int) Math.rint(w / scale) + bits.zero();
        return Math.max(0, Math.min(bits.maxCode(), q));
    }

    /** ŵ = s·(q − zero) at {@code bits}. */
    public static float dequant(int code, float scale, Bits bits) {
        return scale * (code - bits.zero());
    }

    /** RTN of W [N, K] at {@code bits}, without the clipping search. */
    public static QuantizedLinear quantize(float[] w, int n, int k, int groupSize, Bits bits) {
        return quantize(w, n, k, groupSize, bits, false);
    }
}
