package dev.m2q.core.kernels;

import dev.m2q.core.model.Rope;
import java.util.Arrays;

/**
 * The Java implementations of the {@link Kernels} operations that are written once for both Java kernels: each
 * reads like its definition in the {@link Kernels} javadoc and leaves the vector-sized inner steps ({@link
 * Kernels#dot}, {@link Kernels#axpy}) to the kernels it is given, so {@link ScalarKernels} and {@link
 * VectorKernels} differ only where those do. The CUDA kernels name these methods as their twins.
 */
final class JavaOps {
    private JavaOps() {}

    /** {@link Kernels#rmsNorm}. */
    static void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        Parallel.forRange(rows, 2L * dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                int o = r * dim;
                double ss = 0;
                for (int i = 0; i < dim; i++) {
                    ss += (double) x[o + i] * x[o + i];
                }
                float inv = (float) (1.0 / Math.sqrt((float) (ss / dim) + eps));
                for (int i = 0; i < dim; i++) {
                    out[o + i] = weight[i] * (x[o + i] * inv);
                }
            }
        });
    }

    /** {@link Kernels#rope}. */
    static void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        int half = headDim / 2;
        if (invFreq.length != half) {
            throw new IllegalArgumentException(
                    "rope of head size " + headDim + " needs " + half + " inverse frequencies, got " + invFreq.length);
        }
        Parallel.forRange(rows, (long) heads * headDim, (from, to) -> {
            RecentAngles angles = RecentAngles.of(invFreq);
            float[] cs = angles.cosSin;
            for (int r = from; r < to; r++) {
                int a0 = angles.slot(positions[r]);
                int s0 = a0 + half;
                int base = r * heads * headDim;
                for (int h = 0; h < heads; h++) {
                    int o = base + h * headDim;
                    for (int i = 0; i < half; i++) {
                        float a = x[o + i];
                        float b = x[o + i + half];
                        x[o + i] = a * cs[a0 + i] - b * cs[s0 + i];
                        x[o + i + half] = b * cs[a0 + i] + a * cs[s0 + i];
                    }
                }
            }
        });
    }

    /**
     * Each thread's {@link Rope#angles} of its most recent positions, per table of inverse frequencies (a few tables:
     * a speculative decoder's target and draft head may rotate with different ones, turn by turn). A decode step
     * rotates the queries and the keys of every layer at the same positions: 2 × layers calls, each of which took
     * half·2 trigonometric calls per row (about 1 µs at half = 32, a fifth of a 256-wide product). The values are
     * those {@link Rope#angles} computes, so the rotation's bits do not change.
     */
    private static final class RecentAngles {
        /** Positions kept: a prefill of more rows recomputes, a decode step or a verify of k + 1 rows hits. */
        private static final int SLOTS = 64;
        /** Tables kept per thread; the least recently used one is replaced. */
        private static final int TABLES = 4;

        private static final ThreadLocal<RecentAngles[]> MINE = ThreadLocal.withInitial(() -> new RecentAngles[TABLES]);

        private final float[] invFreq;
        private final int[] position = new int[SLOTS];
        /** Slot j's cos at [2·half·j, 2·half·j + half), its sin after them. */
        private final float[] cosSin;

        private long used;

        private RecentAngles(float[] invFreq) {
            this.invFreq = invFreq.clone();
            this.cosSin = new float[SLOTS * 2 * invFreq.length];
            Arrays.fill(position, Integer.MIN_VALUE);
        }

        /** This thread's angles for {@code invFreq} (compared by value). */
        static RecentAngles of(float[] invFreq) {
            RecentAngles[] mine = MINE.get();
            long clock = 0;
            for (RecentAngles a : mine) {
                if (a != null) {
                    clock = Math.max(clock, a.used);
                }
            }
            for (RecentAngles a : mine) {
                if (a != null && Arrays.equals(a.invFreq, invFreq)) {
                    a.used = clock + 1;
                    return a;
                }
            }
            int victim = 0;
            for (int i = 0; i < TABLES; i++) {
                if (mine[i] == null) {
                    victim = i;
                    break;
                }
                if (mine[i].used < mine[victim].used) {
                    victim = i;
                }
            }
            RecentAngles a = new RecentAngles(invFreq);
            a.used = clock + 1;
            mine[victim] = a;
            return a;
        }

        /** The offset in {@link #cosSin} of the angles of {@code pos}, computed when not held. */
        int slot(int pos) {
            int half = invFreq.length;
            int j = pos & (SLOTS - 1);
            int off = j * 2 * half;
            if (position[j] != pos) {
                Rope.angles(invFreq, pos, cosSin, off, off + half);
                position[j] = pos;
            }
            return off;
        }
    }

    /**
     * {@link Kernels#attention}, one (row, head) per work item, its dot products and updates on {@code k}; a task
     * takes consecutive heads of one KV group in one {@link #softmaxAttend} pass.
     */
    static void attention(
            Kernels kern,
            float[] q,
            float[] k,
            float[] v,
            int nSeq,
            int seqLen,
            int startPos,
            int heads,
            int kvHeads,
            int d,
            float[] out) {
        int group = heads / kvHeads;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int total = startPos + seqLen;
        float scale = (float) (1.0 / Math.sqrt(d));
        Arrays.fill(out, 0, nSeq * seqLen * qDim, 0f);
        Parallel.forRange(nSeq * seqLen * heads, (long) total * d, (from, to) -> {
            Pass p = Pass.of(kern, total);
            int[] keys = p.keys;
            for (int item = from; item < to; ) {
                int row = item / heads; // query row over all sequences
                int h = item % heads;
                int s = row / seqLen;
                int t = row % seqLen;
                int kv0 = s * total; // the sequence's first key row
                int kvh = h / group;
                int nh = heads(item, to, h, heads, group, p.tile);
                int qOff = row * qDim + h * d;
                int visible = startPos + t + 1;
                for (int j = 0; j < visible; j++) {
                    keys[j] = (kv0 + j) * kvDim + kvh * d;
                }
                softmaxAttend(kern, p, q, qOff, nh, k, v, visible, d, scale, out);
                item += nh;
            }
        });
    }

    /**
     * The query heads from item's head h that one pass takes: consecutive heads of h's KV group in the same row and
     * in this task's range [item, to), at most {@code tile}.
     */
    private static int heads(int item, int to, int h, int heads, int group, int tile) {
        int last = Math.min(Math.min(heads, (h / group + 1) * group), h + Math.min(tile, to - item));
        return last - h;
    }

    /**
     * One task's buffers for {@link #softmaxAttend}: the key offsets [most], the scores of up to {@code tile} heads
     * [tile, most] and their 1/sum [tile], and on the vector kernels {@link VectorAttention#chains()} (null for other
     * kernels, which take one head per pass on their own dot and axpy: sharing rows in L1 needs the blocked loops).
     */
    private record Pass(int tile, int most, int[] keys, float[] scores, float[] inv, float[] chains) {
        static Pass of(Kernels kern, int most) {
            boolean vector = kern instanceof VectorKernels;
            int tile = vector ? VectorAttention.HEAD_TILE : 1;
            return new Pass(
                    tile,
                    most,
                    new int[most],
                    new float[tile * most],
                    new float[tile],
                    vector ? VectorAttention.chains() : null);
        }
    }

    /**
     * Attention of {@code nh} consecutive query heads of one KV group (q and out at qOff + i·d for head i) over the
     * key rows at offsets p.keys[0, visible) of k and v: scores s_j = dot(q, k_j)·scale, e_j = fp32(exp(s_j − max
     * s)), sum = Σ e_j in double, out += (e_j · fp32(1/sum)) · v_j key by key with the kernels' axpy; each head's bits
     * are those of computing it alone. On the vector kernels {@link VectorAttention} runs their dot and axpy with the
     * same bits, the heads sharing each block of rows in L1.
     */
    private static void softmaxAttend(
            Kernels kern,
            Pass p,
            float[] q,
            int qOff,
            int nh,
            float[] k,
            float[] v,
            int visible,
            int d,
            float scale,
            float[] out) {
        int[] keys = p.keys;
        float[] scores = p.scores;
        int stride = p.most;
        float[] inv = p.inv;
        float[] chains = p.chains;
        if (chains != null) {
            VectorAttention.scores(q, qOff, nh, k, keys, visible, d, scale, scores, stride, chains);
        } else {
            for (int h = 0; h < nh; h++) {
                for (int j = 0; j < visible; j++) {
                    scores[h * stride + j] = kern.dot(q, qOff + h * d, k, keys[j], d) * scale;
                }
            }
        }
        for (int h = 0; h < nh; h++) {
            int o = h * stride;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < visible; j++) {
                max = Math.max(max, scores[o + j]);
            }
            double sum = 0;
            for (int j = 0; j < visible; j++) {
                float e = (float) Math.exp(scores[o + j] - max);
                scores[o + j] = e;
                sum += e;
            }
            inv[h] = (float) (1.0 / sum);
        }
        if (chains != null) {
            VectorAttention.weightedSum(scores, stride, inv, nh, v, keys, visible, d, out, qOff);
        } else {
            for (int h = 0; h < nh; h++) {
                for (int j = 0; j < visible; j++) {
                    kern.axpy(scores[h * stride + j] * inv[h], v, keys[j], out, qOff + h * d, d);
                }
            }
        }
    }

    /**
     * {@link Backend#attentionPacked}: {@link #attention}'s arithmetic, statement for statement, over the key rows
     * {@code layout.key(row, 0..)} instead of 0 .. startPos + t of a sequence, so a row that sees the same keys in the
     * same order gets the same bits. One (row, head) per work item.
     */
    static void attentionPacked(
            Kernels kern,
            float[] q,
            float[] k,
            float[] v,
            PackedRows layout,
            int heads,
            int kvHeads,
            int d,
            float[] out) {
        int rows = layout.rows();
        int group = heads / kvHeads;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int most = layout.maxVisible();
        float scale = (float) (1.0 / Math.sqrt(d));
        Arrays.fill(out, 0, rows * qDim, 0f);
        Parallel.forRange(rows * heads, (long) most * d, (from, to) -> {
            Pass p = Pass.of(kern, most);
            int[] keys = p.keys;
            for (int item = from; item < to; ) {
                int row = item / heads;
                int h = item % heads;
                int kvh = h / group;
                int nh = heads(item, to, h, heads, group, p.tile);
                int qOff = row * qDim + h * d;
                int visible = layout.visible(row);
                for (int j = 0; j < visible; j++) {
                    keys[j] = layout.key(row, j) * kvDim + kvh * d;
                }
                softmaxAttend(kern, p, q, qOff, nh, k, v, visible, d, scale, out);
                item += nh;
            }
        });
    }

    /** {@link Kernels#swiglu}. */
    static void swiglu(float[] gate, float[] up, int n) {
        Parallel.forRange(n, 16, (from, to) -> {
            for (int i = from; i < to; i++) {
                float g = gate[i];
                gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
            }
        });
    }

    /**
     * {@link Kernels#absMaxColumns}: Math.max propagates NaN, and max is exact, so any order gives the same bits. Rows
     * outer: each thread reads its columns' run of every row in turn (a column at a time strode through x, a cache
     * line per element).
     */
    static void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        Parallel.forRange(cols, rows, (from, to) -> {
            for (int r = 0; r < rows; r++) {
                int row = xOff + r * cols;
                for (int c = from; c < to; c++) {
                    out[outOff + c] = Math.max(out[outOff + c], Math.abs(x[row + c]));
                }
            }
        });
    }
}
