package dev.m2q.core.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** A weight matrix W[rows, cols] (rows = out_features, cols = in_features, the PyTorch layout), row-major. */
public sealed interface Matrix permits Matrix.Bf16, Matrix.F32 {
    int rows();

    int cols();

    /** Element (r, c) as float. For checks and slow paths, not inner loops. */
    float get(int r, int c);

    /** Row {@code r} copied into {@code dst[0, cols)} as float. */
    void row(int r, float[] dst);

    ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** [rows, cols] bf16, little-endian; usually a zero-copy view into a memory-mapped safetensors file. */
    record Bf16(MemorySegment data, int rows, int cols) implements Matrix {
        public Bf16 {
            if (data.byteSize() != 2L * rows * cols) {
                throw new IllegalArgumentException("bf16 matrix [" + rows + ", " + cols + "] needs " + 2L * rows * cols
                        + " bytes, got " + data.byteSize());
            }
        }

        @Override
        public float get(int r, int c) {
            return Float.intBitsToFloat(data.get(LE_SHORT, 2L * ((long) r * cols + c)) << 16);
        }

        @Override
        public void row(int r, float[] dst) {
            long base = 2L * r * cols;
            for (int c = 0; c < cols; c++) {
                dst[c] = Float.intBitsToFloat(data.get(LE_SHORT, base + 2L * c) << 16);
            }
        }
    }

    /** [rows, cols] fp32 on the heap. */
    record F32(float[] data, int rows, int cols) implements Matrix {
        public F32 {
            if (data.length != (long) rows * cols) {
                throw new IllegalArgumentException("f32 matrix [" + rows + ", " + cols + "] needs " + (long) rows * cols
                        + " values, got " + data.length);
            }
        }

        @Override
        public float get(int r, int c) {
            return data[r * cols + c];
        }

        @Override
        public void row(int r, float[] dst) {
            System.arraycopy(data, r * cols, dst, 0, cols);
        }
    }
}
