package dev.m2q.core.kernels;

import java.util.Objects;
import java.util.function.Consumer;

/**
 * A {@link Backend} that forwards every call, {@link #freeBytes()} included, to a delegate, for wrappers that change a
 * few operations: a subclass overrides only what it changes (a name, the free memory it reports, a fault) and
 * inherits the rest. Buffers and weights are the delegate's own, passed through unwrapped; a wrapper that hands out
 * handles of its own must override every method that takes or returns one.
 */
public abstract class ForwardingBackend implements Backend {
    private final Backend delegate;

    protected ForwardingBackend(Backend delegate) {
        this.delegate = Objects.requireNonNull(delegate, "delegate");
    }

    /** The backend every call goes to. */
    public final Backend delegate() {
        return delegate;
    }

    /** The delegate's name; a wrapper that must be told apart in logs overrides it. */
    @Override
    public String name() {
        return delegate.name();
    }

    @Override
    public Buf alloc(long length) {
        return delegate.alloc(length);
    }

    @Override
    public Buf wrap(float[] host) {
        return delegate.wrap(host);
    }

    @Override
    public void write(float[] src, int off, Buf dst, long dstOff, int len) {
        delegate.write(src, off, dst, dstOff, len);
    }

    @Override
    public void read(Buf src, long srcOff, float[] dst, int dstOff, int len) {
        delegate.read(src, srcOff, dst, dstOff, len);
    }

    @Override
    public float[] take(Buf b) {
        return delegate.take(b);
    }

    @Override
    public void inspect(Buf b, Consumer<float[]> f) {
        delegate.inspect(b, f);
    }

    @Override
    public void update(Buf b, Consumer<float[]> f) {
        delegate.update(b, f);
    }

    @Override
    public Weight weight(Matrix m) {
        return delegate.weight(m);
    }

    @Override
    public Weight weight(Buf data, int rows, int cols) {
        return delegate.weight(data, rows, cols);
    }

    @Override
    public void copy(Buf src, long srcOff, Buf dst, long dstOff, long n) {
        delegate.copy(src, srcOff, dst, dstOff, n);
    }

    @Override
    public void add(Buf a, Buf b, Buf out, long n) {
        delegate.add(a, b, out, n);
    }

    @Override
    public void scale(Buf x, long n, float f) {
        delegate.scale(x, n, f);
    }

    @Override
    public void matmul(Buf x, int rows, Weight w, Buf bias, Buf y) {
        delegate.matmul(x, rows, w, bias, y);
    }

    @Override
    public void rmsNorm(Buf x, int rows, int dim, Buf weight, float eps, Buf out) {
        delegate.rmsNorm(x, rows, dim, weight, eps, out);
    }

    @Override
    public void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen) {
        delegate.rope(x, rows, heads, headDim, invFreq, startPos, seqLen);
    }

    @Override
    public void attention(
            Buf q, Buf k, Buf v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim, Buf out) {
        delegate.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
    }

    @Override
    public void ropePacked(Buf x, int heads, int headDim, Buf invFreq, PackedRows layout) {
        delegate.ropePacked(x, heads, headDim, invFreq, layout);
    }

    @Override
    public void attentionPacked(Buf q, Buf k, Buf v, PackedRows layout, int heads, int kvHeads, int headDim, Buf out) {
        delegate.attentionPacked(q, k, v, layout, heads, kvHeads, headDim, out);
    }

    @Override
    public void swiglu(Buf gate, Buf up, long n) {
        delegate.swiglu(gate, up, n);
    }

    @Override
    public void syrkUpper(Buf x, int rows, int k, Buf c) {
        delegate.syrkUpper(x, rows, k, c);
    }

    @Override
    public void absMaxColumns(Buf x, int rows, int cols, Buf out) {
        delegate.absMaxColumns(x, rows, cols, out);
    }

    @Override
    public long freeBytes() {
        return delegate.freeBytes();
    }
}
