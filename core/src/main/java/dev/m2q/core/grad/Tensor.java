package dev.m2q.core.grad;

import java.util.Arrays;

/**
 * A dense matrix [rows, cols], row-major, stored in fp32 ({@link F32}, the production path) or fp64 ({@link F64},
 * the gradient checks). Every op in this package is written once against this interface: element arithmetic
 * happens in double and is rounded once when stored ({@link #set}), and the products go through
 * {@link Products}, which hands fp32 data to the {@link dev.m2q.core.kernels.Kernels} and runs plain loops on
 * fp64. A vector is a [1, n] tensor.
 */
public sealed interface Tensor permits Tensor.F32, Tensor.F64 {
    int rows();

    int cols();

    /** rows × cols. */
    default int size() {
        return rows() * cols();
    }

    /** Element {@code i} of the row-major data. */
    double get(int i);

    /** Stores v, rounded to this tensor's precision. */
    void set(int i, double v);

    default void add(int i, double v) {
        set(i, get(i) + v);
    }

    /** v rounded to this tensor's precision: the nearest float for fp32, v itself for fp64. */
    double narrow(double v);

    /** A new zero tensor [rows, cols] of this tensor's precision. */
    Tensor zeros(int rows, int cols);

    default Tensor zerosLike() {
        return zeros(rows(), cols());
    }

    /** A copy in this tensor's precision. */
    default Tensor copy() {
        Tensor c = zerosLike();
        for (int i = 0; i < size(); i++) {
            c.set(i, get(i));
        }
        return c;
    }

    /** Sets every element to 0. */
    void clear();

    /** A fp64 copy (exact). */
    default F64 toF64() {
        double[] d = new double[size()];
        for (int i = 0; i < d.length; i++) {
            d[i] = get(i);
        }
        return new F64(d, rows(), cols());
    }

    /** A fp32 copy (each element rounded to nearest). */
    default F32 toF32() {
        float[] d = new float[size()];
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) get(i);
        }
        return new F32(d, rows(), cols());
    }

    /** Throws unless this tensor is [rows, cols]; {@code what} names it in the message. */
    default void requireShape(int rows, int cols, String what) {
        if (rows() != rows || cols() != cols) {
            throw new IllegalArgumentException(
                    what + " is [" + rows() + ", " + cols() + "], expected [" + rows + ", " + cols + "]");
        }
    }

    static F32 f32(int rows, int cols) {
        return new F32(new float[checkedSize(rows, cols)], rows, cols);
    }

    static F64 f64(int rows, int cols) {
        return new F64(new double[checkedSize(rows, cols)], rows, cols);
    }

    private static int checkedSize(int rows, int cols) {
        long n = (long) rows * cols;
        if (rows < 0 || cols < 0 || n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor [" + rows + ", " + cols + "] does not fit one Java array"
                    + " (split the batch into smaller micro-batches)");
        }
        return (int) n;
    }

    /** [rows, cols] fp32 on the heap. */
    record F32(float[] data, int rows, int cols) implements Tensor {
        public F32 {
            if (rows < 0 || cols < 0 || data.length != (long) rows * cols) {
                throw new IllegalArgumentException(
                        "f32 tensor [" + rows + ", " + cols + "] cannot hold " + data.length + " values");
            }
        }

        @Override
        public double get(int i) {
            return data[i];
        }

        @Override
        public void set(int i, double v) {
            data[i] = (float) v;
        }

        @Override
        public double narrow(double v) {
            return (float) v;
        }

        @Override
        public Tensor zeros(int rows, int cols) {
            return f32(rows, cols);
        }

        @Override
        public void clear() {
            Arrays.fill(data, 0f);
        }
    }

    /** [rows, cols] fp64 on the heap. */
    record F64(double[] data, int rows, int cols) implements Tensor {
        public F64 {
            if (rows < 0 || cols < 0 || data.length != (long) rows * cols) {
                throw new IllegalArgumentException(
                        "f64 tensor [" + rows + ", " + cols + "] cannot hold " + data.length + " values");
            }
        }

        @Override
        public double get(int i) {
            return data[i];
        }

        @Override
        public void set(int i, double v) {
            data[i] = v;
        }

        @Override
        public double narrow(double v) {
            return v;
        }

        @Override
        public Tensor zeros(int rows, int cols) {
            return f64(rows, cols);
        }

        @Override
        public void clear() {
            Arrays.fill(data, 0.0);
        }
    }
}
