package dev.m2q.core.kernels;

/**
 * A deliberately wrong {@link Backend} for the self-check's tests: the Java backend over {@link ScalarKernels}
 * everywhere except one resident operation, which {@link Fault} changes; the host-array kernels stay right
 * ({@link WrongKernels} hands this out as its backend), so only the "backend …" probes can catch it.
 */
final class WrongBackend extends ForwardingBackend {
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

    private final Fault fault;

    WrongBackend(Fault fault) {
        super(new JavaBackend(ScalarKernels.INSTANCE));
        this.fault = fault;
    }

    @Override
    public String name() {
        return "wrong-" + fault;
    }

    @Override
    public void read(Buf src, long srcOff, float[] dst, int dstOff, int len) {
        super.read(src, fault == Fault.READ_IGNORES_OFFSET ? 0 : srcOff, dst, dstOff, len);
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
        return new FromMatrix(super.weight(m));
    }

    @Override
    public void copy(Buf src, long srcOff, Buf dst, long dstOff, long n) {
        if (fault == Fault.COPY_OUT_OF_MEMORY) {
            throw new IllegalStateException("cuMemcpyDtoD(76 bytes): CUDA_ERROR_OUT_OF_MEMORY");
        }
        super.copy(src, srcOff, dst, dstOff, n);
    }

    @Override
    public void add(Buf a, Buf b, Buf out, long n) {
        super.add(a, b, out, n);
        float[] o = JavaBackend.array(out);
        if (fault == Fault.ADD_WRITES_PAST_N && n < o.length) {
            o[(int) n] = JavaBackend.array(a)[(int) n] + JavaBackend.array(b)[(int) n];
        }
    }

    @Override
    public void scale(Buf x, long n, float f) {
        super.scale(x, n, fault == Fault.SCALE_BY_NEXT_UP ? Math.nextUp(f) : f);
    }

    @Override
    public void matmul(Buf x, int rows, Weight w, Buf bias, Buf y) {
        if (w instanceof FromMatrix m) {
            super.matmul(x, rows, m.inner(), bias, y);
            return;
        }
        if (fault != Fault.MATMUL_BUFFER_WEIGHT_SKIPS_LAST) {
            super.matmul(x, rows, w, bias, y);
            return;
        }
        float[] out = JavaBackend.array(y);
        int last = rows * w.rows() - 1;
        float keep = out[last];
        super.matmul(x, rows, w, bias, y);
        out[last] = keep;
    }

    @Override
    public void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen) {
        super.rope(x, rows, heads, headDim, invFreq, fault == Fault.ROPE_IGNORES_START ? 0 : startPos, seqLen);
    }

    @Override
    public void syrkUpper(Buf x, int rows, int k, Buf c) {
        if (fault != Fault.SYRK_CHAINS_FROM_C) {
            super.syrkUpper(x, rows, k, c);
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
}
