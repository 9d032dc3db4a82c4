package dev.m2q.core.grad;

import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Rope;

/**
 * Rotary position embedding, Hugging Face's rotate-half form, on x [rows, heads·headDim]: per head and i &lt; d/2,
 * (a, b) = (x_i, x_{i+d/2}) becomes (a·cos θ − b·sin θ, b·cos θ + a·sin θ), with the fp32 angles of {@link Rope}
 * (those of the production forward). Row r sits at position r % seqLen (nSeq sequences of seqLen rows), or at
 * positions[r] (EAGLE-3's training-time test puts step i's row t at t + i − 1). With the attention factor m of
 * {@link Rope} (YaRN's; 1 otherwise) on cos and sin, the map is m·R, R a rotation, so the backward is its transpose
 * m·Rᵀ, the rotation by −θ scaled by m: dx = m·Rᵀ·dy. Both run in place.
 */
public final class RotaryEmbedding {
    private final float[] invFreq;
    private final double attentionFactor;
    private final int headDim;

    public RotaryEmbedding(ModelConfig cfg) {
        this(Rope.of(cfg));
    }

    /** With the tables of {@code rope} (its inverse frequencies and attention factor). */
    public RotaryEmbedding(Rope rope) {
        this.invFreq = rope.inverseFrequencies();
        this.attentionFactor = rope.attentionFactor();
        this.headDim = 2 * invFreq.length;
    }

    /** x = R·x, in place; row r at position r % seqLen. */
    public void forward(Tensor x, int heads, int seqLen) {
        rotate(x, heads, positions(x, heads, seqLen), 1);
    }

    /** dy = Rᵀ·dy, in place: turns ∂L/∂(rotated) into ∂L/∂(unrotated). */
    public void backward(Tensor dy, int heads, int seqLen) {
        rotate(dy, heads, positions(dy, heads, seqLen), -1);
    }

    /** x = R·x, in place; row r at positions[r]. */
    public void forward(Tensor x, int heads, int[] positions) {
        rotate(x, heads, positions, 1);
    }

    /** dy = Rᵀ·dy, in place; row r at positions[r]. */
    public void backward(Tensor dy, int heads, int[] positions) {
        rotate(dy, heads, positions, -1);
    }

    private int[] positions(Tensor x, int heads, int seqLen) {
        if (x.cols() != heads * headDim || seqLen <= 0 || x.rows() % seqLen != 0) {
            throw new IllegalArgumentException("RoPE input [" + x.rows() + ", " + x.cols() + "] is not [nSeq·" + seqLen
                    + ", " + heads + "·" + headDim + "]");
        }
        int[] p = new int[x.rows()];
        for (int r = 0; r < p.length; r++) {
            p[r] = r % seqLen;
        }
        return p;
    }

    private void rotate(Tensor x, int heads, int[] positions, int direction) {
        int width = heads * headDim;
        x.requireShape(positions.length, width, "RoPE input");
        int half = headDim / 2;
        int maxPos = 0;
        for (int p : positions) {
            if (p < 0) {
                throw new IllegalArgumentException("negative RoPE position " + p);
            }
            maxPos = Math.max(maxPos, p);
        }
        float[] cos = new float[(maxPos + 1) * half];
        float[] sin = new float[(maxPos + 1) * half];
        float[] c = new float[half];
        float[] s = new float[half];
        for (int pos = 0; pos <= maxPos; pos++) {
            Rope.angles(invFreq, pos, c, s);
            System.arraycopy(c, 0, cos, pos * half, half);
            System.arraycopy(s, 0, sin, pos * half, half);
        }
        Parallel.forRange(x.rows(), width, (from, to) -> {
            for (int r = from; r < to; r++) {
                int p = positions[r] * half;
                for (int h = 0; h < heads; h++) {
                    int o = r * width + h * headDim;
                    for (int i = 0; i < half; i++) {
                        double a = x.get(o + i);
                        double b = x.get(o + i + half);
                        double ci = attentionFactor * cos[p + i];
                        double si = attentionFactor * direction * sin[p + i];
                        x.set(o + i, a * ci - b * si);
                        x.set(o + i + half, b * ci + a * si);
                    }
                }
            }
        });
    }
}
