package dev.m2q.eagle.train;

import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;

/**
 * The vector products and column moves the training-time test needs besides {@link dev.m2q.core.grad.Linear}:
 * fp32 tensors go to the {@link Kernels} (fp32 accumulation), fp64 tensors to plain loops, the reference the
 * gradient checks run on. Mixing precisions is refused.
 */
final class TensorOps {
    private TensorOps() {}

    /** Σ a[aOff + i] · b[bOff + i] for i in [0, n). */
    static double dot(Kernels kernels, Tensor a, int aOff, Tensor b, int bOff, int n) {
        if (a instanceof Tensor.F32 af && b instanceof Tensor.F32 bf) {
            return kernels.dot(af.data(), aOff, bf.data(), bOff, n);
        }
        double[] ad = f64(a);
        double[] bd = f64(b);
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += ad[aOff + i] * bd[bOff + i];
        }
        return s;
    }

    /** y[yOff + i] += alpha · x[xOff + i] for i in [0, n). */
    static void axpy(Kernels kernels, double alpha, Tensor x, int xOff, Tensor y, int yOff, int n) {
        if (x instanceof Tensor.F32 xf && y instanceof Tensor.F32 yf) {
            kernels.axpy((float) alpha, xf.data(), xOff, yf.data(), yOff, n);
            return;
        }
        double[] xd = f64(x);
        double[] yd = f64(y);
        for (int i = 0; i < n; i++) {
            yd[yOff + i] += alpha * xd[xOff + i];
        }
    }

    /** [left, right] side by side per row: left [rows, a], right [rows, b] → [rows, a + b]. */
    static Tensor concat(Tensor left, Tensor right) {
        int rows = left.rows();
        int a = left.cols();
        int b = right.cols();
        right.requireShape(rows, b, "right half");
        Tensor out = left.zeros(rows, a + b);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < a; i++) {
                out.set(r * (a + b) + i, left.get(r * a + i));
            }
            for (int i = 0; i < b; i++) {
                out.set(r * (a + b) + a + i, right.get(r * b + i));
            }
        }
        return out;
    }

    /** Columns [from, from + width) of x [rows, cols], a new [rows, width]. */
    static Tensor columns(Tensor x, int from, int width) {
        int cols = x.cols();
        Tensor out = x.zeros(x.rows(), width);
        for (int r = 0; r < x.rows(); r++) {
            for (int i = 0; i < width; i++) {
                out.set(r * width + i, x.get(r * cols + from + i));
            }
        }
        return out;
    }

    /** acc += x, elementwise. */
    static void addInto(Tensor acc, Tensor x) {
        x.requireShape(acc.rows(), acc.cols(), "addend");
        for (int i = 0; i < acc.size(); i++) {
            acc.add(i, x.get(i));
        }
    }

    private static double[] f64(Tensor t) {
        if (t instanceof Tensor.F64 d) {
            return d.data();
        }
        throw new IllegalArgumentException("an fp32 tensor [" + t.rows() + ", " + t.cols()
                + "] in a product with fp64 operands: keep one precision per pass");
    }
}
