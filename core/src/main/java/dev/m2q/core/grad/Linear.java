package dev.m2q.core.grad;

import dev.m2q.core.kernels.Kernels;

/** A linear layer y = x·Wᵀ + b, the PyTorch layout: x [rows, in], W [out, in], b [1, out] or null, y [rows, out]. */
public final class Linear {
    private Linear() {}

    /** y = x·Wᵀ + b, a new tensor [rows, out] of x's precision. */
    public static Tensor forward(Kernels kernels, Tensor x, Tensor w, Tensor b) {
        checkShapes(x, w, b);
        Tensor y = x.zeros(x.rows(), w.rows());
        Products.linear(kernels, x, w, b, y);
        return y;
    }

    /**
     * Adds the gradients of y = x·Wᵀ + b given dy = ∂L/∂y [rows, out]: dx [rows, in] += dy·W, dw [out, in] += dyᵀ·x,
     * db [1, out] += Σ_rows dy. Any of dx, dw, db may be null when that gradient is not wanted.
     */
    public static void backward(Kernels kernels, Tensor dy, Tensor x, Tensor w, Tensor dx, Tensor dw, Tensor db) {
        checkShapes(x, w, db);
        dy.requireShape(x.rows(), w.rows(), "dy");
        if (dx != null) {
            dx.requireShape(x.rows(), w.cols(), "dx");
            Products.addProduct(kernels, dy, w, dx);
        }
        if (dw != null) {
            dw.requireShape(w.rows(), w.cols(), "dw");
            Products.addTransposedProduct(kernels, dy, x, dw);
        }
        if (db != null) {
            int out = w.rows();
            double[] sum = new double[out];
            for (int t = 0; t < dy.rows(); t++) {
                for (int j = 0; j < out; j++) {
                    sum[j] += dy.get(t * out + j);
                }
            }
            for (int j = 0; j < out; j++) {
                db.add(j, sum[j]);
            }
        }
    }

    private static void checkShapes(Tensor x, Tensor w, Tensor b) {
        if (x.cols() != w.cols()) {
            throw new IllegalArgumentException(
                    "linear input has " + x.cols() + " features, weight [" + w.rows() + ", " + w.cols() + "]");
        }
        if (b != null) {
            b.requireShape(1, w.rows(), "bias");
        }
    }
}
