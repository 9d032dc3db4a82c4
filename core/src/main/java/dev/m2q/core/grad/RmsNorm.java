package dev.m2q.core.grad;

import dev.m2q.core.kernels.Parallel;

/**
 * RMSNorm per row: y_i = w_i · x_i · r with r = 1/√(mean_j x_j² + eps), x and y [rows, dim], w [1, dim]. The
 * forward keeps only r [rows, 1]; the backward and the weight gradients' caller recompute y from it
 * ({@link #apply}), one multiply per element instead of a saved [rows, dim] activation.
 *
 * <p>Backward: ∂r/∂x_j = −r³·x_j/dim, so with c = Σ_i w_i·dy_i·x_i, dx_j = r·(w_j·dy_j − r²·x_j·c/dim) and
 * dw_i = Σ_rows dy_i·x_i·r.
 */
public final class RmsNorm {
    private RmsNorm() {}

    /** Writes y = RMSNorm(x) and returns r [rows, 1], the per-row inverse root mean square. */
    public static Tensor forward(Tensor x, Tensor w, double eps, Tensor y) {
        int rows = x.rows();
        int dim = x.cols();
        Tensor invRms = x.zeros(rows, 1);
        Parallel.forRange(rows, dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                double ss = 0;
                for (int i = 0; i < dim; i++) {
                    double v = x.get(r * dim + i);
                    ss += v * v;
                }
                invRms.set(r, 1 / Math.sqrt(ss / dim + eps));
            }
        });
        apply(x, w, invRms, y);
        return invRms;
    }

    /** Writes y = w ∘ x · r from the r the forward returned: the forward output again, bit for bit. */
    public static void apply(Tensor x, Tensor w, Tensor invRms, Tensor y) {
        int dim = x.cols();
        checkShapes(x, w, invRms);
        y.requireShape(x.rows(), dim, "RMSNorm output");
        Parallel.forRange(x.rows(), dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                double inv = invRms.get(r);
                for (int i = 0; i < dim; i++) {
                    y.set(r * dim + i, w.get(i) * (x.get(r * dim + i) * inv));
                }
            }
        });
    }

    /** Adds dx [rows, dim] and dw [1, dim] (either may be null) given dy = ∂L/∂y and the forward's r. */
    public static void backward(Tensor dy, Tensor x, Tensor w, Tensor invRms, Tensor dx, Tensor dw) {
        int rows = x.rows();
        int dim = x.cols();
        checkShapes(x, w, invRms);
        dy.requireShape(rows, dim, "RMSNorm dy");
        if (dx != null) {
            dx.requireShape(rows, dim, "RMSNorm dx");
            Parallel.forRange(rows, dim, (from, to) -> {
                for (int r = from; r < to; r++) {
                    int o = r * dim;
                    double inv = invRms.get(r);
                    double c = 0;
                    for (int i = 0; i < dim; i++) {
                        c += w.get(i) * dy.get(o + i) * x.get(o + i);
                    }
                    double k = inv * inv * c / dim;
                    for (int i = 0; i < dim; i++) {
                        dx.add(o + i, inv * (w.get(i) * dy.get(o + i) - k * x.get(o + i)));
                    }
                }
            });
        }
        if (dw != null) {
            dw.requireShape(1, dim, "RMSNorm dw");
            // Split by columns so each sum over rows is one thread's, in row order: deterministic.
            Parallel.forRange(dim, rows, (from, to) -> {
                double[] sum = new double[to - from];
                for (int r = 0; r < rows; r++) {
                    double inv = invRms.get(r);
                    for (int i = from; i < to; i++) {
                        sum[i - from] += dy.get(r * dim + i) * x.get(r * dim + i) * inv;
                    }
                }
                for (int i = from; i < to; i++) {
                    dw.add(i, sum[i - from]);
                }
            });
        }
    }

    private static void checkShapes(Tensor x, Tensor w, Tensor invRms) {
        w.requireShape(1, x.cols(), "RMSNorm weight");
        invRms.requireShape(x.rows(), 1, "RMSNorm saved 1/rms");
    }
}
