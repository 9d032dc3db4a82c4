package dev.m2q.core.grad;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;

/**
 * The products of the backward pass, the only code that looks at a tensor's precision: fp32 tensors go to the
 * {@link Kernels} (matmul, gemmAcc, dot, axpy: fp32 accumulation, parallel, deterministic), fp64 tensors to the
 * plain loops here, which are the float64 reference the gradient checks run on. Mixing precisions is refused.
 */
public final class Products {
    private Products() {}

    /** y [rows, out] = x [rows, in] · wᵀ + b, with w [out, in] and b [1, out] or null; y is overwritten. */
    static void linear(Kernels kernels, Tensor x, Tensor w, Tensor b, Tensor y) {
        int rows = x.rows();
        int in = w.cols();
        int out = w.rows();
        if (x instanceof Tensor.F32 xf
                && w instanceof Tensor.F32 wf
                && y instanceof Tensor.F32 yf
                && (b == null || b instanceof Tensor.F32)) {
            float[] bias = b == null ? null : ((Tensor.F32) b).data();
            kernels.matmul(xf.data(), rows, new Matrix.F32(wf.data(), out, in), bias, yf.data());
            return;
        }
        double[] xd = f64(x);
        double[] wd = f64(w);
        double[] yd = f64(y);
        double[] bd = b == null ? null : f64(b);
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < out; j++) {
                double s = bd == null ? 0 : bd[j];
                for (int i = 0; i < in; i++) {
                    s += xd[t * in + i] * wd[j * in + i];
                }
                yd[t * out + j] = s;
            }
        }
    }

    /** c [m, n] += a [m, depth] · b [depth, n]: the input gradient dx += dy · w of a linear. */
    static void addProduct(Kernels kernels, Tensor a, Tensor b, Tensor c) {
        int m = a.rows();
        int depth = a.cols();
        int n = b.cols();
        if (a instanceof Tensor.F32 af && b instanceof Tensor.F32 bf && c instanceof Tensor.F32 cf) {
            kernels.gemmAcc(m, n, depth, af.data(), 0, depth, 1, bf.data(), 0, n, cf.data(), 0, n);
            return;
        }
        double[] ad = f64(a);
        double[] bd = f64(b);
        double[] cd = f64(c);
        for (int i = 0; i < m; i++) {
            for (int p = 0; p < depth; p++) {
                double aip = ad[i * depth + p];
                for (int j = 0; j < n; j++) {
                    cd[i * n + j] += aip * bd[p * n + j];
                }
            }
        }
    }

    /** c [m, n] += aᵀ · b for a [depth, m], b [depth, n]: the weight gradient dw += dyᵀ · x of a linear. */
    static void addTransposedProduct(Kernels kernels, Tensor a, Tensor b, Tensor c) {
        int depth = a.rows();
        int m = a.cols();
        int n = b.cols();
        if (a instanceof Tensor.F32 af && b instanceof Tensor.F32 bf && c instanceof Tensor.F32 cf) {
            kernels.gemmAcc(m, n, depth, af.data(), 0, 1, m, bf.data(), 0, n, cf.data(), 0, n);
            return;
        }
        double[] ad = f64(a);
        double[] bd = f64(b);
        double[] cd = f64(c);
        for (int p = 0; p < depth; p++) {
            for (int i = 0; i < m; i++) {
                double api = ad[p * m + i];
                for (int j = 0; j < n; j++) {
                    cd[i * n + j] += api * bd[p * n + j];
                }
            }
        }
    }

    /** Σ a[aOff + i] · b[bOff + i] for i in [0, n). */
    public static double dot(Kernels kernels, Tensor a, int aOff, Tensor b, int bOff, int n) {
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

    /** Each thread's fp32 scratch of {@link #dots} and {@link #axpys}, grown as needed. */
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private static float[] scratch(int count) {
        float[] f = SCRATCH.get();
        if (f.length < count) {
            f = new float[Math.max(count, 2 * f.length)];
            SCRATCH.set(f);
        }
        return f;
    }

    /**
     * {@link #axpy}(kernels, alphas[j], x, xOffs[j], y, yOff, n) for j = 0 .. count − 1 in turn, the same values:
     * fp32 tensors through {@link Kernels#axpys} (each alpha rounded to fp32 as axpy rounds it), fp64 ones one at a time.
     */
    public static void axpys(
            Kernels kernels, double[] alphas, Tensor x, int[] xOffs, int count, Tensor y, int yOff, int n) {
        if (x instanceof Tensor.F32 xf && y instanceof Tensor.F32 yf) {
            float[] a = scratch(count);
            for (int j = 0; j < count; j++) {
                a[j] = (float) alphas[j];
            }
            kernels.axpys(a, 0, xf.data(), xOffs, count, yf.data(), yOff, n);
            return;
        }
        for (int j = 0; j < count; j++) {
            axpy(kernels, alphas[j], x, xOffs[j], y, yOff, n);
        }
    }

    /**
     * {@link #axpy}(alphas[j], x, xOff, y, yOffs[j], n) for j &lt; count in turn, the same values: fp32 tensors through
     * {@link Kernels#axpyRows} (each alpha rounded to fp32 as axpy rounds it), fp64 ones one at a time.
     */
    public static void axpyRows(
            Kernels kernels, double[] alphas, Tensor x, int xOff, Tensor y, int[] yOffs, int count, int n) {
        if (x instanceof Tensor.F32 xf && y instanceof Tensor.F32 yf) {
            float[] a = scratch(count);
            for (int j = 0; j < count; j++) {
                a[j] = (float) alphas[j];
            }
            kernels.axpyRows(a, 0, xf.data(), xOff, yf.data(), yOffs, count, n);
            return;
        }
        for (int j = 0; j < count; j++) {
            axpy(kernels, alphas[j], x, xOff, y, yOffs[j], n);
        }
    }

    /**
     * out[j] = {@link #dot}(a, aOff, b, bOffs[j], n) for j &lt; count, the same values: fp32 tensors through {@link
     * Kernels#dots} (which keeps dot's bits), fp64 ones one at a time.
     */
    public static void dots(
            Kernels kernels, Tensor a, int aOff, Tensor b, int[] bOffs, int count, int n, double[] out) {
        if (a instanceof Tensor.F32 af && b instanceof Tensor.F32 bf) {
            float[] f = scratch(count);
            kernels.dots(af.data(), aOff, bf.data(), bOffs, count, n, f, 0);
            for (int j = 0; j < count; j++) {
                out[j] = f[j];
            }
            return;
        }
        for (int j = 0; j < count; j++) {
            out[j] = dot(kernels, a, aOff, b, bOffs[j], n);
        }
    }

    /** y[yOff + i] += alpha · x[xOff + i] for i in [0, n). */
    public static void axpy(Kernels kernels, double alpha, Tensor x, int xOff, Tensor y, int yOff, int n) {
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

    private static double[] f64(Tensor t) {
        if (t instanceof Tensor.F64 d) {
            return d.data();
        }
        throw new IllegalArgumentException("an fp32 tensor [" + t.rows() + ", " + t.cols()
                + "] in a product with fp64 operands: keep one precision per pass");
    }
}
