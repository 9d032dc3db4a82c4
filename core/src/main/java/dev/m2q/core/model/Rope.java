package dev.m2q.core.model;

/**
 * Rotary position embedding's inverse frequencies, Hugging Face's convention: θ_i = p / (factor ·
 * theta^(2i/d)) for i in [0, d/2), each frequency rounded to fp32 as torch computes it, so positions far from 0
 * agree with the reference to fp32 rounding. The rotation itself is {@link
 * dev.m2q.core.kernels.Kernels#rope}.
 */
public final class Rope {
    private Rope() {}

    /** invFreq [headDim / 2] fp32. */
    public static float[] inverseFrequencies(int headDim, double theta, double linearFactor) {
        int half = headDim / 2;
        float[] invFreq = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / headDim;
            float f = (float) (1.0 / (float) Math.pow(theta, exponent));
            invFreq[i] = (float) (f / linearFactor);
        }
        return invFreq;
    }

    /**
     * cos θ_i and sin θ_i for position {@code pos} into cos, sin [headDim/2]: the fp32 values the rotation uses
     * (the backward pass rotates back by the same angles).
     */
    public static void angles(float[] invFreq, int pos, float[] cos, float[] sin) {
        for (int i = 0; i < invFreq.length; i++) {
            float angle = (float) pos * invFreq[i];
            cos[i] = (float) Math.cos(angle);
            sin[i] = (float) Math.sin(angle);
        }
    }
}
