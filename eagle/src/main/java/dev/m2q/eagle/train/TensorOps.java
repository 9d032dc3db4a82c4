package dev.m2q.eagle.train;

import dev.m2q.core.grad.Tensor;

/** The column moves the training-time test needs besides {@link dev.m2q.core.grad.Linear}. */
final class TensorOps {
    private TensorOps() {}

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
}
