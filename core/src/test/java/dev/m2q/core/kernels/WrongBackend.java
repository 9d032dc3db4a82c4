package dev.m2q.core.kernels;

import java.util.function.Consumer;

/**
 * A deliberately wrong {@link Backend} for the self-check's tests: the Java backend over {@link ScalarKernels}
 * everywhere except one resident operation, which {@link Fault} changes; the host-array kernels stay right
 * ({@link WrongKernels} hands this out as its backend), so only the "backend …" probes can catch it.
 */
final class WrongBackend implements Backend {
    /** What goes wrong. */
    enum Fault {
        /** read ignores the source offset (reads from 0). */
        READ_IGNORES_OFFSET,
        /** copy fails as a device out of memory would. */
        COPY_OUT_OF_MEMORY,
        /** add also writes out[n]. */
        ADD_WRITES_PAST_N,
        /** scale multiplies by the next float above the factor. */
        SCALE_BY_NEXT_UP,
        /** rope ignores startPos (row r at r % seqLen). */
        ROPE_IGNORES_START,
        /** syrkUpper continues each element's chain from c instead of summing from 0f and adding once. */
        SYRK_CHAINS_FROM_C,
        /** matmul leaves the last output element unwritten, for weights made from a buffer only. */
        MATMUL_BUFFER_WEIGHT_SKIPS_LAST
    }

    private final JavaBackend java = new JavaBackend(ScalarKernels.INSTANCE);
    private final Fault fault;

    WrongBackend(Fault fault) {
        this.fault = fault;
    }

    @Override
    public String name() {
        return "wrong-" + fault;
    }

    @Override
    public Buf alloc(long length) {
        return java.alloc(length);
    }

    @Override
    public Buf wrap(float[] host) {
        return java.wrap(host);
    }

    @Override
    public void write(float[] src, int off, Buf dst, long dstOff, int len) {
        java.write(src, off, dst, dstOff, len);
    }

    @Override
    public void read(Buf src, long srcOff, float[] dst, int dstOff, int len) {
        java.read(src, fault == Fault.READ_IGNORES_OFFSET ? 0 : srcOff, dst, dstOff, len);
    }

    @Override
    public float[] take(Buf b) {
        return java.take(b);
    }

    @Override
    public void inspect(Buf b, Consumer<float[]> f) {
        java.inspect(b, f);
    }

    @Override
    public void update(Buf b, Consumer<float[]> f) {
        java.update(b, f);
    }

    /** A weight from a matrix: marked, so that matmul can tell it from one made from a buffer. */
    private record FromMatrix(Weight inner) implements Weight {
        @Override
        public int rows() {
            return inner.rows();
        }

        @Override
        public int cols() {
            return inner.cols();
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    @Override
    public Weight weight(Matrix m) {
        return new FromMatrix(java.weight(m));
    }

    @Override
    public Weight weight(Buf data, int rows, int cols) {
        return java.weight(data, rows, cols);
    }

    @Override
    public void copy(Buf src, long srcOff, Buf dst, long dstOff, long n) {
        if (fault == Fault.COPY_OUT_OF_MEMORY) {
            throw new IllegalStateException("cuMemcpyDtoD(76 bytes): CUDA_ERROR_OUT_OF_MEMORY");
        }
        java.copy(src, srcOff, dst, dstOff, n);
    }

    @Override
    public void add(Buf a, Buf b, Buf out, long n) {
        java.add(a, b, out, n);
        float[] o = JavaBackend.array(out);
        if (fault == Fault.ADD_WRITES_PAST_N && n < o.length) {
            o[(int) n] = JavaBackend.array(a)[(int) n] + JavaBackend.array(b)[(int) n];
        }
    }

    @Override
    public void scale(Buf x, long n, float f) {
        java.scale(x, n, fault == Fault.SCALE_BY_NEXT_UP ? Math.nextUp(f) : f);
    }

    @Override
    public void matmul(Buf x, int rows, Weight w, Buf bias, Buf y) {
        if (w instanceof FromMatrix m) {
            java.matmul(x, rows, m.inner(), bias, y);
            return;
        }
        if (fault != Fault.MATMUL_BUFFER_WEIGHT_SKIPS_LAST) {
            java.matmul(x, rows, w, bias, y);
            return;
        }
        float[] out = JavaBackend.array(y);
        int last = rows * w.rows() - 1;
        float keep = out[last];
        java.matmul(x, rows, w, bias, y);
        out[last] = keep;
    }

    @Override
    public void rmsNorm(Buf x, int rows, int dim, Buf weight, float eps, Buf out) {
        java.rmsNorm(x, rows, dim, weight, eps, out);
    }

    @Override
    public void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen) {
        java.rope(x, rows, heads, headDim, invFreq, fault == Fault.ROPE_IGNORES_START ? 0 : startPos, seqLen);
    }

    @Override
    public void attention(
            Buf q, Buf k, Buf v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim, Buf out) {
        java.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
    }

    @Override
    public void swiglu(Buf gate, Buf up, long n) {
        java.swiglu(gate, up, n);
    }

    @Override
    public void syrkUpper(Buf x, int rows, int k, Buf c) {
        if (fault != Fault.SYRK_CHAINS_FROM_C) {
            java.syrkUpper(x, rows, k, c);
            return;
        }
        float[] a = JavaBackend.array(x);
        float[] s = JavaBackend.array(c);
        for (int i = 0; i < k; i++) {
            for (int j = i; j < k; j++) {
                float acc = s[i * k + j];
                for (int t = 0; t < rows; t++) {
                    acc = Math.fma(a[t * k + i], a[t * k + j], acc);
                }
                s[i * k + j] = acc;
            }
        }
    }

    @Override
    public void absMaxColumns(Buf x, int rows, int cols, Buf out) {
        java.absMaxColumns(x, rows, cols, out);
    }
}
