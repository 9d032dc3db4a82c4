package dev.m2q.core.grad;

import dev.m2q.core.kernels.Parallel;

/**
 * The gated MLP activation m = silu(g)·u elementwise, g, u, m [rows, intermediate], silu(g) = g·σ(g). Backward:
 * dg = dm·u·σ(g)·(1 + g·(1 − σ(g))), du = dm·silu(g).
 */
public final class SwiGlu {
    private SwiGlu() {}

    /** Writes m = silu(g)·u. */
    public static void forward(Tensor g, Tensor u, Tensor m) {
        u.requireShape(g.rows(), g.cols(), "up");
        m.requireShape(g.rows(), g.cols(), "SwiGLU output");
        int cols = g.cols();
        Parallel.forRange(g.rows(), cols, (from, to) -> {
            for (int i = from * cols; i < to * cols; i++) {
                double gi = g.get(i);
                m.set(i, gi / (1 + Math.exp(-gi)) * u.get(i));
            }
        });
    }

    /**
     * Writes dg and du given dm = ∂L/∂m. They may be g and u themselves (each element is read before it is
     * written), which is how the decoder layer reuses the saved activations' memory.
     */
    public static void backward(Tensor dm, Tensor g, Tensor u, Tensor dg, Tensor du) {
        u.requireShape(g.rows(), g.cols(), "up");
        dm.requireShape(g.rows(), g.cols(), "SwiGLU dm");
        dg.requireShape(g.rows(), g.cols(), "SwiGLU dg");
        du.requireShape(g.rows(), g.cols(), "SwiGLU du");
        int cols = g.cols();
        Parallel.forRange(g.rows(), cols, (from, to) -> {
            for (int i = from * cols; i < to * cols; i++) {
                double gi = g.get(i);
                double ui = u.get(i);
                double sigma = 1 / (1 + Math.exp(-gi));
                double di = dm.get(i);
                dg.set(i, di * ui * sigma * (1 + gi * (1 - sigma)));
                du.set(i, di * gi * sigma);
            }
        });
    }
}
