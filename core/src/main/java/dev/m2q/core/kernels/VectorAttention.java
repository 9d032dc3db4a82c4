package dev.m2q.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The two loops over key rows of {@link JavaOps}'s attention for {@link VectorKernels}, each with the bits of the
 * loop it replaces: the scores are {@link VectorKernels#dot}'s (one FMA chain of V lanes over the head, then the
 * in-order lane sum, then the scalar tail), the weighted sum is {@link VectorKernels#axpy}'s applied key by key.
 *
 * <p>What they save. A dot product of one 64-wide head ended in a lane sum read back from a stack slot that the next
 * key's dot product wrote again, so the keys ran one after another (about 12 ns each); here the chains of a block of
 * keys are stored side by side and summed four at a time by {@link LaneSums}. The output row was loaded, updated and
 * stored once per key (a chain through memory, about 7 ns per key); here it stays in registers, up to {@link
 * #OUT_VECTORS} vectors at a time, over all the keys.
 */
final class VectorAttention {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int V = F.length();
    /** Keys whose chains are stored before their lane sums run. */
    static final int KEY_BLOCK = 16;
    /** Output vectors held in registers over the keys (a 64-wide head in four). */
    private static final int OUT_VECTORS = 4;
    /** Value rows per block of the weighted sum (16 KB of a 128-wide head). */
    static final int SUM_BLOCK = 32;
    /**
     * Query heads of one KV group that share each block of key and value rows (Qwen2.5's groups are 5 to 8 heads):
     * without it each head of a Qwen2.5-32B group read its KV head's K and V again (1 MB each at 2,048 keys, beyond
     * L2), about 35 % of the attention's time at that shape.
     */
    static final int HEAD_TILE = 8;

    private VectorAttention() {}

    /** Scratch for {@link #scores}: one block's chains, then their sums. */
    static float[] chains() {
        return new float[KEY_BLOCK * V + KEY_BLOCK];
    }

    /**
     * scores[h · stride + j] = dot(q[qOff + h·d, + d), k[keys[j], + d)) · scale for heads h &lt; heads and keys j &lt;
     * visible, each dot product as {@link VectorKernels#dot} computes it. The heads (consecutive query heads of one KV
     * group, at most {@link #HEAD_TILE}) take each block of key rows in turn while it is in L1. {@code ch}: {@link
     * #chains()}.
     */
    static void scores(
            float[] q,
            int qOff,
            int heads,
            float[] k,
            int[] keys,
            int visible,
            int d,
            float scale,
            float[] scores,
            int stride,
            float[] ch) {
        for (int j0 = 0; j0 < visible; j0 += KEY_BLOCK) {
            int n = Math.min(KEY_BLOCK, visible - j0);
            for (int h = 0; h < heads; h++) {
                block(q, qOff + h * d, k, keys, j0, n, d, scale, scores, h * stride, ch);
            }
        }
    }

    /** Each thread's {@link #chains()} for {@link #dots}. */
    private static final ThreadLocal<float[]> DOTS_CHAINS = ThreadLocal.withInitial(VectorAttention::chains);

    /**
     * {@link Kernels#dots}: out[outOff + j] = dot(a[aOff, + n), b[bOffs[j], + n)) for j &lt; count, in blocks of
     * {@link #KEY_BLOCK} rows with {@link #block}'s bits, which are {@link VectorKernels#dot}'s (the scale 1 is exact).
     */
    static void dots(float[] a, int aOff, float[] b, int[] bOffs, int count, int n, float[] out, int outOff) {
        float[] ch = DOTS_CHAINS.get();
        for (int j0 = 0; j0 < count; j0 += KEY_BLOCK) {
            block(a, aOff, b, bOffs, j0, Math.min(KEY_BLOCK, count - j0), n, 1f, out, outOff, ch);
        }
    }

    /**
     * {@link Kernels#axpys}: y[yOff, + n) += alphas[aOff + j] · x[xOffs[j], + n) for j &lt; count in turn, y held in
     * registers over blocks of {@link #SUM_BLOCK} rows: {@link #sumBlock} with the factor 1, which is exact, so each
     * step has {@link VectorKernels#axpy}'s bits.
     */
    static void axpys(float[] alphas, int aOff, float[] x, int[] xOffs, int count, float[] y, int yOff, int n) {
        for (int j0 = 0; j0 < count; j0 += SUM_BLOCK) {
            sumBlock(alphas, aOff, 1f, x, xOffs, j0, Math.min(count, j0 + SUM_BLOCK), n, y, yOff);
        }
    }

    /**
     * {@link Kernels#axpyRows}: y[yOffs[j], + n) += alphas[aOff + j] · x[xOff, + n) for j &lt; count in turn, x held in
     * registers four vectors at a time; each element gets {@link VectorKernels#axpy}'s operation (one FMA, or below
     * the vector bound one product and one add), in j order.
     */
    static void axpyRows(float[] alphas, int aOff, float[] x, int xOff, float[] y, int[] yOffs, int count, int n) {
        int upper = F.loopBound(n);
        int i = 0;
        for (; i + 4 * V <= upper; i += 4 * V) {
            FloatVector x0 = FloatVector.fromArray(F, x, xOff + i);
            FloatVector x1 = FloatVector.fromArray(F, x, xOff + i + V);
            FloatVector x2 = FloatVector.fromArray(F, x, xOff + i + 2 * V);
            FloatVector x3 = FloatVector.fromArray(F, x, xOff + i + 3 * V);
            for (int j = 0; j < count; j++) {
                FloatVector a = FloatVector.broadcast(F, alphas[aOff + j]);
                int o = yOffs[j] + i;
                x0.fma(a, FloatVector.fromArray(F, y, o)).intoArray(y, o);
                x1.fma(a, FloatVector.fromArray(F, y, o + V)).intoArray(y, o + V);
                x2.fma(a, FloatVector.fromArray(F, y, o + 2 * V)).intoArray(y, o + 2 * V);
                x3.fma(a, FloatVector.fromArray(F, y, o + 3 * V)).intoArray(y, o + 3 * V);
            }
        }
        for (; i < upper; i += V) {
            FloatVector xv = FloatVector.fromArray(F, x, xOff + i);
            for (int j = 0; j < count; j++) {
                int o = yOffs[j] + i;
                xv.fma(FloatVector.broadcast(F, alphas[aOff + j]), FloatVector.fromArray(F, y, o))
                        .intoArray(y, o);
            }
        }
        for (; i < n; i++) {
            float xi = x[xOff + i];
            for (int j = 0; j < count; j++) {
                y[yOffs[j] + i] += alphas[aOff + j] * xi;
            }
        }
    }

    /** The scores of keys j0 .. j0 + n − 1 (n ≤ {@link #KEY_BLOCK}) for the query at qOff, into scores[sOff + j]. */
    private static void block(
            float[] q,
            int qOff,
            float[] k,
            int[] keys,
            int j0,
            int n,
            int d,
            float scale,
            float[] scores,
            int sOff,
            float[] ch) {
        int upper = F.loopBound(d);
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            int k0 = keys[j0 + j];
            int k1 = keys[j0 + j + 1];
            int k2 = keys[j0 + j + 2];
            int k3 = keys[j0 + j + 3];
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = FloatVector.zero(F);
            FloatVector a2 = FloatVector.zero(F);
            FloatVector a3 = FloatVector.zero(F);
            for (int i = 0; i < upper; i += V) {
                FloatVector qv = FloatVector.fromArray(F, q, qOff + i);
                a0 = qv.fma(FloatVector.fromArray(F, k, k0 + i), a0);
                a1 = qv.fma(FloatVector.fromArray(F, k, k1 + i), a1);
                a2 = qv.fma(FloatVector.fromArray(F, k, k2 + i), a2);
                a3 = qv.fma(FloatVector.fromArray(F, k, k3 + i), a3);
            }
            a0.intoArray(ch, j * V);
            a1.intoArray(ch, (j + 1) * V);
            a2.intoArray(ch, (j + 2) * V);
            a3.intoArray(ch, (j + 3) * V);
        }
        for (; j < n; j++) {
            int kj = keys[j0 + j];
            FloatVector a = FloatVector.zero(F);
            for (int i = 0; i < upper; i += V) {
                a = FloatVector.fromArray(F, q, qOff + i).fma(FloatVector.fromArray(F, k, kj + i), a);
            }
            a.intoArray(ch, j * V);
        }
        LaneSums.of(ch, V, V, n, 1, ch, KEY_BLOCK * V, 0);
        for (j = 0; j < n; j++) {
            float s = ch[KEY_BLOCK * V + j];
            int kj = keys[j0 + j];
            for (int i = upper; i < d; i++) {
                s += q[qOff + i] * k[kj + i];
            }
            scores[sOff + j0 + j] = s * scale;
        }
    }

    /**
     * out[outOff + h·d + i] += (p[h · stride + j] · inv[h]) · v[keys[j] + i] for heads h &lt; heads and i &lt; d, key
     * by key in increasing j, each step as {@link VectorKernels#axpy} takes it (a fused multiply-add per full vector,
     * a multiply then an add in the tail). Blocks of {@link #SUM_BLOCK} value rows are taken by every head in turn
     * while they are in L1; each head's output stays in registers over a block (stored and reloaded between blocks,
     * which is exact).
     */
    static void weightedSum(
            float[] p,
            int stride,
            float[] inv,
            int heads,
            float[] v,
            int[] keys,
            int visible,
            int d,
            float[] out,
            int outOff) {
        for (int j0 = 0; j0 < visible; j0 += SUM_BLOCK) {
            int j1 = Math.min(visible, j0 + SUM_BLOCK);
            for (int h = 0; h < heads; h++) {
                sumBlock(p, h * stride, inv[h], v, keys, j0, j1, d, out, outOff + h * d);
            }
        }
    }

    /** One head's update over keys j0 .. j1 − 1. */
    private static void sumBlock(
            float[] p, int pOff, float inv, float[] v, int[] keys, int j0, int j1, int d, float[] out, int outOff) {
        int upper = F.loopBound(d);
        int c0 = 0;
        for (; c0 + OUT_VECTORS * V <= upper; c0 += OUT_VECTORS * V) {
            int o = outOff + c0;
            FloatVector o0 = FloatVector.fromArray(F, out, o);
            FloatVector o1 = FloatVector.fromArray(F, out, o + V);
            FloatVector o2 = FloatVector.fromArray(F, out, o + 2 * V);
            FloatVector o3 = FloatVector.fromArray(F, out, o + 3 * V);
            for (int j = j0; j < j1; j++) {
                FloatVector a = FloatVector.broadcast(F, p[pOff + j] * inv);
                int x = keys[j] + c0;
                o0 = FloatVector.fromArray(F, v, x).fma(a, o0);
                o1 = FloatVector.fromArray(F, v, x + V).fma(a, o1);
                o2 = FloatVector.fromArray(F, v, x + 2 * V).fma(a, o2);
                o3 = FloatVector.fromArray(F, v, x + 3 * V).fma(a, o3);
            }
            o0.intoArray(out, o);
            o1.intoArray(out, o + V);
            o2.intoArray(out, o + 2 * V);
            o3.intoArray(out, o + 3 * V);
        }
        for (; c0 < upper; c0 += V) {
            int o = outOff + c0;
            FloatVector acc = FloatVector.fromArray(F, out, o);
            for (int j = j0; j < j1; j++) {
                acc = FloatVector.fromArray(F, v, keys[j] + c0).fma(FloatVector.broadcast(F, p[pOff + j] * inv), acc);
            }
            acc.intoArray(out, o);
        }
        for (int i = upper; i < d; i++) {
            float acc = out[outOff + i];
            for (int j = j0; j < j1; j++) {
                acc += p[pOff + j] * inv * v[keys[j] + i];
            }
            out[outOff + i] = acc;
        }
    }
}
