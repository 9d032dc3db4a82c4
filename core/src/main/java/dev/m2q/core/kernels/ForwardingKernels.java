package dev.m2q.core.kernels;

import java.util.Objects;
import java.util.Optional;

/**
 * {@link Kernels} that forward every call, {@link #capability} and {@link #backend()} included, to a delegate, for
 * wrappers that change a few operations: a subclass overrides only what it changes (a name, a fault, a counter) and
 * inherits the rest, so a method added to {@link Kernels} is forwarded everywhere once, here.
 *
 * <p>{@link #backend()} returns the delegate's backend: a wrapper that changes host-array operations does not change
 * the resident ones. A wrapper that must see or change the backend's calls (one that counts crossings, or hands out
 * a backend of its own) overrides it.
 */
public abstract class ForwardingKernels implements Kernels {
    private final Kernels delegate;

    protected ForwardingKernels(Kernels delegate) {
        this.delegate = Objects.requireNonNull(delegate, "delegate");
    }

    /** The kernels every call goes to. */
    public final Kernels delegate() {
        return delegate;
    }

    /** The delegate's name; a wrapper that must be told apart in logs overrides it. */
    @Override
    public String name() {
        return delegate.name();
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        delegate.matmul(x, rows, w, bias, y);
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return delegate.dot(a, aOff, b, bOff, n);
    }

    @Override
    public void axpys(float[] alphas, int aOff, float[] x, int[] xOffs, int count, float[] y, int yOff, int n) {
        delegate.axpys(alphas, aOff, x, xOffs, count, y, yOff, n);
    }

    @Override
    public void axpyRows(float[] alphas, int aOff, float[] x, int xOff, float[] y, int[] yOffs, int count, int n) {
        delegate.axpyRows(alphas, aOff, x, xOff, y, yOffs, count, n);
    }

    @Override
    public void dots(float[] a, int aOff, float[] b, int[] bOffs, int count, int n, float[] out, int outOff) {
        delegate.dots(a, aOff, b, bOffs, count, n, out, outOff);
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        delegate.axpy(alpha, x, xOff, y, yOff, n);
    }

    @Override
    public void syrkUpper(float[] x, int rows, int k, float[] c) {
        delegate.syrkUpper(x, rows, k, c);
    }

    @Override
    public void gemmAcc(
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
            int ldc) {
        delegate.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
    }

    @Override
    public void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        delegate.rmsNorm(x, rows, dim, weight, eps, out);
    }

    @Override
    public void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        delegate.rope(x, rows, heads, headDim, invFreq, positions);
    }

    @Override
    public void attention(
            float[] q,
            float[] k,
            float[] v,
            int nSeq,
            int seqLen,
            int startPos,
            int heads,
            int kvHeads,
            int headDim,
            float[] out) {
        delegate.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
    }

    @Override
    public void swiglu(float[] gate, float[] up, int n) {
        delegate.swiglu(gate, up, n);
    }

    @Override
    public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        delegate.absMaxColumns(x, xOff, rows, cols, out, outOff);
    }

    /** The delegate's capability: a device's GPTQ loop stays the device's. */
    @Override
    public <T> Optional<T> capability(Class<T> type) {
        return delegate.capability(type);
    }

    /**
     * The delegate's backend (see the class javadoc): the resident operations are the delegate's, unchanged, even
     * where this wrapper changes the host-array ones.
     */
    @Override
    public Backend backend() {
        return delegate.backend();
    }
}
