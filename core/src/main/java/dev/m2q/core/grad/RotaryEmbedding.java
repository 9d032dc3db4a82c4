package dev.m2q.core.grad;

import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Rope;

/**
 * Rotary position embedding, Hugging Face's rotate-half form, on x [nSeq·seqLen, heads·headDim] where row r is at
 * position r % seqLen: per head and i &lt; d/2, (a, b) = (x_i, x_{i+d/2}) becomes (a·cos θ − b·sin θ,
 * b·cos θ + a·sin θ), with the fp32 angles of {@link Rope} (those of the production forward). The map is a
 * rotation R, so the backward is its transpose, the rotation by −θ: dx = Rᵀ·dy. Both run in place.
 */
public final class RotaryEmbedding {
    private final float[] invFreq;
    private final int headDim;

    public RotaryEmbedding(ModelConfig cfg) {
        this.invFreq = Rope.inverseFrequencies(cfg.headDim(), cfg.ropeTheta(), cfg.ropeScalingFactor());
        this.headDim = cfg.headDim();
    }

    /** x = R·x, in place. */
    public void forward(Tensor x, int heads, int seqLen) {
        rotate(x, heads, seqLen, 1);
    }

    /** dy = Rᵀ·dy, in place: turns ∂L/∂(rotated) into ∂L/∂(unrotated). */
    public void backward(Tensor dy, int heads, int seqLen) {
        rotate(dy, heads, seqLen, -1);
    }

    private void rotate(Tensor x, int heads, int seqLen, int direction) {
        int width = heads * headDim;
        if (x.cols() != width || seqLen <= 0 || x.rows() % seqLen != 0) {
            throw new IllegalArgumentException("RoPE input [" + x.rows() + ", " + x.cols() + "] is not [nSeq·" + seqLen
                    + ", " + heads + "·" + headDim + "]");
        }
        int half = headDim / 2;
        float[] cos = new float[seqLen * half];
        float[] sin = new float[seqLen * half];
        float[] c = new float[half];
        float[] s = new float[half];
        for (int pos = 0; pos < seqLen; pos++) {
            Rope.angles(invFreq, pos, c, s);
            System.arraycopy(c, 0, cos, pos * half, half);
            System.arraycopy(s, 0, sin, pos * half, half);
        }
        Parallel.forRange(x.rows(), width, (from, to) -> {
            for (int r = from; r < to; r++) {
                int p = (r % seqLen) * half;
                for (int h = 0; h < heads; h++) {
                    int o = r * width + h * headDim;
                    for (int i = 0; i < half; i++) {
                        double a = x.get(o + i);
                        double b = x.get(o + i + half);
                        double ci = cos[p + i];
                        double si = direction * sin[p + i];
                        x.set(o + i, a * ci - b * si);
                        x.set(o + i + half, b * ci + a * si);
                    }
                }
            }
        });
    }
}
