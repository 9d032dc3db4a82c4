package dev.m2q.core.kernels;

import java.util.Objects;
import java.util.function.Consumer;

/**
 * The {@link Backend} of a {@link CountingKernels}: forwards every call to the wrapped kernels' backend and records
 * it in the same tallies, under "backend." + the method's name. The crossings count their bytes exactly (4 per
 * float; a weight its {@link CountingKernels#weightBytes} on every {@link #weight(Matrix)} call, since each call
 * uploads it); the operations on resident data count one call and no bytes, so the tallies also show the launches
 * a layer or a decode step makes. Buffers and weights are the wrapped backend's own, unwrapped.
 */
final class CountingBackend implements Backend {
    private final Backend inner;
    private final CountingKernels counter;

    CountingBackend(Backend inner, CountingKernels counter) {
        this.inner = Objects.requireNonNull(inner);
        this.counter = counter;
    }

    private void onBackend(String op) {
        counter.record("backend." + op, 0, 0);
    }

    @Override
    public String name() {
        return "counting(" + inner.name() + ")";
    }

    @Override
    public Buf alloc(long length) {
        onBackend("alloc");
        return inner.alloc(length);
    }

    @Override
    public Buf wrap(float[] host) {
        counter.record("backend.wrap", 4L * host.length, 0);
        return inner.wrap(host);
    }

    @Override
    public void write(float[] src, int off, Buf dst, long dstOff, int len) {
        inner.write(src, off, dst, dstOff, len);
        counter.record("backend.write", 4L * len, 0);
    }

    @Override
    public void read(Buf src, long srcOff, float[] dst, int dstOff, int len) {
        inner.read(src, srcOff, dst, dstOff, len);
        counter.record("backend.read", 0, 4L * len);
    }

    @Override
    public float[] take(Buf b) {
        long n = b.length();
        float[] out = inner.take(b);
        counter.record("backend.take", 0, 4L * n);
        return out;
    }

    @Override
    public void inspect(Buf b, Consumer<float[]> f) {
        inner.inspect(b, f);
        counter.record("backend.inspect", 0, 4L * b.length());
    }

    @Override
    public void update(Buf b, Consumer<float[]> f) {
        inner.update(b, f);
        counter.record("backend.update", 4L * b.length(), 4L * b.length());
    }

    @Override
    public Weight weight(Matrix m) {
        Weight w = inner.weight(m);
        counter.record("backend.weight", CountingKernels.weightBytes(m), 0);
        return w;
    }

    @Override
    public Weight weight(Buf data, int rows, int cols) {
        onBackend("weightOf");
        return inner.weight(data, rows, cols);
    }

    @Override
    public void copy(Buf src, long srcOff, Buf dst, long dstOff, long n) {
        inner.copy(src, srcOff, dst, dstOff, n);
        onBackend("copy");
    }

    @Override
    public void add(Buf a, Buf b, Buf out, long n) {
        inner.add(a, b, out, n);
        onBackend("add");
    }

    @Override
    public void scale(Buf x, long n, float f) {
        inner.scale(x, n, f);
        onBackend("scale");
    }

    @Override
    public void matmul(Buf x, int rows, Weight w, Buf bias, Buf y) {
        inner.matmul(x, rows, w, bias, y);
        onBackend("matmul");
    }

    @Override
    public void rmsNorm(Buf x, int rows, int dim, Buf weight, float eps, Buf out) {
        inner.rmsNorm(x, rows, dim, weight, eps, out);
        onBackend("rmsNorm");
    }

    @Override
    public void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen) {
        inner.rope(x, rows, heads, headDim, invFreq, startPos, seqLen);
        onBackend("rope");
    }

    @Override
    public void attention(
            Buf q, Buf k, Buf v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim, Buf out) {
        inner.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
        onBackend("attention");
    }

    @Override
    public void ropePacked(Buf x, int heads, int headDim, Buf invFreq, PackedRows layout) {
        inner.ropePacked(x, heads, headDim, invFreq, layout);
        onBackend("ropePacked");
    }

    @Override
    public void attentionPacked(Buf q, Buf k, Buf v, PackedRows layout, int heads, int kvHeads, int headDim, Buf out) {
        inner.attentionPacked(q, k, v, layout, heads, kvHeads, headDim, out);
        onBackend("attentionPacked");
    }

    @Override
    public void swiglu(Buf gate, Buf up, long n) {
        inner.swiglu(gate, up, n);
        onBackend("swiglu");
    }

    @Override
    public void syrkUpper(Buf x, int rows, int k, Buf c) {
        inner.syrkUpper(x, rows, k, c);
        onBackend("syrkUpper");
    }

    @Override
    public void absMaxColumns(Buf x, int rows, int cols, Buf out) {
        inner.absMaxColumns(x, rows, cols, out);
        onBackend("absMaxColumns");
    }

    @Override
    public long freeBytes() {
        return inner.freeBytes();
    }
}
