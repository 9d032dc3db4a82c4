package dev.m2q.core.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API implementation; its twin is {@link ScalarKernels}. bf16 weights are widened in registers
 * (shorts → ints, shifted left 16, reinterpreted as floats), never copied to a float matrix. Results differ
 * from the scalar twin only by fp32 summation order, and are the same bits on every run. W4 weights go to
 * {@link VectorW4}, which decodes the packed words in registers and matches the scalar twin bit for bit.
 */
public final class VectorKernels extends JavaKernels {
    public static final VectorKernels INSTANCE = new VectorKernels();

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.length() * Short.SIZE));
    /** Tokens processed per pass over a weight row: each bf16 row is widened once for this many dots. */
    private static final int TILE = 4;

    private VectorKernels() {}

    @Override
    public String name() {
        return "vector";
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        if (rows > TILED_ROWS && !(w instanceof Matrix.W4)) {
            TiledMatmul.matmul(x, rows, w, bias, y);
            return;
        }
        switch (w) {
            case Matrix.Bf16 b -> matmulBf16(x, rows, b, bias, y);
            case Matrix.F32 f -> matmulF32(x, rows, f, bias, y);
            case Matrix.W4 q -> VectorW4.matmul(x, rows, q, bias, y);
        }
    }

    /**
     * Rows from which BF16 and F32 products run on {@link TiledMatmul} (prefill, calibration): the same bits as
     * the row kernels below, which keep decoding and short verifies.
     */
    private static final int TILED_ROWS = 8;

    /** Row count from which the product is split over token blocks (each reusing x in cache) instead of over W. */
    private static final int BLOCKED_ROWS = 32;
    /** Tokens per block: 64 rows of x stay in L1/L2 while every row of W streams past them. */
    private static final int ROW_BLOCK = 64;

    private void matmulBf16(float[] x, int rows, Matrix.Bf16 w, float[] bias, float[] y) {
        if (rows <= MultiRowBf16.MAX_ROWS) {
            // decoding and speculative verify: W streamed once for every row (same per-row order as bf16Row)
            MultiRowBf16.matmul(x, rows, w, bias, y);
            return;
        }
        schedule(rows, w.rows(), w.cols(), (j, t0, t1) -> bf16Row(x, w, j, t0, t1, bias, y));
    }

    private void matmulF32(float[] x, int rows, Matrix.F32 w, float[] bias, float[] y) {
        if (rows <= MultiRowF32.MAX_ROWS) {
            // decoding and speculative verify on fp32 weights: as for bf16
            MultiRowF32.matmul(x, rows, w, bias, y);
            return;
        }
        schedule(rows, w.rows(), w.cols(), (j, t0, t1) -> f32Row(x, w, j, t0, t1, bias, y));
    }

    /** Computes y[t, j] for t in [t0, t1). */
    @FunctionalInterface
    private interface RowKernel {
        void run(int j, int t0, int t1);
    }

    /**
     * Few rows (decoding): split the output columns over threads. Many rows (prefill, calibration): split the
     * rows into blocks, each sweeping all of W. Either way each y element is one thread's fixed-order sum.
     */
    private static void schedule(int rows, int n, int k, RowKernel kernel) {
        if (rows < BLOCKED_ROWS) {
            Parallel.forRange(n, (long) rows * k, (from, to) -> {
                for (int j = from; j < to; j++) {
                    kernel.run(j, 0, rows);
                }
            });
            return;
        }
        int blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
        Parallel.forRange(blocks, (long) ROW_BLOCK * n * k, (from, to) -> {
            for (int blk = from; blk < to; blk++) {
                int t0 = blk * ROW_BLOCK;
                int t1 = Math.min(rows, t0 + ROW_BLOCK);
                for (int j = 0; j < n; j++) {
                    kernel.run(j, t0, t1);
                }
            }
        });
    }

    private static void bf16Row(float[] x, Matrix.Bf16 w, int j, int t0, int t1, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        int upper = F.loopBound(k);
        MemorySegment seg = w.data();
        long rowBase = 2L * j * k;
        float b = bias == null ? 0f : bias[j];
        int t = t0;
        for (; t + TILE <= t1 || (t + 1 < t1); t += TILE) {
            // A tile of up to 4 rows reads W's row once for all of them; 2 or 3 rows left over (a speculative
            // verify of k + 1 tokens) repeat their last row in the spare lanes rather than stream W again. Each
            // row's sum runs in the same order either way, so the results do not depend on the tiling.
            int live = Math.min(TILE, t1 - t);
            int x0 = t * k;
            int x1 = (t + Math.min(1, live - 1)) * k;
            int x2 = (t + Math.min(2, live - 1)) * k;
            int x3 = (t + Math.min(3, live - 1)) * k;
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = FloatVector.zero(F);
            FloatVector a2 = FloatVector.zero(F);
            FloatVector a3 = FloatVector.zero(F);
            int c = 0;
            for (; c < upper; c += F.length()) {
                FloatVector wv = widen(seg, rowBase + 2L * c);
                a0 = FloatVector.fromArray(F, x, x0 + c).fma(wv, a0);
                a1 = FloatVector.fromArray(F, x, x1 + c).fma(wv, a1);
                a2 = FloatVector.fromArray(F, x, x2 + c).fma(wv, a2);
                a3 = FloatVector.fromArray(F, x, x3 + c).fma(wv, a3);
            }
            float s0 = sum(a0);
            float s1 = sum(a1);
            float s2 = sum(a2);
            float s3 = sum(a3);
            for (; c < k; c++) {
                float wc = w.get(j, c);
                s0 += x[x0 + c] * wc;
                s1 += x[x1 + c] * wc;
                s2 += x[x2 + c] * wc;
                s3 += x[x3 + c] * wc;
            }
            y[t * n + j] = s0 + b;
            y[(t + 1) * n + j] = s1 + b;
            if (live > 2) {
                y[(t + 2) * n + j] = s2 + b;
            }
            if (live > 3) {
                y[(t + 3) * n + j] = s3 + b;
            }
        }
        for (; t < t1; t++) {
            int x0 = t * k;
            FloatVector a0 = FloatVector.zero(F);
            int c = 0;
            for (; c < upper; c += F.length()) {
                a0 = FloatVector.fromArray(F, x, x0 + c).fma(widen(seg, rowBase + 2L * c), a0);
            }
            float s0 = sum(a0);
            for (; c < k; c++) {
                s0 += x[x0 + c] * w.get(j, c);
            }
            y[t * n + j] = s0 + b;
        }
    }

    private static void f32Row(float[] x, Matrix.F32 w, int j, int t0, int t1, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        int upper = F.loopBound(k);
        float[] wd = w.data();
        int rowBase = j * k;
        float b = bias == null ? 0f : bias[j];
        int t = t0;
        for (; t + TILE <= t1 || (t + 1 < t1); t += TILE) {
            // Up to 4 rows per pass over W's row, as in bf16Row.
            int live = Math.min(TILE, t1 - t);
            int x0 = t * k;
            int x1 = (t + Math.min(1, live - 1)) * k;
            int x2 = (t + Math.min(2, live - 1)) * k;
            int x3 = (t + Math.min(3, live - 1)) * k;
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = FloatVector.zero(F);
            FloatVector a2 = FloatVector.zero(F);
            FloatVector a3 = FloatVector.zero(F);
            int c = 0;
            for (; c < upper; c += F.length()) {
                FloatVector wv = FloatVector.fromArray(F, wd, rowBase + c);
                a0 = FloatVector.fromArray(F, x, x0 + c).fma(wv, a0);
                a1 = FloatVector.fromArray(F, x, x1 + c).fma(wv, a1);
                a2 = FloatVector.fromArray(F, x, x2 + c).fma(wv, a2);
                a3 = FloatVector.fromArray(F, x, x3 + c).fma(wv, a3);
            }
            float s0 = sum(a0);
            float s1 = sum(a1);
            float s2 = sum(a2);
            float s3 = sum(a3);
            for (; c < k; c++) {
                float wc = wd[rowBase + c];
                s0 += x[x0 + c] * wc;
                s1 += x[x1 + c] * wc;
                s2 += x[x2 + c] * wc;
                s3 += x[x3 + c] * wc;
            }
            y[t * n + j] = s0 + b;
            y[(t + 1) * n + j] = s1 + b;
            if (live > 2) {
                y[(t + 2) * n + j] = s2 + b;
            }
            if (live > 3) {
                y[(t + 3) * n + j] = s3 + b;
            }
        }
        for (; t < t1; t++) {
            y[t * n + j] = INSTANCE.dot(x, t * k, wd, rowBase, k) + b;
        }
    }

    /**
     * Σ lanes in lane order. Not {@code reduceLanes(ADD)}: its order differs between the JIT intrinsic and the
     * interpreter's fallback, which would make results depend on warm-up, and m2q's outputs must be
     * reproducible bit for bit.
     */
    private static float sum(FloatVector v) {
        // Stored once and added from memory: lane(i) costs an extract per lane, which made the reduction, not
        // the dot product, the bulk of a short (k = 256) product. Same order, same bits.
        float[] lanes = new float[LANES];
        v.intoArray(lanes, 0);
        float s = 0f;
        for (int i = 0; i < LANES; i++) {
            s += lanes[i];
        }
        return s;
    }

    private static final int LANES = F.length();

    private static FloatVector widen(MemorySegment seg, long byteOffset) {
        ShortVector s = ShortVector.fromMemorySegment(S, seg, byteOffset, ByteOrder.LITTLE_ENDIAN);
        IntVector i = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    @Override
    public void dots(float[] a, int aOff, float[] b, int[] bOffs, int count, int n, float[] out, int outOff) {
        VectorAttention.dots(a, aOff, b, bOffs, count, n, out, outOff);
    }

    @Override
    public void axpys(float[] alphas, int aOff, float[] x, int[] xOffs, int count, float[] y, int yOff, int n) {
        VectorAttention.axpys(alphas, aOff, x, xOffs, count, y, yOff, n);
    }

    @Override
    public void axpyRows(float[] alphas, int aOff, float[] x, int xOff, float[] y, int[] yOffs, int count, int n) {
        VectorAttention.axpyRows(alphas, aOff, x, xOff, y, yOffs, count, n);
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        int upper = F.loopBound(n);
        int i = 0;
        for (; i < upper; i += F.length()) {
            acc = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc);
        }
        float s = sum(acc);
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        int upper = F.loopBound(n);
        int i = 0;
        for (; i < upper; i += F.length()) {
            FloatVector.fromArray(F, x, xOff + i)
                    .fma(FloatVector.broadcast(F, alpha), FloatVector.fromArray(F, y, yOff + i))
                    .intoArray(y, yOff + i);
        }
        for (; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    /** Rows of c per block in {@link #syrkUpper}. */
    private static final int SYRK_ROWS = 128;
    /** Columns of c per block in {@link #syrkUpper}. */
    private static final int SYRK_COLS = 512;

    /**
     * {@link Kernels#absMaxColumns} a vector of columns at a time, rows outer; each thread keeps its columns' running
     * maxima in {@code out}. The lanes compute Math.abs and Math.max, exact in any order, so the bits are the scalar
     * twin's (a NaN stays NaN, −0 and +0 give +0).
     */
    @Override
    public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        int chunks = (cols + LANES - 1) / LANES;
        Parallel.forRange(chunks, (long) rows * LANES, (from, to) -> {
            int c0 = from * LANES;
            int c1 = Math.min(cols, to * LANES);
            int upper = c0 + F.loopBound(c1 - c0);
            for (int r = 0; r < rows; r++) {
                int row = xOff + r * cols;
                int c = c0;
                for (; c < upper; c += LANES) {
                    FloatVector.fromArray(F, out, outOff + c)
                            .max(FloatVector.fromArray(F, x, row + c).abs())
                            .intoArray(out, outOff + c);
                }
                for (; c < c1; c++) {
                    out[outOff + c] = Math.max(out[outOff + c], Math.abs(x[row + c]));
                }
            }
        });
    }

    /**
     * Large products run on {@link TiledGemm#syrkUpper} (packed panels, 6 × 4-vector register tiles, each chunk
     * sum in one register pass). Small ones here, blocked: c is covered by blocks of {@link #SYRK_ROWS} × {@link #SYRK_COLS} on and above the diagonal; each
     * block's chunk sums are one {@link #gemmAcc} from zero into a scratch block (Xᵀ read in place through its
     * strides; register-tiled, cache-blocked over tokens and columns, rows split over threads), so only a
     * (128 + 512)-column strip of x is read per block, not all of x per 4 rows. Each element is still one
     * in-order FMA chain from 0f over the tokens, added to c once, so the bits equal the scalar twin's.
     */
    @Override
    public void syrkUpper(float[] x, int rows, int k, float[] c) {
        if ((long) rows * k * k >= 2 * TiledGemm.MIN_WORK) {
            TiledGemm.syrkUpper(x, rows, k, c);
            return;
        }
        float[] block = new float[Math.min(SYRK_ROWS, k) * Math.min(SYRK_COLS, k)];
        for (int i0 = 0; i0 < k; i0 += SYRK_ROWS) {
            int ib = Math.min(SYRK_ROWS, k - i0);
            for (int j0 = i0; j0 < k; j0 += SYRK_COLS) {
                int jb = Math.min(SYRK_COLS, k - j0);
                Arrays.fill(block, 0, ib * jb, 0f);
                gemmAcc(ib, jb, rows, x, i0, 1, k, x, j0, k, block, 0, jb);
                for (int r = 0; r < ib; r++) {
                    int i = i0 + r;
                    int row = i * k;
                    for (int q = Math.max(0, i - j0); q < jb; q++) {
                        c[row + j0 + q] += block[r * jb + q];
                    }
                }
            }
        }
    }

    /** Depth per pass of {@link #gemmAcc}: a GEMM_KC × GEMM_NC block of B (256 KiB) stays in L2. */
    private static final int GEMM_KC = 256;
    /** Columns per pass of {@link #gemmAcc}. */
    private static final int GEMM_NC = 256;

    /**
     * Products of at least one 6-row micro-tile run on {@link TiledGemm#gemmAcc} (packed panels of A and B, 6 ×
     * 4-vector register tiles). Thinner or small ones here, register-tiled, cache-blocked: a 4 × 4-vector tile of C lives in 16 accumulators while p runs over a
     * {@link #GEMM_KC} slice, fed by 4 broadcasts of A and 4 loads of B (one row of a B block that stays in
     * L2). Each lane is one in-order FMA chain continued across slices (stored and reloaded exactly), so the
     * bits equal the scalar twin's. Row tiles (or, for short C, column tiles) are split over threads.
     */
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
        if (m <= 0 || n <= 0 || depth <= 0) {
            return;
        }
        if (m >= TiledGemm.MR && n >= TiledGemm.NW / 2 && (long) m * n * depth >= TiledGemm.MIN_WORK) {
            // At least one full micro-tile of rows and half of one of columns: thinner products (a row of the
            // triangular inverse) would spend their time on padding and packing.
            TiledGemm.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
            return;
        }
        Gemm g = new Gemm(depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
        int rowTiles = (m + 3) / 4;
        if (rowTiles >= 8) {
            Parallel.forRange(rowTiles, 4L * n * depth, (from, to) -> g.block(4 * from, Math.min(m, 4 * to), 0, n));
        } else {
            int width = 4 * F.length();
            int colTiles = (n + width - 1) / width;
            Parallel.forRange(
                    colTiles,
                    (long) m * width * depth,
                    (from, to) -> g.block(0, m, width * from, Math.min(n, width * to)));
        }
    }

    private record Gemm(
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
        /** C[i0:i1, j0:j1] += A[i0:i1, :]·B[:, j0:j1]. */
        void block(int i0, int i1, int j0, int j1) {
            int v = F.length();
            for (int jc = j0; jc < j1; jc += GEMM_NC) {
                int jce = Math.min(j1, jc + GEMM_NC);
                for (int pc = 0; pc < depth; pc += GEMM_KC) {
                    int pce = Math.min(depth, pc + GEMM_KC);
                    int i = i0;
                    for (; i + 4 <= i1; i += 4) {
                        int j = jc;
                        for (; j + 4 * v <= jce; j += 4 * v) {
                            tile4x4(i, j, pc, pce);
                        }
                        for (; j + v <= jce; j += v) {
                            for (int r = i; r < i + 4; r++) {
                                tile1(r, j, pc, pce);
                            }
                        }
                        for (int r = i; r < i + 4; r++) {
                            scalar(r, j, jce, pc, pce);
                        }
                    }
                    for (; i < i1; i++) {
                        int j = jc;
                        for (; j + v <= jce; j += v) {
                            tile1(i, j, pc, pce);
                        }
                        scalar(i, j, jce, pc, pce);
                    }
                }
            }
        }

        private void tile4x4(int i, int j, int p0, int p1) {
            int v = F.length();
            int r0 = cOff + i * ldc + j;
            int r1 = r0 + ldc;
            int r2 = r1 + ldc;
            int r3 = r2 + ldc;
            FloatVector c00 = FloatVector.fromArray(F, c, r0);
            FloatVector c01 = FloatVector.fromArray(F, c, r0 + v);
            FloatVector c02 = FloatVector.fromArray(F, c, r0 + 2 * v);
            FloatVector c03 = FloatVector.fromArray(F, c, r0 + 3 * v);
            FloatVector c10 = FloatVector.fromArray(F, c, r1);
            FloatVector c11 = FloatVector.fromArray(F, c, r1 + v);
            FloatVector c12 = FloatVector.fromArray(F, c, r1 + 2 * v);
            FloatVector c13 = FloatVector.fromArray(F, c, r1 + 3 * v);
            FloatVector c20 = FloatVector.fromArray(F, c, r2);
            FloatVector c21 = FloatVector.fromArray(F, c, r2 + v);
            FloatVector c22 = FloatVector.fromArray(F, c, r2 + 2 * v);
            FloatVector c23 = FloatVector.fromArray(F, c, r2 + 3 * v);
            FloatVector c30 = FloatVector.fromArray(F, c, r3);
            FloatVector c31 = FloatVector.fromArray(F, c, r3 + v);
            FloatVector c32 = FloatVector.fromArray(F, c, r3 + 2 * v);
            FloatVector c33 = FloatVector.fromArray(F, c, r3 + 3 * v);
            int ai = aOff + i * aRow;
            for (int p = p0; p < p1; p++) {
                int bp = bOff + p * ldb + j;
                FloatVector b0 = FloatVector.fromArray(F, b, bp);
                FloatVector b1 = FloatVector.fromArray(F, b, bp + v);
                FloatVector b2 = FloatVector.fromArray(F, b, bp + 2 * v);
                FloatVector b3 = FloatVector.fromArray(F, b, bp + 3 * v);
                int ap = ai + p * aCol;
                FloatVector x = FloatVector.broadcast(F, a[ap]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                c02 = x.fma(b2, c02);
                c03 = x.fma(b3, c03);
                x = FloatVector.broadcast(F, a[ap + aRow]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                c12 = x.fma(b2, c12);
                c13 = x.fma(b3, c13);
                x = FloatVector.broadcast(F, a[ap + 2 * aRow]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                c22 = x.fma(b2, c22);
                c23 = x.fma(b3, c23);
                x = FloatVector.broadcast(F, a[ap + 3 * aRow]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
                c32 = x.fma(b2, c32);
                c33 = x.fma(b3, c33);
            }
            c00.intoArray(c, r0);
            c01.intoArray(c, r0 + v);
            c02.intoArray(c, r0 + 2 * v);
            c03.intoArray(c, r0 + 3 * v);
            c10.intoArray(c, r1);
            c11.intoArray(c, r1 + v);
            c12.intoArray(c, r1 + 2 * v);
            c13.intoArray(c, r1 + 3 * v);
            c20.intoArray(c, r2);
            c21.intoArray(c, r2 + v);
            c22.intoArray(c, r2 + 2 * v);
            c23.intoArray(c, r2 + 3 * v);
            c30.intoArray(c, r3);
            c31.intoArray(c, r3 + v);
            c32.intoArray(c, r3 + 2 * v);
            c33.intoArray(c, r3 + 3 * v);
        }

        private void tile1(int i, int j, int p0, int p1) {
            int r = cOff + i * ldc + j;
            FloatVector acc = FloatVector.fromArray(F, c, r);
            int ai = aOff + i * aRow;
            for (int p = p0; p < p1; p++) {
                acc = FloatVector.broadcast(F, a[ai + p * aCol])
                        .fma(FloatVector.fromArray(F, b, bOff + p * ldb + j), acc);
            }
            acc.intoArray(c, r);
        }

        private void scalar(int i, int j0, int j1, int p0, int p1) {
            int ai = aOff + i * aRow;
            for (int j = j0; j < j1; j++) {
                int r = cOff + i * ldc + j;
                float s = c[r];
                for (int p = p0; p < p1; p++) {
                    s = Math.fma(a[ai + p * aCol], b[bOff + p * ldb + j], s);
                }
                c[r] = s;
            }
        }
    }
}
