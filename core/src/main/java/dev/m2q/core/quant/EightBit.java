package dev.m2q.core.quant;

import dev.m2q.core.tensor.Fp8;

/**
 * The 8-bit number formats m2q calibrates activations and the KV cache for (ALGORITHMS.md §4), symmetric, with
 * one scale per tensor, per KV head or per token: scale = amax / {@link #max()}, and x is represented as
 * scale · c with c an 8-bit value.
 */
public enum EightBit {
    /**
     * FP8 e4m3fn: scale = amax / 448; c = e4m3(x / scale), round to nearest even, saturating at ±448
     * ({@link Fp8#floatToE4M3}).
     */
    FP8("float", Fp8.E4M3_MAX),
    /** INT8: scale = amax / 127; c = rint(x / scale) (half to even), clamped to the int8 range [−128, 127]. */
    INT8("int", 127f);

    private final String type;
    private final float max;

    EightBit(String type, float max) {
        this.type = type;
        this.max = max;
    }

    /** compressed-tensors' "type" of these quantization args: "float" or "int". */
    public String type() {
        return type;
    }

    /** The largest magnitude the scale maps amax to: 448 or 127. */
    public float max() {
        return max;
    }

    /**
     * The scale for a calibrated range amax: amax / max in fp32 (correctly rounded). An all-zero range (amax 0)
     * gets the scale of amax 1, as RTN does for an all-zero group, so the scale stays a usable positive number.
     *
     * @throws IllegalArgumentException for a negative, infinite or NaN amax
     */
    public float scale(float amax) {
        if (!(amax >= 0) || Float.isInfinite(amax)) {
            throw new IllegalArgumentException("amax " + amax + " is not a finite non-negative number");
        }
        return (amax == 0f ? 1f : amax) / max;
    }

    /** scale · c for the 8-bit value c nearest x / scale under this format's rounding and saturation. */
    public float fakeQuant(float x, float scale) {
        float y = x / scale;
        float c = this == FP8 ? Fp8.roundE4M3(y) : (float) Math.max(-128, Math.min(127, Math.rint(y)));
        return scale * c;
    }

    /** Fake-quantizes x[off .. off + n) in place with one scale. */
    public void fakeQuant(float[] x, int off, int n, float scale) {
        for (int i = off; i < off + n; i++) {
            x[i] = fakeQuant(x[i], scale);
        }
    }

    /**
     * Dynamic per-token quantization in place, what engines do for "strategy": "token", "dynamic": true: each row
     * of x [rows, cols] gets scale = amax_row / max. An all-zero row stays zero.
     */
    public void fakeQuantPerToken(float[] x, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            int off = r * cols;
            float amax = 0f;
            for (int c = 0; c < cols; c++) {
                amax = Math.max(amax, Math.abs(x[off + c]));
            }
            if (amax > 0f) {
                fakeQuant(x, off, cols, amax / max);
            }
        }
    }

    /** Whether |x| / scale lies beyond what the format represents without clipping (|x| > max · scale). */
    public boolean saturates(float x, float scale) {
        return Math.abs(x) / scale > max;
    }
}
