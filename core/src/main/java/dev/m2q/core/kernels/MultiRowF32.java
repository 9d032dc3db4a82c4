package dev.m2q.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link MultiRowBf16} for a {@link Matrix.F32} (a dequantized release, a head in training): y = x·Wᵀ (+ bias) for 1
 * to {@link #MAX_ROWS} rows, each fp32 vector of W loaded once for every row. Every y[t, j] follows the order the
 * vector kernels have always used for one row (one V-lane FMA chain over the columns below loopBound(K), the lanes
 * summed in order from 0f, the ragged columns added unfused, then the bias), so it does not depend on the row count;
 * the loop nest (slabs of N per core, blocks of channels and of columns, 4 or 2 channels per pass, spare rows) is
 * {@link MultiRowBf16}'s.
 */
final class MultiRowF32 {
    static final int MAX_ROWS = 8;

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int V = F.length();
    /** Output channels per block: their chains (J_BLOCK · 8 rows · V floats, 8 KiB at V = 16) stay in L1. */
    private static final int J_BLOCK = 16;
    /** Floats of x per column block (24 KiB), half of a 48 KiB L1 beside the chains and W's lines. */
    private static final int X_BLOCK_FLOATS = 6144;
    /** A weight of at most this many bytes is taken to be read from cache (decoding a small model, a small head). */
    private static final long CACHED_BYTES = 4L << 20;

    /** Each thread's stored chains, [J_BLOCK, MAX_ROWS, V]: reused, so a decode step allocates nothing here. */
    private static final ThreadLocal<float[]> CHAINS = ThreadLocal.withInitial(() -> new float[J_BLOCK * MAX_ROWS * V]);
    /** Each thread's lane sums of a block, [MAX_ROWS, J_BLOCK] ({@link LaneSums}). */
    private static final ThreadLocal<float[]> SUMS = ThreadLocal.withInitial(() -> new float[MAX_ROWS * J_BLOCK]);

    private MultiRowF32() {}

    static void matmul(float[] x, int rows, Matrix.F32 w, float[] bias, float[] y) {
        if (rows < 1 || rows > MAX_ROWS) {
            throw new IllegalArgumentException("multi-row bf16 product takes 1.." + MAX_ROWS + " rows, got " + rows);
        }
        int n = w.rows();
        int k = w.cols();
        int slabs = Math.max(1, Math.min(n / J_BLOCK, Parallel.threads()));
        Parallel.forRange(slabs, (long) rows * k * n / slabs, (from, to) -> {
            float[] chains = CHAINS.get();
            float[] sums = SUMS.get();
            for (int sl = from; sl < to; sl++) {
                int j0 = (int) ((long) n * sl / slabs);
                int j1 = (int) ((long) n * (sl + 1) / slabs);
                slab(x, rows, w, bias, y, j0, j1, chains, sums);
            }
        });
    }

    /** y[t, j] for every row t and j in [j0, j1). */
    private static void slab(
            float[] x, int rows, Matrix.F32 w, float[] bias, float[] y, int j0, int j1, float[] ch, float[] sums) {
        int n = w.rows();
        int k = w.cols();
        int upper = F.loopBound(k);
        int kernel = rows == 1 ? 1 : rows == 2 ? 2 : rows <= 4 ? 4 : 8;
        boolean cached = 4L * n * k <= CACHED_BYTES;
        int block = Math.max(V, X_BLOCK_FLOATS / kernel / V * V);
        int[] xo = {
            0,
            row(1, rows, k),
            row(2, rows, k),
            row(3, rows, k),
            row(4, rows, k),
            row(5, rows, k),
            row(6, rows, k),
            row(7, rows, k)
        };
        float[] seg = w.data();
        for (int jb = j0; jb < j1; jb += J_BLOCK) {
            int je = Math.min(j1, jb + J_BLOCK);
            for (int c0 = 0; c0 < upper; c0 += block) {
                int c1 = Math.min(upper, c0 + block);
                boolean first = c0 == 0;
                int j = jb;
                // 4 channels per pass for 2 to 4 rows and, on a matrix small enough to be read from cache, for one
                // row (independent chains: one chain is latency-bound there); 2 for 5 to 8 rows. One row of a large
                // matrix: one channel at a time (4 interleaved channels measured 1.4-1.6x slower from DRAM on one
                // core).
                int wide = kernel == 8 ? 2 : 4;
                for (; (kernel > 1 || cached) && j + wide <= je; j += wide) {
                    int rowBase = j * k;
                    int a = (j - jb) * MAX_ROWS * V;
                    switch (kernel) {
                        case 1 -> out4rows1(seg, rowBase, k, x, xo, c0, c1, ch, a, first);
                        case 2 -> out4rows2(seg, rowBase, k, x, xo, c0, c1, ch, a, first);
                        case 4 -> out4rows4(seg, rowBase, k, x, xo, c0, c1, ch, a, first);
                        default -> out2rows8(seg, rowBase, k, x, xo, c0, c1, ch, a, first);
                    }
                }
                for (; j < je; j++) {
                    int rowBase = j * k;
                    int a = (j - jb) * MAX_ROWS * V;
                    switch (kernel) {
                        case 1 -> rows1(seg, rowBase, x, xo, c0, c1, ch, a, first);
                        case 2 -> rows2(seg, rowBase, x, xo, c0, c1, ch, a, first);
                        case 4 -> rows4(seg, rowBase, x, xo, c0, c1, ch, a, first);
                        default -> rows8(seg, rowBase, x, xo, c0, c1, ch, a, first);
                    }
                }
            }
            if (upper > 0) {
                LaneSums.of(ch, MAX_ROWS * V, V, je - jb, rows, sums, J_BLOCK);
            }
            for (int j = jb; j < je; j++) {
                float b = bias == null ? 0f : bias[j];
                for (int t = 0; t < rows; t++) {
                    float s = upper > 0 ? sums[t * J_BLOCK + j - jb] : 0f;
                    int x0 = t * k;
                    for (int c = upper; c < k; c++) {
                        s += x[x0 + c] * seg[j * k + c];
                    }
                    y[t * n + j] = s + b;
                }
            }
        }
    }

    /** The offset in x of kernel row r: row r, or the last real row for a spare one. */
    private static int row(int r, int rows, int k) {
        return Math.min(r, rows - 1) * k;
    }

    private static FloatVector chain(float[] ch, int a, boolean first) {
        return first ? FloatVector.zero(F) : FloatVector.fromArray(F, ch, a);
    }

    private static void rows1(
            float[] seg, int rowBase, float[] x, int[] xo, int c0, int c1, float[] ch, int a, boolean first) {
        int x0 = xo[0];
        FloatVector a0 = chain(ch, a, first);
        for (int c = c0; c < c1; c += V) {
            a0 = FloatVector.fromArray(F, x, x0 + c).fma(FloatVector.fromArray(F, seg, rowBase + c), a0);
        }
        a0.intoArray(ch, a);
    }

    private static void rows2(
            float[] seg, int rowBase, float[] x, int[] xo, int c0, int c1, float[] ch, int a, boolean first) {
        int x0 = xo[0];
        int x1 = xo[1];
        FloatVector a0 = chain(ch, a, first);
        FloatVector a1 = chain(ch, a + V, first);
        for (int c = c0; c < c1; c += V) {
            FloatVector wv = FloatVector.fromArray(F, seg, rowBase + c);
            a0 = FloatVector.fromArray(F, x, x0 + c).fma(wv, a0);
            a1 = FloatVector.fromArray(F, x, x1 + c).fma(wv, a1);
        }
        a0.intoArray(ch, a);
        a1.intoArray(ch, a + V);
    }

    private static void rows4(
            float[] seg, int rowBase, float[] x, int[] xo, int c0, int c1, float[] ch, int a, boolean first) {
        int x0 = xo[0];
        int x1 = xo[1];
        int x2 = xo[2];
        int x3 = xo[3];
        FloatVector a0 = chain(ch, a, first);
        FloatVector a1 = chain(ch, a + V, first);
        FloatVector a2 = chain(ch, a + 2 * V, first);
        FloatVector a3 = chain(ch, a + 3 * V, first);
        for (int c = c0; c < c1; c += V) {
            FloatVector wv = FloatVector.fromArray(F, seg, rowBase + c);
            a0 = FloatVector.fromArray(F, x, x0 + c).fma(wv, a0);
            a1 = FloatVector.fromArray(F, x, x1 + c).fma(wv, a1);
            a2 = FloatVector.fromArray(F, x, x2 + c).fma(wv, a2);
            a3 = FloatVector.fromArray(F, x, x3 + c).fma(wv, a3);
        }
        a0.intoArray(ch, a);
        a1.intoArray(ch, a + V);
        a2.intoArray(ch, a + 2 * V);
        a3.intoArray(ch, a + 3 * V);
    }

    private static void rows8(
            float[] seg, int rowBase, float[] x, int[] xo, int c0, int c1, float[] ch, int a, boolean first) {
        int x0 = xo[0];
        int x1 = xo[1];
        int x2 = xo[2];
        int x3 = xo[3];
        int x4 = xo[4];
        int x5 = xo[5];
        int x6 = xo[6];
        int x7 = xo[7];
        FloatVector a0 = chain(ch, a, first);
        FloatVector a1 = chain(ch, a + V, first);
        FloatVector a2 = chain(ch, a + 2 * V, first);
        FloatVector a3 = chain(ch, a + 3 * V, first);
        FloatVector a4 = chain(ch, a + 4 * V, first);
        FloatVector a5 = chain(ch, a + 5 * V, first);
        FloatVector a6 = chain(ch, a + 6 * V, first);
        FloatVector a7 = chain(ch, a + 7 * V, first);
        for (int c = c0; c < c1; c += V) {
            FloatVector wv = FloatVector.fromArray(F, seg, rowBase + c);
            a0 = FloatVector.fromArray(F, x, x0 + c).fma(wv, a0);
            a1 = FloatVector.fromArray(F, x, x1 + c).fma(wv, a1);
            a2 = FloatVector.fromArray(F, x, x2 + c).fma(wv, a2);
            a3 = FloatVector.fromArray(F, x, x3 + c).fma(wv, a3);
            a4 = FloatVector.fromArray(F, x, x4 + c).fma(wv, a4);
            a5 = FloatVector.fromArray(F, x, x5 + c).fma(wv, a5);
            a6 = FloatVector.fromArray(F, x, x6 + c).fma(wv, a6);
            a7 = FloatVector.fromArray(F, x, x7 + c).fma(wv, a7);
        }
        a0.intoArray(ch, a);
        a1.intoArray(ch, a + V);
        a2.intoArray(ch, a + 2 * V);
        a3.intoArray(ch, a + 3 * V);
        a4.intoArray(ch, a + 4 * V);
        a5.intoArray(ch, a + 5 * V);
        a6.intoArray(ch, a + 6 * V);
        a7.intoArray(ch, a + 7 * V);
    }

    /** {@link #rows2} for 4 channels at once (rowBase, rowBase + rowBytes, …): 8 chains, 4 weight vectors per step. */
    private static void out4rows2(
            float[] seg,
            int rowBase,
            int rowStride,
            float[] x,
            int[] xo,
            int c0,
            int c1,
            float[] ch,
            int a,
            boolean first) {
        int x0 = xo[0];
        int x1 = xo[1];
        int b0 = rowBase;
        int b1 = rowBase + rowStride;
        int b2 = rowBase + 2 * rowStride;
        int b3 = rowBase + 3 * rowStride;
        FloatVector a00 = chain(ch, a, first);
        FloatVector a01 = chain(ch, a + V, first);
        FloatVector a10 = chain(ch, a + 8 * V, first);
        FloatVector a11 = chain(ch, a + 9 * V, first);
        FloatVector a20 = chain(ch, a + 16 * V, first);
        FloatVector a21 = chain(ch, a + 17 * V, first);
        FloatVector a30 = chain(ch, a + 24 * V, first);
        FloatVector a31 = chain(ch, a + 25 * V, first);
        for (int c = c0; c < c1; c += V) {
            FloatVector w0 = FloatVector.fromArray(F, seg, b0 + c);
            FloatVector w1 = FloatVector.fromArray(F, seg, b1 + c);
            FloatVector w2 = FloatVector.fromArray(F, seg, b2 + c);
            FloatVector w3 = FloatVector.fromArray(F, seg, b3 + c);
            FloatVector xv0 = FloatVector.fromArray(F, x, x0 + c);
            a00 = xv0.fma(w0, a00);
            a10 = xv0.fma(w1, a10);
            a20 = xv0.fma(w2, a20);
            a30 = xv0.fma(w3, a30);
            FloatVector xv1 = FloatVector.fromArray(F, x, x1 + c);
            a01 = xv1.fma(w0, a01);
            a11 = xv1.fma(w1, a11);
            a21 = xv1.fma(w2, a21);
            a31 = xv1.fma(w3, a31);
        }
        a00.intoArray(ch, a);
        a01.intoArray(ch, a + V);
        a10.intoArray(ch, a + 8 * V);
        a11.intoArray(ch, a + 9 * V);
        a20.intoArray(ch, a + 16 * V);
        a21.intoArray(ch, a + 17 * V);
        a30.intoArray(ch, a + 24 * V);
        a31.intoArray(ch, a + 25 * V);
    }

    /** {@link #rows4} for 4 channels at once (rowBase, rowBase + rowBytes, …): 16 chains, 4 weight vectors per step. */
    private static void out4rows4(
            float[] seg,
            int rowBase,
            int rowStride,
            float[] x,
            int[] xo,
            int c0,
            int c1,
            float[] ch,
            int a,
            boolean first) {
        int x0 = xo[0];
        int x1 = xo[1];
        int x2 = xo[2];
        int x3 = xo[3];
        int b0 = rowBase;
        int b1 = rowBase + rowStride;
        int b2 = rowBase + 2 * rowStride;
        int b3 = rowBase + 3 * rowStride;
        FloatVector a00 = chain(ch, a, first);
        FloatVector a01 = chain(ch, a + V, first);
        FloatVector a02 = chain(ch, a + 2 * V, first);
        FloatVector a03 = chain(ch, a + 3 * V, first);
        FloatVector a10 = chain(ch, a + 8 * V, first);
        FloatVector a11 = chain(ch, a + 9 * V, first);
        FloatVector a12 = chain(ch, a + 10 * V, first);
        FloatVector a13 = chain(ch, a + 11 * V, first);
        FloatVector a20 = chain(ch, a + 16 * V, first);
        FloatVector a21 = chain(ch, a + 17 * V, first);
        FloatVector a22 = chain(ch, a + 18 * V, first);
        FloatVector a23 = chain(ch, a + 19 * V, first);
        FloatVector a30 = chain(ch, a + 24 * V, first);
        FloatVector a31 = chain(ch, a + 25 * V, first);
        FloatVector a32 = chain(ch, a + 26 * V, first);
        FloatVector a33 = chain(ch, a + 27 * V, first);
        for (int c = c0; c < c1; c += V) {
            FloatVector w0 = FloatVector.fromArray(F, seg, b0 + c);
            FloatVector w1 = FloatVector.fromArray(F, seg, b1 + c);
            FloatVector w2 = FloatVector.fromArray(F, seg, b2 + c);
            FloatVector w3 = FloatVector.fromArray(F, seg, b3 + c);
            FloatVector xv0 = FloatVector.fromArray(F, x, x0 + c);
            a00 = xv0.fma(w0, a00);
            a10 = xv0.fma(w1, a10);
            a20 = xv0.fma(w2, a20);
            a30 = xv0.fma(w3, a30);
            FloatVector xv1 = FloatVector.fromArray(F, x, x1 + c);
            a01 = xv1.fma(w0, a01);
            a11 = xv1.fma(w1, a11);
            a21 = xv1.fma(w2, a21);
            a31 = xv1.fma(w3, a31);
            FloatVector xv2 = FloatVector.fromArray(F, x, x2 + c);
            a02 = xv2.fma(w0, a02);
            a12 = xv2.fma(w1, a12);
            a22 = xv2.fma(w2, a22);
            a32 = xv2.fma(w3, a32);
            FloatVector xv3 = FloatVector.fromArray(F, x, x3 + c);
            a03 = xv3.fma(w0, a03);
            a13 = xv3.fma(w1, a13);
            a23 = xv3.fma(w2, a23);
            a33 = xv3.fma(w3, a33);
        }
        a00.intoArray(ch, a);
        a01.intoArray(ch, a + V);
        a02.intoArray(ch, a + 2 * V);
        a03.intoArray(ch, a + 3 * V);
        a10.intoArray(ch, a + 8 * V);
        a11.intoArray(ch, a + 9 * V);
        a12.intoArray(ch, a + 10 * V);
        a13.intoArray(ch, a + 11 * V);
        a20.intoArray(ch, a + 16 * V);
        a21.intoArray(ch, a + 17 * V);
        a22.intoArray(ch, a + 18 * V);
        a23.intoArray(ch, a + 19 * V);
        a30.intoArray(ch, a + 24 * V);
        a31.intoArray(ch, a + 25 * V);
        a32.intoArray(ch, a + 26 * V);
        a33.intoArray(ch, a + 27 * V);
    }

    /** {@link #rows8} for 2 channels at once (rowBase, rowBase + rowBytes, …): 16 chains, 2 weight vectors per step. */
    private static void out2rows8(
            float[] seg,
            int rowBase,
            int rowStride,
            float[] x,
            int[] xo,
            int c0,
            int c1,
            float[] ch,
            int a,
            boolean first) {
        int x0 = xo[0];
        int x1 = xo[1];
        int x2 = xo[2];
        int x3 = xo[3];
        int x4 = xo[4];
        int x5 = xo[5];
        int x6 = xo[6];
        int x7 = xo[7];
        int b0 = rowBase;
        int b1 = rowBase + rowStride;
        FloatVector a00 = chain(ch, a, first);
        FloatVector a01 = chain(ch, a + V, first);
        FloatVector a02 = chain(ch, a + 2 * V, first);
        FloatVector a03 = chain(ch, a + 3 * V, first);
        FloatVector a04 = chain(ch, a + 4 * V, first);
        FloatVector a05 = chain(ch, a + 5 * V, first);
        FloatVector a06 = chain(ch, a + 6 * V, first);
        FloatVector a07 = chain(ch, a + 7 * V, first);
        FloatVector a10 = chain(ch, a + 8 * V, first);
        FloatVector a11 = chain(ch, a + 9 * V, first);
        FloatVector a12 = chain(ch, a + 10 * V, first);
        FloatVector a13 = chain(ch, a + 11 * V, first);
        FloatVector a14 = chain(ch, a + 12 * V, first);
        FloatVector a15 = chain(ch, a + 13 * V, first);
        FloatVector a16 = chain(ch, a + 14 * V, first);
        FloatVector a17 = chain(ch, a + 15 * V, first);
        for (int c = c0; c < c1; c += V) {
            FloatVector w0 = FloatVector.fromArray(F, seg, b0 + c);
            FloatVector w1 = FloatVector.fromArray(F, seg, b1 + c);
            FloatVector xv0 = FloatVector.fromArray(F, x, x0 + c);
            a00 = xv0.fma(w0, a00);
            a10 = xv0.fma(w1, a10);
            FloatVector xv1 = FloatVector.fromArray(F, x, x1 + c);
            a01 = xv1.fma(w0, a01);
            a11 = xv1.fma(w1, a11);
            FloatVector xv2 = FloatVector.fromArray(F, x, x2 + c);
            a02 = xv2.fma(w0, a02);
            a12 = xv2.fma(w1, a12);
            FloatVector xv3 = FloatVector.fromArray(F, x, x3 + c);
            a03 = xv3.fma(w0, a03);
            a13 = xv3.fma(w1, a13);
            FloatVector xv4 = FloatVector.fromArray(F, x, x4 + c);
            a04 = xv4.fma(w0, a04);
            a14 = xv4.fma(w1, a14);
            FloatVector xv5 = FloatVector.fromArray(F, x, x5 + c);
            a05 = xv5.fma(w0, a05);
            a15 = xv5.fma(w1, a15);
            FloatVector xv6 = FloatVector.fromArray(F, x, x6 + c);
            a06 = xv6.fma(w0, a06);
            a16 = xv6.fma(w1, a16);
            FloatVector xv7 = FloatVector.fromArray(F, x, x7 + c);
            a07 = xv7.fma(w0, a07);
            a17 = xv7.fma(w1, a17);
        }
        a00.intoArray(ch, a);
        a01.intoArray(ch, a + V);
        a02.intoArray(ch, a + 2 * V);
        a03.intoArray(ch, a + 3 * V);
        a04.intoArray(ch, a + 4 * V);
        a05.intoArray(ch, a + 5 * V);
        a06.intoArray(ch, a + 6 * V);
        a07.intoArray(ch, a + 7 * V);
        a10.intoArray(ch, a + 8 * V);
        a11.intoArray(ch, a + 9 * V);
        a12.intoArray(ch, a + 10 * V);
        a13.intoArray(ch, a + 11 * V);
        a14.intoArray(ch, a + 12 * V);
        a15.intoArray(ch, a + 13 * V);
        a16.intoArray(ch, a + 14 * V);
        a17.intoArray(ch, a + 15 * V);
    }

    /** {@link #rows1} for 4 channels at once (rowBase, rowBase + rowStride, …): 4 chains, 4 weight vectors per step. */
    private static void out4rows1(
            float[] seg,
            int rowBase,
            int rowStride,
            float[] x,
            int[] xo,
            int c0,
            int c1,
            float[] ch,
            int a,
            boolean first) {
        int x0 = xo[0];
        int b0 = rowBase;
        int b1 = rowBase + rowStride;
        int b2 = rowBase + 2 * rowStride;
        int b3 = rowBase + 3 * rowStride;
        FloatVector a00 = chain(ch, a, first);
        FloatVector a10 = chain(ch, a + 8 * V, first);
        FloatVector a20 = chain(ch, a + 16 * V, first);
        FloatVector a30 = chain(ch, a + 24 * V, first);
        for (int c = c0; c < c1; c += V) {
            FloatVector w0 = FloatVector.fromArray(F, seg, b0 + c);
            FloatVector w1 = FloatVector.fromArray(F, seg, b1 + c);
            FloatVector w2 = FloatVector.fromArray(F, seg, b2 + c);
            FloatVector w3 = FloatVector.fromArray(F, seg, b3 + c);
            FloatVector xv0 = FloatVector.fromArray(F, x, x0 + c);
            a00 = xv0.fma(w0, a00);
            a10 = xv0.fma(w1, a10);
            a20 = xv0.fma(w2, a20);
            a30 = xv0.fma(w3, a30);
        }
        a00.intoArray(ch, a);
        a10.intoArray(ch, a + 8 * V);
        a20.intoArray(ch, a + 16 * V);
        a30.intoArray(ch, a + 24 * V);
    }
}
