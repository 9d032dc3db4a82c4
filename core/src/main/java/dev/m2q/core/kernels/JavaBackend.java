package dev.m2q.core.kernels;

import java.util.Objects;
import java.util.function.Consumer;

/**
 * The {@link Backend} of the Java kernels: a buffer is a heap {@code float[]} and a weight is the {@link Matrix}
 * itself, so nothing is copied at a crossing (wrap keeps the array, take returns it) and every operation is the
 * {@link Kernels} operation of the same name on those arrays, bit for bit.
 */
public final class JavaBackend implements Backend {
    private final Kernels kernels;

    public JavaBackend(Kernels kernels) {
        this.kernels = Objects.requireNonNull(kernels);
    }

    /** A buffer of this backend: the array it wraps. */
    record JavaBuf(float[] data) implements Buf {
        @Override
        public long length() {
            return data.length;
        }

        @Override
        public void close() {}
    }

    /** A weight of this backend: the matrix it holds. */
    record JavaWeight(Matrix matrix) implements Weight {
        @Override
        public int rows() {
            return matrix.rows();
        }

        @Override
        public int cols() {
            return matrix.cols();
        }

        @Override
        public void close() {}
    }

    /**
     * The array behind a buffer of a Java backend (no copy), for code that runs the Java reference of a
     * capability on resident data.
     *
     * @throws IllegalArgumentException when {@code b} belongs to another backend
     */
    public static float[] array(Buf b) {
        if (b instanceof JavaBuf j) {
            return j.data();
        }
        throw new IllegalArgumentException("buffer " + b + " does not belong to a Java backend");
    }

    /** The matrix behind a weight of a Java backend. */
    public static Matrix matrix(Weight w) {
        if (w instanceof JavaWeight j) {
            return j.matrix();
        }
        throw new IllegalArgumentException("weight " + w + " does not belong to a Java backend");
    }

    /** The kernels this backend runs on. */
    public Kernels kernels() {
        return kernels;
    }

    @Override
    public String name() {
        return "java (" + kernels.name() + ")";
    }

    @Override
    public Buf alloc(long length) {
        return new JavaBuf(new float[Math.toIntExact(length)]);
    }

    @Override
    public Buf wrap(float[] host) {
        return new JavaBuf(Objects.requireNonNull(host));
    }

    @Override
    public void write(float[] src, int off, Buf dst, long dstOff, int len) {
        System.arraycopy(src, off, array(dst), Math.toIntExact(dstOff), len);
    }

    @Override
    public void read(Buf src, long srcOff, float[] dst, int dstOff, int len) {
        System.arraycopy(array(src), Math.toIntExact(srcOff), dst, dstOff, len);
    }

    @Override
    public float[] take(Buf b) {
        return array(b);
    }

    @Override
    public void inspect(Buf b, Consumer<float[]> f) {
        f.accept(array(b));
    }

    @Override
    public void update(Buf b, Consumer<float[]> f) {
        f.accept(array(b));
    }

    @Override
    public Weight weight(Matrix m) {
        return new JavaWeight(Objects.requireNonNull(m));
    }

    @Override
    public Weight weight(Buf data, int rows, int cols) {
        return new JavaWeight(new Matrix.F32(array(data), rows, cols));
    }

    @Override
    public void copy(Buf src, long srcOff, Buf dst, long dstOff, long n) {
        System.arraycopy(array(src), Math.toIntExact(srcOff), array(dst), Math.toIntExact(dstOff), Math.toIntExact(n));
    }

    @Override
    public void add(Buf a, Buf b, Buf out, long n) {
        float[] x = array(a);
        float[] y = array(b);
        float[] o = array(out);
        int len = Math.toIntExact(n);
        for (int i = 0; i < len; i++) {
            o[i] = x[i] + y[i];
        }
    }

    @Override
    public void scale(Buf x, long n, float f) {
        float[] a = array(x);
        int len = Math.toIntExact(n);
        for (int i = 0; i < len; i++) {
            a[i] *= f;
        }
    }

    @Override
    public void matmul(Buf x, int rows, Weight w, Buf bias, Buf y) {
        kernels.matmul(array(x), rows, matrix(w), bias == null ? null : array(bias), array(y));
    }

    @Override
    public void rmsNorm(Buf x, int rows, int dim, Buf weight, float eps, Buf out) {
        kernels.rmsNorm(array(x), rows, dim, array(weight), eps, array(out));
    }

    @Override
    public void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen) {
        int[] positions = new int[rows];
        for (int r = 0; r < rows; r++) {
            positions[r] = startPos + r % seqLen;
        }
        kernels.rope(array(x), rows, heads, headDim, array(invFreq), positions);
    }

    @Override
    public void attention(
            Buf q, Buf k, Buf v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim, Buf out) {
        kernels.attention(array(q), array(k), array(v), nSeq, seqLen, startPos, heads, kvHeads, headDim, array(out));
    }

    @Override
    public void ropePacked(Buf x, int heads, int headDim, Buf invFreq, PackedRows layout) {
        kernels.rope(array(x), layout.rows(), heads, headDim, array(invFreq), layout.positions());
    }

    /** {@link JavaOps#attentionPacked} on this backend's kernels' dot and axpy, the steps of their attention. */
    @Override
    public void attentionPacked(Buf q, Buf k, Buf v, PackedRows layout, int heads, int kvHeads, int headDim, Buf out) {
        JavaOps.attentionPacked(kernels, array(q), array(k), array(v), layout, heads, kvHeads, headDim, array(out));
    }

    @Override
    public void swiglu(Buf gate, Buf up, long n) {
        kernels.swiglu(array(gate), array(up), Math.toIntExact(n));
    }

    @Override
    public void syrkUpper(Buf x, int rows, int k, Buf c) {
        kernels.syrkUpper(array(x), rows, k, array(c));
    }

    @Override
    public void absMaxColumns(Buf x, int rows, int cols, Buf out) {
        kernels.absMaxColumns(array(x), 0, rows, cols, array(out), 0);
    }
}
