package dev.m2q.core.model;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Kernels;

/**
 * Rotary position embedding's tables, Hugging Face's convention: the default inverse frequencies θ_i = 1 /
 * theta^(2i/d) for i in [0, d/2), each rounded to fp32 as torch computes them, then the {@link RopeScaling} rule
 * (linear, llama3, yarn) applied in double and rounded to fp32 once; and the attention factor (YaRN's mscale, 1
 * otherwise) that multiplies cos and sin. The rotation itself is {@link Kernels#rope}, which every backend (the Java
 * kernels and the CUDA twin) runs on this same table, followed here by the fp32 attention factor, so the forward,
 * its KV cache, the draft head and the backward of {@link dev.m2q.core.grad.RotaryEmbedding} share one definition.
 */
public final class Rope {
    private final float[] invFreq;
    private final float attentionFactor;

    private Rope(float[] invFreq, float attentionFactor) {
        this.invFreq = invFreq;
        this.attentionFactor = attentionFactor;
    }

    /** The rotary tables of {@code cfg}'s heads. */
    public static Rope of(ModelConfig cfg) {
        return of(cfg.headDim(), cfg.ropeTheta(), cfg.ropeScaling());
    }

    /** The tables of a head of {@code headDim} (even) with base {@code theta} and {@code scaling}. */
    public static Rope of(int headDim, double theta, RopeScaling scaling) {
        int half = headDim / 2;
        float[] invFreq = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / headDim;
            float base = (float) (1.0 / (float) Math.pow(theta, exponent));
            invFreq[i] = (float) scaling.scale(base, i, headDim, theta);
        }
        return new Rope(invFreq, (float) scaling.attentionFactor());
    }

    /** The scaled inverse frequencies [headDim / 2] fp32 (a copy). */
    public float[] inverseFrequencies() {
        return invFreq.clone();
    }

    /** The fp32 factor on cos and sin (1 unless YaRN). */
    public float attentionFactor() {
        return attentionFactor;
    }

    /** Half the rotary dimension: the number of frequencies. */
    public int pairs() {
        return invFreq.length;
    }

    /**
     * Rotates x [rows, heads·headDim] in place, row r at positions[r], on {@code kernels}, then multiplies by the
     * attention factor (skipped when it is 1, so unscaled models are bit for bit what the kernel alone gives).
     * (c·m)·a − (s·m)·b and m·(c·a − s·b) differ by fp32 rounding only, a few ulps, far below the bf16 rounding of the
     * cos and sin tables transformers itself applies.
     */
    public void apply(Kernels kernels, float[] x, int rows, int heads, int[] positions) {
        int headDim = 2 * invFreq.length;
        kernels.rope(x, rows, heads, headDim, invFreq, positions);
        if (attentionFactor != 1f) {
            int n = rows * heads * headDim;
            for (int i = 0; i < n; i++) {
                x[i] *= attentionFactor;
            }
        }
    }

    /**
     * {@link #apply(Kernels, float[], int, int, int[])} on {@code backend}'s data: rotates x [rows, heads·headDim] in
     * place with {@link Backend#rope}, row r at position startPos + r % seqLen, using {@code invFreq}, this rope's
     * {@link #inverseFrequencies()} resident on the backend; then {@link Backend#scale} by the attention factor
     * (skipped when it is 1). The decoder layer and the draft head both rotate their queries and keys here.
     */
    public void apply(
            Backend backend, Backend.Buf x, int rows, int heads, Backend.Buf invFreq, int startPos, int seqLen) {
        int headDim = 2 * this.invFreq.length;
        backend.rope(x, rows, heads, headDim, invFreq, startPos, seqLen);
        if (attentionFactor != 1f) {
            backend.scale(x, (long) rows * heads * headDim, attentionFactor);
        }
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

    /** {@link #angles(float[], int, float[], float[])} into out[cosOff, cosOff + headDim/2) and from sinOff. */
    public static void angles(float[] invFreq, int pos, float[] out, int cosOff, int sinOff) {
        for (int i = 0; i < invFreq.length; i++) {
            float angle = (float) pos * invFreq[i];
            out[cosOff + i] = (float) Math.cos(angle);
            out[sinOff + i] = (float) Math.sin(angle);
        }
    }
}
