package dev.m2q.kernels;

import static dev.m2q.kernels.GpuTesting.assertBits;
import static dev.m2q.kernels.GpuTesting.assertWithin;
import static dev.m2q.kernels.GpuTesting.poisoned;
import static dev.m2q.kernels.GpuTesting.uniform;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.PackedRows;
import dev.m2q.core.kernels.VectorKernels;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * {@link CudaBackend#attentionPacked} (m2q_attention_packed) and {@link CudaBackend#ropePacked} (m2q_rope) against
 * the Java backend on seeded inputs and packed layouts (sequences, a context with continuations of it, several
 * items), out poisoned with NaN; and the packed attention against the device's own cached attention (m2q_attention
 * over the context's keys then the continuation's) bit for bit, since the two kernels run the same arithmetic in the
 * same order and differ only in where a visible key's row is read.
 */
@Tag("gpu")
class CudaPackedGpuTest {
    private static final JavaBackend JAVA = new JavaBackend(VectorKernels.INSTANCE);

    /** Items of a context and continuation lengths, packed in order. */
    static PackedRows layout(int[][] items) {
        PackedRows.Builder b = PackedRows.builder();
        for (int[] it : items) {
            int s = b.sequence(it[0], 0);
            for (int c = 1; c < it.length; c++) {
                b.continuation(s, s + it[0], it[c], it[0]);
            }
        }
        return b.build();
    }

    static final int[][][] LAYOUTS = {
        {{17}, {17}, {17}}, // three plain sequences
        {{7, 4, 3, 1, 0}}, // a context and four continuations (one of no rows)
        {{40, 2, 9}, {3, 5}, {1, 1}, {120, 30, 30, 30, 30}} // several items, one long
    };

    /**
     * Within m2q_attention's bound of the Java backend (CudaBackendGpuTest's attention: each side within 1e-5·max|v|
     * of the exact attention, so the two within 2e-5 with max|v| = 1), head sizes with and without the register path
     * (320 takes the host fallback, which is the Java backend's own bits).
     */
    @Test
    void attentionPackedWithinFp32RoundingOfTheJavaBackend() {
        Backend cuda = GpuTesting.cuda(true).backend();
        SplittableRandom r = new SplittableRandom(61);
        // heads, kvHeads, headDim
        int[][] shapes = {{4, 2, 64}, {8, 1, 128}, {6, 3, 20}, {2, 2, 256}, {2, 1, 320}};
        for (int[][] items : LAYOUTS) {
            PackedRows p = layout(items);
            for (int[] s : shapes) {
                int rows = p.rows();
                float[] q = uniform(r, rows * s[0] * s[2], -1, 1);
                float[] k = uniform(r, rows * s[1] * s[2], -1, 1);
                float[] v = uniform(r, k.length, -1, 1);
                Function<Backend, float[]> run = b -> {
                    try (Buf qb = b.wrap(q.clone());
                            Buf kb = b.wrap(k.clone());
                            Buf vb = b.wrap(v.clone())) {
                        Buf out = b.wrap(poisoned(q.length));
                        b.attentionPacked(qb, kb, vb, p, s[0], s[1], s[2], out);
                        return b.take(out);
                    }
                };
                double[] tol = new double[q.length];
                Arrays.fill(tol, 2e-5);
                float[] got = run.apply(cuda);
                float[] want = run.apply(JAVA);
                String what = "attentionPacked " + Arrays.deepToString(items) + " " + Arrays.toString(s);
                if (s[2] > CudaBackend.MAX_HEAD_DIM) {
                    assertBits(want, got, want.length, what + " (host fallback)");
                } else {
                    assertWithin(got, widen(want), tol, what);
                }
            }
        }
    }

    /** A continuation's packed rows are the device's cached attention of it after its context, bit for bit. */
    @Test
    void attentionPackedEqualsTheDevicesCachedAttentionBitForBit() {
        Backend cuda = GpuTesting.cuda(true).backend();
        SplittableRandom r = new SplittableRandom(62);
        int heads = 4;
        int kvHeads = 2;
        int d = 64;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int ctx = 37;
        int[] lens = {5, 1, 12};
        PackedRows.Builder b = PackedRows.builder();
        b.sequence(ctx, 0);
        int[] starts = new int[lens.length];
        for (int c = 0; c < lens.length; c++) {
            starts[c] = b.continuation(0, ctx, lens[c], ctx);
        }
        PackedRows p = b.build();
        float[] q = uniform(r, p.rows() * qDim, -1, 1);
        float[] k = uniform(r, p.rows() * kvDim, -1, 1);
        float[] v = uniform(r, k.length, -1, 1);
        float[] packed;
        try (Buf qb = cuda.wrap(q.clone());
                Buf kb = cuda.wrap(k.clone());
                Buf vb = cuda.wrap(v.clone())) {
            Buf out = cuda.wrap(poisoned(q.length));
            cuda.attentionPacked(qb, kb, vb, p, heads, kvHeads, d, out);
            packed = cuda.take(out);
        }
        for (int c = 0; c < lens.length; c++) {
            int n = lens[c];
            float[] kc = new float[(ctx + n) * kvDim];
            float[] vc = new float[kc.length];
            System.arraycopy(k, 0, kc, 0, ctx * kvDim);
            System.arraycopy(v, 0, vc, 0, ctx * kvDim);
            System.arraycopy(k, starts[c] * kvDim, kc, ctx * kvDim, n * kvDim);
            System.arraycopy(v, starts[c] * kvDim, vc, ctx * kvDim, n * kvDim);
            float[] cached;
            try (Buf qb = cuda.wrap(Arrays.copyOfRange(q, starts[c] * qDim, (starts[c] + n) * qDim));
                    Buf kb = cuda.wrap(kc);
                    Buf vb = cuda.wrap(vc)) {
                Buf out = cuda.wrap(poisoned(n * qDim));
                cuda.attention(qb, kb, vb, 1, n, ctx, heads, kvHeads, d, out);
                cached = cuda.take(out);
            }
            assertBits(
                    cached,
                    Arrays.copyOfRange(packed, starts[c] * qDim, (starts[c] + n) * qDim),
                    n * qDim,
                    "continuation " + c);
        }
    }

    /** ropePacked is m2q_rope with the layout's positions: the host-array CudaKernels.rope's bits. */
    @Test
    void ropePackedIsTheDeviceRopeAtTheLayoutsPositions() {
        CudaKernels kernels = GpuTesting.cuda(true);
        Backend cuda = kernels.backend();
        SplittableRandom r = new SplittableRandom(63);
        int heads = 3;
        int d = 64;
        float[] invFreq = new float[d / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) (1.0 / Math.pow(10000.0, (2.0 * i) / d));
        }
        for (int[][] items : LAYOUTS) {
            PackedRows p = layout(items);
            float[] x = uniform(r, p.rows() * heads * d, -2, 2);
            float[] got;
            try (Buf f = cuda.wrap(invFreq.clone())) {
                Buf xb = cuda.wrap(x.clone());
                cuda.ropePacked(xb, heads, d, f, p);
                got = cuda.take(xb);
            }
            float[] want = x.clone();
            kernels.rope(want, p.rows(), heads, d, invFreq, p.positions());
            assertBits(want, got, want.length, "ropePacked " + Arrays.deepToString(items));
        }
    }

    private static double[] widen(float[] a) {
        double[] w = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            w[i] = a[i];
        }
        return w;
    }
}
