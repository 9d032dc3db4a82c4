package dev.m2q.eagle.train;

import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.model.Rope;

/**
 * Rotary position embedding at explicit positions, the rotate-half form of {@link
 * dev.m2q.core.kernels.Kernels#rope} with the fp32 angles of {@link Rope}: row r of x [rows, heads·d] is at
 * positions[r]; per head and i &lt; d/2, (a, b) = (x_i, x_{i+d/2}) becomes (a·cos θ − b·sin θ, b·cos θ + a·sin θ).
 * The training-time test needs it because step i puts row t at position t + i − 1, not at t. The map is a
 * rotation R, so the backward is the rotation by −θ. Both run in place.
 */
final class Rotary {
    private final float[] invFreq;
    private final int headDim;

    Rotary(float[] invFreq, int headDim) {
        this.invFreq = invFreq;
        this.headDim = headDim;
    }

    /** x = R·x, in place. */
    void forward(Tensor x, int heads, int[] positions) {
        rotate(x, heads, positions, 1);
    }

    /** dy = Rᵀ·dy, in place: ∂L/∂(rotated) becomes ∂L/∂(unrotated). */
    void backward(Tensor dy, int heads, int[] positions) {
        rotate(dy, heads, positions, -1);
    }

    private void rotate(Tensor x, int heads, int[] positions, int direction) {
        int width = heads * headDim;
        x.requireShape(positions.length, width, "RoPE input");
        int half = headDim / 2;
        int maxPos = 0;
        for (int p : positions) {
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
