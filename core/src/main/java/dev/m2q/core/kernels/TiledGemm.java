package dev.m2q.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Register-tiled, cache-blocked fp32 products behind {@link VectorKernels#gemmAcc} and
 * {@link VectorKernels#syrkUpper}, and the micro-kernel {@link TiledMatmul} runs on. The layout follows the
 * GotoBLAS/BLIS scheme with the roles of A and B as in C += A·B: a KC × NC block of B is packed into contiguous
 * micro-panels ({@code [tile][p][NW]}, zero-padded on the right) that stay in L2, a micro-panel of MR rows of A
 * is packed ({@code [p][MR]}, zero-padded below) and stays in L1, and the micro-kernel keeps an MR × NW tile of
 * C in MR·NR = 24 of the 32 vector registers while p runs: per step NR loads of B, MR broadcasts of A and MR·NR
 * fused multiply-adds.
 *
 * <p>Bits: every element of C is one fused multiply-add chain over p in increasing order, continued across
 * blocks of p through an exact store and reload, so the results equal {@link ScalarKernels}' bit for bit
 * whatever the blocking, padding or thread split (padding only adds products to elements that are thrown
 * away). The packed copies are exact.
 */
final class TiledGemm {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Lanes per vector. */
    static final int V = F.length();
    /** Rows of A (and C) per micro-tile. */
    static final int MR = 6;
    /** Vectors of B (and C) per micro-tile row: MR·NR accumulators + NR loads + 1 broadcast = 29 registers. */
    static final int NR = 4;
    /** Columns per micro-tile. */
    static final int NW = NR * V;
    /** Depth per block: an MR × KC panel of A (6 KiB) stays in L1, a KC × NW panel of B streams from L2. */
    static final int KC = 256;
    /** Columns per block of B in {@link #syrkUpper}: KC × NC fp32 = 384 KiB, L2-resident beside the A panel. */
    static final int NC = 6 * NW;
    /** Rows per packed block of A in gemmAcc: MC × KC fp32 = 192 KiB, L2-resident while B's micro-panels pass. */
    static final int MC = 32 * MR;
    /** Columns per packed block of B in gemmAcc: KC × NB fp32 = 4 MiB, L3-resident while A's blocks pass. */
    static final int NB = 64 * NW;
    /** Below this many multiply-adds the blocked path's packing is not worth it; the simple loops run. */
    static final long MIN_WORK = 1L << 15;

    private TiledGemm() {}

    /** Per-thread packing buffers, grown on demand and reused across calls (the pool's threads live on). */
    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    static final class Buffers {
        float[] b = new float[0];
        float[] a = new float[0];
        final float[] tile = new float[MR * NW];
        float[] extra = new float[0];

        float[] b(int size) {
            if (b.length < size) {
                b = new float[size];
            }
            return b;
        }

        float[] a(int size) {
            if (a.length < size) {
                a = new float[size];
            }
            return a;
        }

        float[] extra(int size) {
            if (extra.length < size) {
                extra = new float[size];
            }
            return extra;
        }
    }

    static Buffers buffers() {
        return BUFFERS.get();
    }

    /** The contract of {@link Kernels#gemmAcc}; callers check that m, n, depth are positive. */
    static void gemmAcc(
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
        Gemm g = new Gemm(depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
        int rowTiles = (m + MR - 1) / MR;
        int colTiles = (n + NW - 1) / NW;
        int threads = Parallel.threads();
        int rows = pieceRows(threads, rowTiles, colTiles, m, n);
        int cols = threads / rows;
        // One piece per thread (the pieces' work is uniform, so no finer split is needed to balance them).
        Parallel.forRange(rows * cols, (long) m * n / (rows * cols) * depth, (from, to) -> {
            for (int q = from; q < to; q++) {
                int ri = q / cols;
                int ci = q % cols;
                int i0 = MR * (int) ((long) rowTiles * ri / rows);
                int i1 = Math.min(m, MR * (int) ((long) rowTiles * (ri + 1) / rows));
                int j0 = NW * (int) ((long) colTiles * ci / cols);
                int j1 = Math.min(n, NW * (int) ((long) colTiles * (ci + 1) / cols));
                if (i0 < i1 && j0 < j1) {
                    g.block(i0, i1, j0, j1);
                }
            }
        });
    }

    /**
     * Row pieces R of an R × C split into {@code threads} pieces (C = threads / R): each row piece packs all of B
     * (depth × n) and each column piece all of A (m × depth), so R is chosen for the least R·n + C·m (the most row
     * pieces on a tie); R ≤ the row tiles and C ≤ the column tiles where possible. Packing B once per row chunk
     * of a finer split (eight on two cores) cost the inverse's 512-row products a third of their time.
     */
    static int pieceRows(int threads, int rowTiles, int colTiles, int m, int n) {
        int best = 0;
        long bestCost = Long.MAX_VALUE;
        for (int r = threads; r >= 1; r--) {
            int cc = threads / r;
            if (r * cc != threads || r > rowTiles || cc > colTiles) {
                continue;
            }
            long cost = (long) r * n + (long) cc * m;
            if (cost < bestCost) {
                bestCost = cost;
                best = r;
            }
        }
        if (best == 0) { // too few tiles for a whole split: the longer side takes every thread it has tiles for
            return rowTiles >= colTiles ? Math.min(threads, rowTiles) : 1;
        }
        return best;
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
        /**
         * C[i0:i1, j0:j1] += A[i0:i1, :]·B[:, j0:j1], blocked as GotoBLAS/BLIS: per column block of at most
         * {@link #NB} columns and depth block of {@link #KC}, B's block is packed once (L3), then per row block
         * of {@link #MC} rows A's block is packed once (L2) and every micro-panel of B (L2) meets every micro-panel
         * of A. Each element's chain still runs over p in order (depth blocks in order, exact store and reload).
         */
        void block(int i0, int i1, int j0, int j1) {
            Buffers buf = buffers();
            float[] bp = buf.b(KC * Math.min(NB, (j1 - j0 + NW - 1) / NW * NW));
            float[] ap = buf.a(KC * MC);
            float[] tile = buf.tile;
            for (int jb = j0; jb < j1; jb += NB) {
                int nb = Math.min(NB, j1 - jb);
                for (int pc = 0; pc < depth; pc += KC) {
                    int kc = Math.min(KC, depth - pc);
                    packB(b, bOff + pc * ldb + jb, ldb, kc, nb, bp);
                    for (int ic = i0; ic < i1; ic += MC) {
                        int mc = Math.min(MC, i1 - ic);
                        int tiles = (mc + MR - 1) / MR;
                        for (int t = 0; t < tiles; t++) {
                            int i = ic + t * MR;
                            packA(
                                    a,
                                    aOff + i * aRow + pc * aCol,
                                    aRow,
                                    aCol,
                                    Math.min(MR, ic + mc - i),
                                    kc,
                                    ap,
                                    t * kc * MR);
                        }
                        for (int jt = 0; jt < nb; jt += NW) {
                            int nw = Math.min(NW, nb - jt);
                            int bo = jt * kc;
                            for (int t = 0; t < tiles; t++) {
                                int i = ic + t * MR;
                                int mr = Math.min(MR, ic + mc - i);
                                int ao = t * kc * MR;
                                int ci = cOff + i * ldc + jb + jt;
                                if (mr == MR && nw == NW) {
                                    kernel(kc, ap, ao, bp, bo, c, ci, ldc, c, ci, ldc, false);
                                } else {
                                    copyIn(c, ci, ldc, mr, nw, tile);
                                    kernel(kc, ap, ao, bp, bo, tile, 0, NW, tile, 0, NW, false);
                                    copyOut(tile, mr, nw, c, ci, ldc);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * The contract of {@link Kernels#syrkUpper}: for each MR-row tile of the upper triangle and each NW-column
     * tile at or right of it, the chunk sum runs from 0f over all rows in one register pass and is added to c
     * once. Column ranges of equal triangle area are split over threads.
     */
    static void syrkUpper(float[] x, int rows, int k, float[] c) {
        // B block: rows × nc fp32 kept near 512 KiB (L2), at least one micro-panel, at most NC columns.
        int nc = Math.max(NW, Math.min(NC, (128 * 1024 / Math.max(1, rows)) / NW * NW));
        int threads = Parallel.threads();
        int colTiles = (k + NW - 1) / NW;
        int chunks = Math.max(1, Math.min(colTiles, 8 * threads));
        int[] bounds = new int[chunks + 1];
        for (int q = 1; q <= chunks; q++) {
            // Equal areas of the triangle: the work left of column j grows as j².
            int j = (int) Math.round(k * Math.sqrt((double) q / chunks) / NW) * NW;
            bounds[q] = q == chunks ? k : Math.max(bounds[q - 1], Math.min(k, j));
        }
        // Every column chunk reads the A panels of all tiles left of it: packed once here, shared by the threads
        // (packing them per chunk, a strided gather, cost more than the chunk's products at small chunks).
        int tiles = (k + MR - 1) / MR;
        float[] ap = new float[tiles * rows * MR];
        Parallel.forRange(tiles, (long) rows * MR, (from, to) -> {
            for (int t = from; t < to; t++) {
                packA(x, t * MR, 1, k, Math.min(MR, k - t * MR), rows, ap, t * rows * MR);
            }
        });
        Parallel.forRange(chunks, (long) rows * k * k / (2L * chunks) + 1, (from, to) -> {
            for (int q = from; q < to; q++) {
                for (int jc = bounds[q]; jc < bounds[q + 1]; jc += nc) {
                    syrkColumns(x, rows, k, c, ap, jc, Math.min(bounds[q + 1], jc + nc));
                }
            }
        });
    }

    /** c[i, j] += Σ_t x[t, i]·x[t, j] for j in [j0, j1), i ≤ j; ap holds x's A panels, tile t at t·rows·MR. */
    private static void syrkColumns(float[] x, int rows, int k, float[] c, float[] ap, int j0, int j1) {
        Buffers buf = buffers();
        int nc = j1 - j0;
        float[] bp = buf.b(rows * ((nc + NW - 1) / NW) * NW);
        float[] tile = buf.tile;
        packB(x, j0, k, rows, nc, bp);
        for (int i = 0; i < j1; i += MR) {
            int mr = Math.min(MR, k - i);
            int ao = i * rows;
            for (int jt = 0; jt < nc; jt += NW) {
                int jb = j0 + jt;
                int nw = Math.min(NW, nc - jt);
                if (jb + nw <= i) {
                    continue; // wholly below the diagonal
                }
                int bo = jt * rows;
                if (mr == MR && nw == NW && jb >= i + MR - 1) {
                    int ci = i * k + jb;
                    kernel(rows, ap, ao, bp, bo, null, 0, 0, c, ci, k, true);
                } else {
                    kernel(rows, ap, ao, bp, bo, null, 0, 0, tile, 0, NW, false);
                    for (int r = 0; r < mr; r++) {
                        int row = (i + r) * k;
                        for (int q = Math.max(0, i + r - jb); q < nw; q++) {
                            c[row + jb + q] += tile[r * NW + q];
                        }
                    }
                }
            }
        }
    }

    /**
     * B[p, j] = b[off + p·ldb + j] for p &lt; kc, j &lt; nc into panels [nc/NW][kc][NW], columns past nc zero.
     */
    static void packB(float[] b, int off, int ldb, int kc, int nc, float[] bp) {
        for (int jt = 0; jt < nc; jt += NW) {
            int nw = Math.min(NW, nc - jt);
            int base = jt * kc;
            if (nw == NW) {
                for (int p = 0; p < kc; p++) {
                    int src = off + p * ldb + jt;
                    int dst = base + p * NW;
                    for (int v = 0; v < NW; v += V) {
                        FloatVector.fromArray(F, b, src + v).intoArray(bp, dst + v);
                    }
                }
            } else {
                for (int p = 0; p < kc; p++) {
                    int src = off + p * ldb + jt;
                    int dst = base + p * NW;
                    for (int q = 0; q < nw; q++) {
                        bp[dst + q] = b[src + q];
                    }
                    for (int q = nw; q < NW; q++) {
                        bp[dst + q] = 0f;
                    }
                }
            }
        }
    }

    /** A[r, p] = a[off + r·aRow + p·aCol] for r &lt; mr, p &lt; kc into ap[apOff:] as [kc][MR], rows past mr zero. */
    static void packA(float[] a, int off, int aRow, int aCol, int mr, int kc, float[] ap, int apOff) {
        if (aRow == 1 && mr == MR) {
            for (int p = 0; p < kc; p++) {
                int src = off + p * aCol;
                int dst = apOff + p * MR;
                for (int r = 0; r < MR; r++) {
                    ap[dst + r] = a[src + r];
                }
            }
            return;
        }
        for (int r = 0; r < MR; r++) {
            if (r < mr) {
                int src = off + r * aRow;
                for (int p = 0; p < kc; p++) {
                    ap[apOff + p * MR + r] = a[src + p * aCol];
                }
            } else {
                for (int p = 0; p < kc; p++) {
                    ap[apOff + p * MR + r] = 0f;
                }
            }
        }
    }

    private static void copyIn(float[] c, int ci, int ldc, int mr, int nw, float[] tile) {
        java.util.Arrays.fill(tile, 0f);
        for (int r = 0; r < mr; r++) {
            System.arraycopy(c, ci + r * ldc, tile, r * NW, nw);
        }
    }

    private static void copyOut(float[] tile, int mr, int nw, float[] c, int ci, int ldc) {
        for (int r = 0; r < mr; r++) {
            System.arraycopy(tile, r * NW, c, ci + r * ldc, nw);
        }
    }

    /**
     * The MR × NW micro-kernel over kc steps: acc = src tile (or 0f when src is null); for p in order,
     * acc[r, j] = fma(a[ao + p·MR + r], b[bo + p·NW + j], acc[r, j]); then dst tile = acc, or dst + acc when add.
     * Tiles are row-major with the given leading dimensions.
     */
    static void kernel(
            int kc,
            float[] a,
            int ao,
            float[] b,
            int bo,
            float[] src,
            int so,
            int lds,
            float[] dst,
            int dOff,
            int ldd,
            boolean add) {
        FloatVector c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23;
        FloatVector c30, c31, c32, c33, c40, c41, c42, c43, c50, c51, c52, c53;
        if (src == null) {
            FloatVector z = FloatVector.zero(F);
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = c20 = c21 = c22 = c23 = z;
            c30 = c31 = c32 = c33 = c40 = c41 = c42 = c43 = c50 = c51 = c52 = c53 = z;
        } else {
            int s0 = so;
            c00 = FloatVector.fromArray(F, src, s0);
            c01 = FloatVector.fromArray(F, src, s0 + V);
            c02 = FloatVector.fromArray(F, src, s0 + 2 * V);
            c03 = FloatVector.fromArray(F, src, s0 + 3 * V);
            s0 += lds;
            c10 = FloatVector.fromArray(F, src, s0);
            c11 = FloatVector.fromArray(F, src, s0 + V);
            c12 = FloatVector.fromArray(F, src, s0 + 2 * V);
            c13 = FloatVector.fromArray(F, src, s0 + 3 * V);
            s0 += lds;
            c20 = FloatVector.fromArray(F, src, s0);
            c21 = FloatVector.fromArray(F, src, s0 + V);
            c22 = FloatVector.fromArray(F, src, s0 + 2 * V);
            c23 = FloatVector.fromArray(F, src, s0 + 3 * V);
            s0 += lds;
            c30 = FloatVector.fromArray(F, src, s0);
            c31 = FloatVector.fromArray(F, src, s0 + V);
            c32 = FloatVector.fromArray(F, src, s0 + 2 * V);
            c33 = FloatVector.fromArray(F, src, s0 + 3 * V);
            s0 += lds;
            c40 = FloatVector.fromArray(F, src, s0);
            c41 = FloatVector.fromArray(F, src, s0 + V);
            c42 = FloatVector.fromArray(F, src, s0 + 2 * V);
            c43 = FloatVector.fromArray(F, src, s0 + 3 * V);
            s0 += lds;
            c50 = FloatVector.fromArray(F, src, s0);
            c51 = FloatVector.fromArray(F, src, s0 + V);
            c52 = FloatVector.fromArray(F, src, s0 + 2 * V);
            c53 = FloatVector.fromArray(F, src, s0 + 3 * V);
        }
        for (int p = 0; p < kc; p++) {
            // Indices linear in p, so the JIT hoists the bounds checks out of the loop (separately stepped
            // offsets kept them in: half the speed, measured).
            int pa = ao + p * MR;
            int pb = bo + p * NW;
            FloatVector b0 = FloatVector.fromArray(F, b, pb);
            FloatVector b1 = FloatVector.fromArray(F, b, pb + V);
            FloatVector b2 = FloatVector.fromArray(F, b, pb + 2 * V);
            FloatVector b3 = FloatVector.fromArray(F, b, pb + 3 * V);
            FloatVector x = FloatVector.broadcast(F, a[pa]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            c02 = x.fma(b2, c02);
            c03 = x.fma(b3, c03);
            x = FloatVector.broadcast(F, a[pa + 1]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            c12 = x.fma(b2, c12);
            c13 = x.fma(b3, c13);
            x = FloatVector.broadcast(F, a[pa + 2]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            c22 = x.fma(b2, c22);
            c23 = x.fma(b3, c23);
            x = FloatVector.broadcast(F, a[pa + 3]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
            c32 = x.fma(b2, c32);
            c33 = x.fma(b3, c33);
            x = FloatVector.broadcast(F, a[pa + 4]);
            c40 = x.fma(b0, c40);
            c41 = x.fma(b1, c41);
            c42 = x.fma(b2, c42);
            c43 = x.fma(b3, c43);
            x = FloatVector.broadcast(F, a[pa + 5]);
            c50 = x.fma(b0, c50);
            c51 = x.fma(b1, c51);
            c52 = x.fma(b2, c52);
            c53 = x.fma(b3, c53);
        }
        // Written out, not through a helper taking vectors: a vector passed to a call that is not inlined is
        // boxed, and the boxing leaks into the loop (10x slower, measured).
        if (add) {
            int d0 = dOff;
            c00 = FloatVector.fromArray(F, dst, d0).add(c00);
            c01 = FloatVector.fromArray(F, dst, d0 + V).add(c01);
            c02 = FloatVector.fromArray(F, dst, d0 + 2 * V).add(c02);
            c03 = FloatVector.fromArray(F, dst, d0 + 3 * V).add(c03);
            int d1 = dOff + ldd;
            c10 = FloatVector.fromArray(F, dst, d1).add(c10);
            c11 = FloatVector.fromArray(F, dst, d1 + V).add(c11);
            c12 = FloatVector.fromArray(F, dst, d1 + 2 * V).add(c12);
            c13 = FloatVector.fromArray(F, dst, d1 + 3 * V).add(c13);
            int d2 = dOff + 2 * ldd;
            c20 = FloatVector.fromArray(F, dst, d2).add(c20);
            c21 = FloatVector.fromArray(F, dst, d2 + V).add(c21);
            c22 = FloatVector.fromArray(F, dst, d2 + 2 * V).add(c22);
            c23 = FloatVector.fromArray(F, dst, d2 + 3 * V).add(c23);
            int d3 = dOff + 3 * ldd;
            c30 = FloatVector.fromArray(F, dst, d3).add(c30);
            c31 = FloatVector.fromArray(F, dst, d3 + V).add(c31);
            c32 = FloatVector.fromArray(F, dst, d3 + 2 * V).add(c32);
            c33 = FloatVector.fromArray(F, dst, d3 + 3 * V).add(c33);
            int d4 = dOff + 4 * ldd;
            c40 = FloatVector.fromArray(F, dst, d4).add(c40);
            c41 = FloatVector.fromArray(F, dst, d4 + V).add(c41);
            c42 = FloatVector.fromArray(F, dst, d4 + 2 * V).add(c42);
            c43 = FloatVector.fromArray(F, dst, d4 + 3 * V).add(c43);
            int d5 = dOff + 5 * ldd;
            c50 = FloatVector.fromArray(F, dst, d5).add(c50);
            c51 = FloatVector.fromArray(F, dst, d5 + V).add(c51);
            c52 = FloatVector.fromArray(F, dst, d5 + 2 * V).add(c52);
            c53 = FloatVector.fromArray(F, dst, d5 + 3 * V).add(c53);
        }
        int d = dOff;
        c00.intoArray(dst, d);
        c01.intoArray(dst, d + V);
        c02.intoArray(dst, d + 2 * V);
        c03.intoArray(dst, d + 3 * V);
        d += ldd;
        c10.intoArray(dst, d);
        c11.intoArray(dst, d + V);
        c12.intoArray(dst, d + 2 * V);
        c13.intoArray(dst, d + 3 * V);
        d += ldd;
        c20.intoArray(dst, d);
        c21.intoArray(dst, d + V);
        c22.intoArray(dst, d + 2 * V);
        c23.intoArray(dst, d + 3 * V);
        d += ldd;
        c30.intoArray(dst, d);
        c31.intoArray(dst, d + V);
        c32.intoArray(dst, d + 2 * V);
        c33.intoArray(dst, d + 3 * V);
        d += ldd;
        c40.intoArray(dst, d);
        c41.intoArray(dst, d + V);
        c42.intoArray(dst, d + 2 * V);
        c43.intoArray(dst, d + 3 * V);
        d += ldd;
        c50.intoArray(dst, d);
        c51.intoArray(dst, d + V);
        c52.intoArray(dst, d + 2 * V);
        c53.intoArray(dst, d + 3 * V);
    }
}
