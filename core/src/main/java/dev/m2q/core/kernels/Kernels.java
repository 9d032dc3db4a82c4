package dev.m2q.core.kernels;

import java.util.Locale;

/**
 * The operations m2q runs on large data. The Java implementations are the reference: {@link ScalarKernels} is
 * the plain-loop twin of {@link VectorKernels} (Vector API), and accelerated backends are tested against them.
 *
 * <p>Every implementation is deterministic: the same inputs give the same bits whatever the thread count, since
 * each output element is computed by one thread in a fixed order.
 */
public interface Kernels {
    /** Short name for logs: "vector", "scalar", … */
    String name();

    /**
     * y = x · Wᵀ (+ bias): x [rows, w.cols()] fp32 row-major, y [rows, w.rows()] fp32 row-major, bias
     * [w.rows()] or null. Accumulates in fp32.
     */
    void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y);

    /** Σ a[aOff + i] · b[bOff + i] for i in [0, n), accumulated in fp32. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** y[yOff + i] += alpha · x[xOff + i] for i in [0, n). */
    void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n);

    /**
     * Symmetric rank-k update of the upper triangle, the Hessian accumulation's inner step: for 0 ≤ i ≤ j < k,
     * c[i·k + j] += Σ_t x[t·k + i]·x[t·k + j], x [rows, k] and c [k, k] row-major fp32; the strict lower
     * triangle of c is not touched.
     *
     * <p>Every implementation computes each element's chunk sum the same way, so they agree bit for bit: start
     * from 0f, fold t = 0, 1, … in order with fused multiply-adds, then add the sum to c[i·k + j] once.
     */
    void syrkUpper(float[] x, int rows, int k, float[] c);

    /**
     * C += A·B in place, the inner product of the blocked factorizations and of GPTQ's lazy batch update: for
     * i &lt; m and j &lt; n, c[cOff + i·ldc + j] folds p = 0, 1, …, depth − 1 in order, starting from its current
     * value, with fused multiply-adds of a[aOff + i·aRow + p·aCol] · b[bOff + p·ldb + j]. A is addressed by
     * two strides, so a transposed A (aRow = 1) costs nothing.
     *
     * <p>Every implementation computes each element exactly so (one FMA chain, no partial sums), so they agree
     * bit for bit, whatever the thread count or blocking.
     */
    void gemmAcc(
            int m,
            int n,
            int depth,
            float[] a,
            int aOff,
            int aRow,
            int aCol,
            float[] b,
            int bOff,
            int ldb,
            float[] c,
            int cOff,
            int ldc);

    /** The implementation named by system property {@code m2q.kernels} ("vector", the default, or "scalar"). */
    static Kernels fromProperty() {
        return byName(System.getProperty("m2q.kernels", "vector"));
    }

    /** "vector" or "scalar". */
    static Kernels byName(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "vector" -> VectorKernels.INSTANCE;
            case "scalar" -> ScalarKernels.INSTANCE;
            default -> throw new IllegalArgumentException("unknown kernels \"" + name + "\" (choose vector or scalar)");
        };
    }
}
