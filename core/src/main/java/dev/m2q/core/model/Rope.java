package dev.m2q.core.model;

/**
 * Rotary position embedding with Hugging Face's rotate-half convention: for i in [0, d/2), with
 * θ_i = p / (factor · theta^(2i/d)), x'[i] = x[i]·cos θ_i − x[i + d/2]·sin θ_i and
 * x'[i + d/2] = x[i + d/2]·cos θ_i + x[i]·sin θ_i. Frequencies and angles are rounded to fp32 as torch computes
 * them, so positions far from 0 agree with the reference to fp32 rounding.
 */
public final class Rope {
    private final int headDim;
    private final float[] invFreq;

    public Rope(int headDim, double theta, double linearFactor) {
        this.headDim = headDim;
        int half = headDim / 2;
        invFreq = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / headDim;
            float f = (float) (1.0 / (float) Math.pow(theta, exponent));
            invFreq[i] = (float) (f / linearFactor);
        }
    }

    /**
     * Rotates, in place, row {@code row} of {@code buf} [rows, heads·headDim], every head, for absolute
     * position {@code pos}.
     */
    void apply(float[] buf, int row, int heads, int pos, float[] cos, float[] sin) {
        int half = headDim / 2;
        angles(pos, cos, sin);
        int base = row * heads * headDim;
        for (int h = 0; h < heads; h++) {
            int o = base + h * headDim;
            for (int i = 0; i < half; i++) {
                float a = buf[o + i];
                float b = buf[o + i + half];
                buf[o + i] = a * cos[i] - b * sin[i];
                buf[o + i + half] = b * cos[i] + a * sin[i];
            }
        }
    }

    /**
     * cos θ_i and sin θ_i for position {@code pos} into cos, sin [headDim/2], the fp32 values {@link #apply}
     * rotates with (the backward pass rotates back by the same angles).
     */
    public void angles(int pos, float[] cos, float[] sin) {
        for (int i = 0; i < headDim / 2; i++) {
            float angle = (float) pos * invFreq[i];
            cos[i] = (float) Math.cos(angle);
            sin[i] = (float) Math.sin(angle);
        }
    }
}
