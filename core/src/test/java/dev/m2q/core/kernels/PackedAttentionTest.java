package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link PackedRows} and the Java backend's packed operations: the layout's invariants and key order, and packed
 * attention against {@link Kernels#attention} bit for bit wherever a packed row sees the keys a row of the batched
 * or cached attention sees, in the same order (the same dot products, exps and axpys on the same values: nothing for
 * a tolerance to absorb).
 */
class PackedAttentionTest {
    static final int HEADS = 4;
    static final int KV_HEADS = 2;

    static float[] uniform(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextDouble() * 4 - 2);
        }
        return a;
    }

    /** The key rows of row r, listed by {@link PackedRows#key}. */
    static List<Integer> keys(PackedRows p, int r) {
        List<Integer> k = new ArrayList<>();
        for (int j = 0; j < p.visible(r); j++) {
            k.add(p.key(r, j));
        }
        return k;
    }

    @Test
    void builderLaysOutAContextAndItsContinuations() {
        PackedRows.Builder b = PackedRows.builder();
        int ctx = b.sequence(3, 0); // rows 0..2 at positions 0..2
        int c1 = b.continuation(ctx, ctx + 3, 2, 3); // rows 3..4 at 3..4
        int c2 = b.continuation(ctx, ctx + 3, 1, 3); // row 5 at 3
        int other = b.sequence(2, 0); // rows 6..7
        PackedRows p = b.build();
        assertEquals(List.of(0, 3, 5, 6), List.of(ctx, c1, c2, other));
        assertEquals(8, p.rows());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 3, 0, 1}, p.positions());
        assertEquals(List.of(0), keys(p, 0));
        assertEquals(List.of(0, 1, 2), keys(p, 2));
        assertEquals(List.of(0, 1, 2, 3), keys(p, 3));
        assertEquals(List.of(0, 1, 2, 3, 4), keys(p, 4));
        assertEquals(List.of(0, 1, 2, 5), keys(p, 5), "the second continuation does not see the first");
        assertEquals(List.of(6, 7), keys(p, 7), "another item sees none of the first");
        assertEquals(5, p.maxVisible());
        assertArrayEquals(new int[] {0, 3, 3, 0, 3, 5}, java.util.Arrays.copyOfRange(p.spans(), 12, 18));
    }

    @Test
    void aLayoutThatBreaksTheInvariantsIsRefusedNamingTheRow() {
        int[] z = {0, 0};
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> new PackedRows(new int[] {0, 1}, z, new int[] {0, 2}, new int[] {0, 1}));
        assertTrue(e.getMessage().startsWith("packed row 1:"), e.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> new PackedRows(new int[] {0, 1}, z, z, new int[] {0, 2}),
                "a segment cannot start after its row");
        assertThrows(
                IllegalArgumentException.class,
                () -> new PackedRows(new int[] {-1}, new int[1], new int[1], new int[1]));
        assertThrows(
                IllegalArgumentException.class, () -> new PackedRows(new int[2], new int[1], new int[2], new int[2]));
        assertThrows(
                IllegalArgumentException.class,
                () -> PackedRows.builder().continuation(0, 1, 2, 0),
                "a prefix of rows not yet added");
    }

    /** nSeq sequences packed one after another: the calibration batch's attention, bit for bit. */
    @Test
    void sequencesPackedEqualTheBatchedAttention() {
        for (Kernels kern : List.of(ScalarKernels.INSTANCE, VectorKernels.INSTANCE)) {
            for (int d : new int[] {16, 20}) {
                SplittableRandom r = new SplittableRandom(17 + d);
                int nSeq = 3;
                int seqLen = 5;
                int rows = nSeq * seqLen;
                float[] q = uniform(r, rows * HEADS * d);
                float[] k = uniform(r, rows * KV_HEADS * d);
                float[] v = uniform(r, rows * KV_HEADS * d);
                float[] want = new float[q.length];
                kern.attention(q, k, v, nSeq, seqLen, 0, HEADS, KV_HEADS, d, want);
                PackedRows.Builder b = PackedRows.builder();
                for (int s = 0; s < nSeq; s++) {
                    b.sequence(seqLen, 0);
                }
                float[] got = packed(kern, q, k, v, b.build(), d);
                assertArrayEquals(want, got, kern.name() + " d " + d);
            }
        }
    }

    /**
     * A context and two continuations packed: each continuation row equals the cached attention of that
     * continuation after the context (keys: the context's, then its own), and the context rows equal a fresh
     * sequence's.
     */
    @Test
    void continuationsPackedEqualTheCachedAttention() {
        for (Kernels kern : List.of(ScalarKernels.INSTANCE, VectorKernels.INSTANCE)) {
            for (int d : new int[] {16, 20}) {
                SplittableRandom r = new SplittableRandom(29 + d);
                int ctx = 7;
                int[] lens = {4, 3};
                int rows = ctx + lens[0] + lens[1];
                int qDim = HEADS * d;
                int kvDim = KV_HEADS * d;
                float[] q = uniform(r, rows * qDim);
                float[] k = uniform(r, rows * kvDim);
                float[] v = uniform(r, rows * kvDim);
                PackedRows.Builder b = PackedRows.builder();
                b.sequence(ctx, 0);
                int[] starts = {b.continuation(0, ctx, lens[0], ctx), b.continuation(0, ctx, lens[1], ctx)};
                float[] got = packed(kern, q, k, v, b.build(), d);

                float[] fresh = new float[ctx * qDim];
                kern.attention(slice(q, 0, ctx * qDim), k, v, 1, ctx, 0, HEADS, KV_HEADS, d, fresh);
                assertArrayEquals(fresh, slice(got, 0, ctx * qDim), kern.name() + " context rows");
                for (int c = 0; c < 2; c++) {
                    int n = lens[c];
                    // the cache: the context's keys, then the continuation's
                    float[] kc = new float[(ctx + n) * kvDim];
                    float[] vc = new float[kc.length];
                    System.arraycopy(k, 0, kc, 0, ctx * kvDim);
                    System.arraycopy(v, 0, vc, 0, ctx * kvDim);
                    System.arraycopy(k, starts[c] * kvDim, kc, ctx * kvDim, n * kvDim);
                    System.arraycopy(v, starts[c] * kvDim, vc, ctx * kvDim, n * kvDim);
                    float[] want = new float[n * qDim];
                    kern.attention(slice(q, starts[c] * qDim, n * qDim), kc, vc, 1, n, ctx, HEADS, KV_HEADS, d, want);
                    assertArrayEquals(
                            want,
                            slice(got, starts[c] * qDim, n * qDim),
                            kern.name() + " d " + d + " continuation " + c);
                }
            }
        }
    }

    /** ropePacked rotates each row at its own position: the kernels' rope with the layout's positions. */
    @Test
    void ropePackedRotatesEachRowAtItsPosition() {
        SplittableRandom r = new SplittableRandom(5);
        int d = 16;
        PackedRows.Builder b = PackedRows.builder();
        b.sequence(3, 0);
        b.continuation(0, 3, 2, 3);
        b.sequence(4, 0);
        PackedRows p = b.build();
        float[] x = uniform(r, p.rows() * HEADS * d);
        float[] inv = uniform(r, d / 2);
        float[] want = x.clone();
        VectorKernels.INSTANCE.rope(want, p.rows(), HEADS, d, inv, new int[] {0, 1, 2, 3, 4, 0, 1, 2, 3});
        Backend be = VectorKernels.INSTANCE.backend();
        float[] got = x.clone();
        be.ropePacked(be.wrap(got), HEADS, d, be.wrap(inv), p);
        assertArrayEquals(want, got);
    }

    static float[] packed(Kernels kern, float[] q, float[] k, float[] v, PackedRows p, int d) {
        Backend be = kern.backend();
        float[] out = new float[q.length];
        java.util.Arrays.fill(out, Float.NaN); // every element is written
        be.attentionPacked(be.wrap(q), be.wrap(k), be.wrap(v), p, HEADS, KV_HEADS, d, be.wrap(out));
        return out;
    }

    static float[] slice(float[] a, int from, int n) {
        return java.util.Arrays.copyOfRange(a, from, from + n);
    }
}
