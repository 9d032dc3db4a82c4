package dev.m2q.core.kernels;

import static dev.m2q.core.kernels.TiledGemm.MR;
import static dev.m2q.core.kernels.TiledGemm.NW;
import static dev.m2q.core.kernels.TiledGemm.V;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * y = x·Wᵀ + bias for many rows (prefill, calibration) with BF16 or F32 weights, register-tiled and
 * cache-blocked on {@link TiledGemm#kernel}, the same bits as {@link VectorKernels}' row-at-a-time path.
 *
 * <p>That path computes each y[t, n] as V lane sums (lane l: the fma chain over k = l, l + V, l + 2V, … below
 * K_V = K − K mod V, from 0f), then their sum in lane order from 0f, then the tail k ≥ K_V one rounded product
 * at a time, then + bias (0f without one). Here the lane sums are V ordinary products of depth S = K_V / V,
 * C_l = X_l·W_lᵀ with X_l[t, s] = x[t, sV + l] and W_l[n, s] = W[n, sV + l]; each C_l element is that same
 * fma chain over s in order, so C_l runs on the broadcast micro-kernel (vectors across n, one fp32 chain per
 * element), and y accumulates C_0, C_1, … in lane order. Only the tiling over (t, n) differs, which changes no
 * bits.
 *
 * <p>Layout: x is regrouped once per call into X_l micro-panels {@code [l][row tile][s][MR]} (zero rows pad the
 * last tile); each thread takes a range of output columns and regroups its block of W, widened to fp32, into
 * {@code [l][column tile][s][NW]}. Per (l, depth block) an MR × NW tile runs the kernel over KC_M steps; the
 * chain continues across depth blocks through an exact fp32 scratch tile, and the finished C_l is added to the
 * lane-order sum.
 */
final class TiledMatmul {
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, TiledGemm.F.vectorShape());
    private static final VectorSpecies<Short> S16 =
            VectorSpecies.of(short.class, VectorShape.forBitSize(V * Short.SIZE));
    /** Depth (in s) per block: an MR × KC_M panel of X_l (12 KiB) stays in L1. */
    static final int KC_M = 512;
    /** Column tiles per block of W: KC_M × 3·NW fp32 = 384 KiB of W_l in L2. */
    static final int NT_M = 3;
    /** Rows per block: the lane-order sum and the chain scratch, MC_M × 3·NW fp32 each, stay in L2. */
    static final int MC_M = 32 * MR;

    /** Gather offsets 0, V, 2V, …: one lane of V consecutive rows of a row-major [*, V] block. */
    private static final int[] STRIDE_V = new int[V];

    static {
        for (int i = 0; i < V; i++) {
            STRIDE_V[i] = i * V;
        }
    }

    private TiledMatmul() {}

    /** y [rows, n] = x [rows, k] · wᵀ + bias; w is {@link Matrix.Bf16} or {@link Matrix.F32}. */
    static void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        int kv = k - k % V;
        int depth = kv / V;
        int rowTiles = (rows + MR - 1) / MR;
        float[] xl = new float[rowTiles * MR * kv];
        int[] gather = rowGather(k);
        Parallel.forRange(rowTiles, (long) MR * k, (from, to) -> {
            for (int tile = from; tile < to; tile++) {
                regroupRows(x, rows, k, depth, rowTiles, tile, xl, gather);
            }
        });
        int colTiles = (n + NW - 1) / NW;
        Parallel.forRange(colTiles, (long) rows * k * NW, (from, to) -> {
            int tiles = to - from;
            int blocks = (tiles + NT_M - 1) / NT_M;
            for (int bl = 0; bl < blocks; bl++) {
                int t0 = from + (int) ((long) tiles * bl / blocks);
                int t1 = from + (int) ((long) tiles * (bl + 1) / blocks);
                columns(x, rows, w, bias, y, xl, rowTiles, depth, t0 * NW, Math.min(n, t1 * NW));
            }
        });
    }

    /** Steps of s per gather group in {@link #regroupRows}: MR·8 = 48 outputs, three vectors of 16. */
    private static final int S_GROUP = 8;

    /**
     * X_l micro-panels of one row tile: xl[((l·rowTiles + tile)·depth + s)·MR + r] = x[tile·MR + r, sV + l]. A
     * full tile is written lane plane by lane plane, V outputs at a time, each vector gathered from the tile's
     * rows through offsets r·k + s·V (when S_GROUP·MR is a whole number of vectors); the rest element by element.
     */
    private static void regroupRows(
            float[] x, int rows, int k, int depth, int rowTiles, int tile, float[] xl, int[] gather) {
        int lStride = rowTiles * depth * MR;
        int base = tile * depth * MR;
        int t0 = tile * MR;
        int s = 0;
        if (gather != null && t0 + MR <= rows) {
            for (; s + S_GROUP <= depth; s += S_GROUP) {
                for (int l = 0; l < V; l++) {
                    int src = t0 * k + s * V + l;
                    int dst = base + l * lStride + s * MR;
                    for (int o = 0; o < S_GROUP * MR; o += V) {
                        FloatVector.fromArray(TiledGemm.F, x, src, gather, o).intoArray(xl, dst + o);
                    }
                }
            }
        }
        for (int r = 0; r < MR; r++) {
            int t = t0 + r;
            if (t >= rows) {
                break; // the array is fresh: padding rows are already 0f
            }
            for (int q = s; q < depth; q++) {
                int dst = base + q * MR + r;
                int xs = t * k + q * V;
                for (int l = 0; l < V; l++) {
                    xl[dst + l * lStride] = x[xs + l];
                }
            }
        }
    }

    /** Gather offsets for {@link #regroupRows}: output o of a group is row o mod MR, step o / MR; null if V ∤ 48. */
    private static int[] rowGather(int k) {
        if ((S_GROUP * MR) % V != 0) {
            return null;
        }
        int[] map = new int[S_GROUP * MR];
        for (int o = 0; o < map.length; o++) {
            map[o] = (o % MR) * k + (o / MR) * V;
        }
        return map;
    }

    /** y[:, n0:n1) for every row: one block of W (at most NT_M column tiles). */
    private static void columns(
            float[] x,
            int rows,
            Matrix w,
            float[] bias,
            float[] y,
            float[] xl,
            int rowTiles,
            int depth,
            int n0,
            int n1) {
        int n = w.rows();
        int k = w.cols();
        int kv = depth * V;
        int nc = n1 - n0;
        int nt = (nc + NW - 1) / NW;
        int ncp = nt * NW;
        TiledGemm.Buffers buf = TiledGemm.buffers();
        float[] wp = buf.b(V * nt * depth * NW);
        float[] scratch = buf.extra(2 * MC_M * ncp);
        int accOff = MC_M * ncp;
        regroupWeights(w, n0, nc, nt, depth, wp);
        int paddedRows = rowTiles * MR;
        for (int ic = 0; ic < paddedRows; ic += MC_M) {
            int mt = Math.min(MC_M, paddedRows - ic) / MR;
            java.util.Arrays.fill(scratch, accOff, accOff + mt * MR * ncp, 0f);
            for (int l = 0; l < V; l++) {
                for (int pc = 0; pc < depth; pc += KC_M) {
                    int kc = Math.min(KC_M, depth - pc);
                    boolean first = pc == 0;
                    boolean last = pc + kc == depth;
                    for (int ti = 0; ti < mt; ti++) {
                        int ao = ((l * rowTiles + ic / MR + ti) * depth + pc) * MR;
                        for (int tn = 0; tn < nt; tn++) {
                            int bo = ((l * nt + tn) * depth + pc) * NW;
                            int off = ti * MR * ncp + tn * NW;
                            TiledGemm.kernel(
                                    kc,
                                    xl,
                                    ao,
                                    wp,
                                    bo,
                                    first ? null : scratch,
                                    off,
                                    ncp,
                                    scratch,
                                    last ? accOff + off : off,
                                    ncp,
                                    last);
                        }
                    }
                }
            }
            int tEnd = Math.min(rows, ic + mt * MR);
            for (int t = ic; t < tEnd; t++) {
                int row = accOff + (t - ic) * ncp;
                for (int q = 0; q < nc; q++) {
                    int j = n0 + q;
                    float s = scratch[row + q];
                    for (int c = kv; c < k; c++) {
                        s += x[t * k + c] * w.get(j, c);
                    }
                    y[t * n + j] = s + (bias == null ? 0f : bias[j]);
                }
            }
        }
    }

    /**
     * W_l panels of columns [n0, n0 + nc), fp32: wp[((l·nt + tn)·depth + s)·NW + q] = W[n0 + tn·NW + q, sV + l],
     * 0f past nc. Each NW × V block is read row by row (V contiguous weights, widened in registers) and written
     * lane by lane (NW contiguous floats, gathered V at a time).
     */
    private static void regroupWeights(Matrix w, int n0, int nc, int nt, int depth, float[] wp) {
        int k = w.cols();
        float[] block = new float[NW * V];
        int lStride = nt * depth * NW;
        for (int tn = 0; tn < nt; tn++) {
            int live = Math.min(NW, nc - tn * NW);
            if (live < NW) {
                java.util.Arrays.fill(block, 0f);
            }
            for (int s = 0; s < depth; s++) {
                for (int q = 0; q < live; q++) {
                    int j = n0 + tn * NW + q;
                    load(w, j * k + s * V, block, q * V);
                }
                int dst = (tn * depth + s) * NW;
                for (int l = 0; l < V; l++) {
                    int d = dst + l * lStride;
                    for (int g = 0; g < NW; g += V) {
                        // Lane l of V consecutive rows: one gather across the block (stride V).
                        FloatVector.fromArray(TiledGemm.F, block, g * V + l, STRIDE_V, 0)
                                .intoArray(wp, d + g);
                    }
                }
            }
        }
    }

    /** V weights from element index e of w (row-major), as fp32, into dst[off..]. */
    private static void load(Matrix w, int e, float[] dst, int off) {
        switch (w) {
            case Matrix.F32 f -> FloatVector.fromArray(TiledGemm.F, f.data(), e).intoArray(dst, off);
            case Matrix.Bf16 b -> widen(b.data(), 2L * e).intoArray(dst, off);
            case Matrix.W4 q -> throw new IllegalArgumentException("W4 runs on VectorW4");
        }
    }

    private static FloatVector widen(MemorySegment seg, long byteOffset) {
        ShortVector s = ShortVector.fromMemorySegment(S16, seg, byteOffset, ByteOrder.LITTLE_ENDIAN);
        IntVector i = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }
}
