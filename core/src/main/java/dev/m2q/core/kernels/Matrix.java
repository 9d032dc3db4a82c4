package dev.m2q.core.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** A weight matrix W[rows, cols] (rows = out_features, cols = in_features, the PyTorch layout), row-major. */
public sealed interface Matrix permits Matrix.Bf16, Matrix.F32, Matrix.W4 {
    int rows();

    int cols();

    /** Element (r, c) as float. For checks and slow paths, not inner loops. */
    float get(int r, int c);

    /** Row {@code r} copied into {@code dst[0, cols)} as float. */
    void row(int r, float[] dst);

    /** W [rows, cols] row-major as a new fp32 array (what the quantizers take). */
    default float[] toFloatArray() {
        int cols = cols();
        float[] out = new float[rows() * cols];
        // Rows over threads (a 32B down_proj is 141 M weights; each row is decoded on its own, so the split does
        // not change a bit).
        Parallel.forRange(rows(), cols, (from, to) -> {
            float[] row = new float[cols];
            for (int r = from; r < to; r++) {
                row(r, row);
                System.arraycopy(row, 0, out, r * cols, cols);
            }
        });
        return out;
    }

    ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * A bf16 matrix's segment as the kernels read it, always a plain native one. The Vector API's loads from a
     * MemorySegment run as vector instructions at full speed only while a single implementation class reaches them:
     * measured on the one-row bf16 product (1024 × 256, one core), 11.7 µs from mapped memory alone, 19–25 µs for
     * every matrix of a process that also multiplied native or heap ones, and 1,460 µs with byte[] and short[] heap
     * segments together. A native segment (a mapped file's included) is viewed as a plain one with the same address,
     * size, lifetime and read-only state, so nothing is copied; a heap segment (a draft head's weights) is copied
     * into native memory that is freed with the matrix.
     */
    private static MemorySegment forKernels(MemorySegment s) {
        if (s.isNative()) {
            return s.reinterpret(s.byteSize());
        }
        MemorySegment n = Arena.ofAuto().allocate(s.byteSize(), 64);
        MemorySegment.copy(s, 0, n, 0, s.byteSize());
        return n;
    }

    /**
     * [rows, cols] bf16, little-endian; usually a zero-copy view into a memory-mapped safetensors file (held as
     * {@link #forKernels} gives it).
     */
    record Bf16(MemorySegment data, int rows, int cols) implements Matrix {
        public Bf16 {
            if (data.byteSize() != 2L * rows * cols) {
                throw new IllegalArgumentException("bf16 matrix [" + rows + ", " + cols + "] needs " + 2L * rows * cols
                        + " bytes, got " + data.byteSize());
            }
            data = forKernels(data);
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

    ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * A 4-bit symmetric weight kept packed in the GPTQ layout (FORMATS.md §2), never expanded to a full copy:
     * W[n, k] = scales[gIdx[k], n] · (q[k, n] − 8), where q[k, n] = (qweight[k / 8, n] >>> 4·(k % 8)) &amp; 0xF.
     * rows = N (out_features), cols = K (in_features).
     */
    final class W4 implements Matrix {
        /** The 4-bit symmetric zero point, 2^(4−1) ({@code quant.Bits.FOUR.zero()}). */
        public static final int ZERO = 8;

        private final MemorySegment qweight;
        private final float[] scales;
        private final int[] gIdx;
        private final int rows;
        private final int cols;
        private final int groupSize;
        /**
         * The members of each group in the kernels' order, built once here: per product it cost 15 % of a fixture
         * decode step (an O(K) pass and two arrays for a product of 256 × 768).
         */
        private final W4Groups groups;

        /**
         * @param qweight [K/8, N] little-endian int32 words, row-major; a view of a mapped file or a heap segment
         *     (kept as given: the W4 kernel's loads were measured 44.5 µs from one kind and 48 µs from two, not
         *     worth a native copy of a large release's repacked words)
         * @param scales [K/G, N] row-major, already decoded from F16/BF16 to fp32
         * @param gIdx [K], the group of each input channel, in [0, K/G); need not be monotonic (desc_act)
         * @param groupSize G, K % G == 0
         */
        public W4(MemorySegment qweight, float[] scales, int[] gIdx, int rows, int cols, int groupSize) {
            if (rows <= 0 || cols <= 0 || groupSize <= 0 || cols % 8 != 0 || cols % groupSize != 0) {
                throw new IllegalArgumentException("W4 matrix [" + rows + ", " + cols + "] with group size " + groupSize
                        + ": K must be a positive multiple of 8 and of the group size");
            }
            if (qweight.byteSize() != 4L * (cols / 8) * rows) {
                throw new IllegalArgumentException("W4 qweight [" + cols / 8 + ", " + rows + "] needs "
                        + 4L * (cols / 8) * rows + " bytes, got " + qweight.byteSize());
            }
            int groups = cols / groupSize;
            if (scales.length != (long) groups * rows) {
                throw new IllegalArgumentException("W4 scales [" + groups + ", " + rows + "] need "
                        + (long) groups * rows + " values, got " + scales.length);
            }
            if (gIdx.length != cols) {
                throw new IllegalArgumentException("W4 g_idx needs " + cols + " values, got " + gIdx.length);
            }
            for (int k = 0; k < cols; k++) {
                if (gIdx[k] < 0 || gIdx[k] >= groups) {
                    throw new IllegalArgumentException(
                            "W4 g_idx[" + k + "] = " + gIdx[k] + " not in [0, " + groups + ")");
                }
            }
            this.qweight = qweight;
            this.scales = scales;
            this.gIdx = gIdx;
            this.rows = rows;
            this.cols = cols;
            this.groupSize = groupSize;
            this.groups = W4Groups.of(gIdx, groupSize);
        }

        /** [K/8, N] little-endian int32 words, row-major. */
        public MemorySegment qweight() {
            return qweight;
        }

        /** [K/G, N] row-major fp32. */
        public float[] scales() {
            return scales;
        }

        /** [K], the group of each input channel. */
        public int[] gIdx() {
            return gIdx;
        }

        @Override
        public int rows() {
            return rows;
        }

        @Override
        public int cols() {
            return cols;
        }

        public int groupSize() {
            return groupSize;
        }

        /** The input channels of each group, in the order the W4 kernels fold them. */
        W4Groups groups() {
            return groups;
        }

        @Override
        public String toString() {
            return "W4[" + rows + ", " + cols + "] g" + groupSize;
        }

        /** The heap-backed form, qweight as an int[] [K/8, N]. */
        public static W4 of(int[] qweight, float[] scales, int[] gIdx, int rows, int cols, int groupSize) {
            MemorySegment seg = MemorySegment.ofArray(qweight);
            if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
                MemorySegment le = MemorySegment.ofArray(new int[qweight.length]);
                for (int i = 0; i < qweight.length; i++) {
                    le.setAtIndex(LE_INT, i, qweight[i]);
                }
                seg = le;
            }
            return new W4(seg, scales, gIdx, rows, cols, groupSize);
        }

        /** Code q[k, n] in [0, 15]. */
        public int code(int n, int k) {
            int word = qweight.get(LE_INT, 4L * ((long) (k >>> 3) * rows + n));
            return (word >>> (4 * (k & 7))) & 0xF;
        }

        @Override
        public float get(int r, int c) {
            return scales[gIdx[c] * rows + r] * (code(r, c) - ZERO);
        }

        @Override
        public void row(int r, float[] dst) {
            for (int c = 0; c < cols; c++) {
                dst[c] = get(r, c);
            }
        }

        /** The full dequantized W [rows, cols] fp32: the engines' arithmetic, scale · (q − 8), element by element. */
        public float[] dequantize() {
            float[] w = new float[rows * cols];
            for (int r8 = 0; r8 < cols / 8; r8++) {
                for (int n = 0; n < rows; n++) {
                    int word = qweight.get(LE_INT, 4L * ((long) r8 * rows + n));
                    for (int j = 0; j < 8; j++) {
                        int k = 8 * r8 + j;
                        w[n * cols + k] = scales[gIdx[k] * rows + n] * (((word >>> (4 * j)) & 0xF) - ZERO);
                    }
                }
            }
            return w;
        }
    }
}
