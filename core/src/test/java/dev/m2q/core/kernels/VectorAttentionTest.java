package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link VectorAttention} against the loops it replaced, bit for bit: the scores against {@link VectorKernels#dot}
 * key by key, the weighted sum against {@link VectorKernels#axpy} key by key, and the whole of {@link
 * VectorKernels#attention} against attention written as it was (dot, max, exp, axpy in one pass per key), over head
 * sizes with and without a scalar tail, key counts around the block of 16 and the groups of 4, and keys that are
 * not contiguous (a packed layout's).
 */
class VectorAttentionTest {
    private static final int[] HEAD_DIMS = {8, 16, 64, 72, 80, 128, 136};
    private static final int[] KEY_COUNTS = {1, 2, 3, 4, 5, 7, 15, 16, 17, 20, 33, 100};

    private static float[] randoms(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        return x;
    }

    private static int[] bits(float[] x) {
        int[] b = new int[x.length];
        for (int i = 0; i < x.length; i++) {
            b[i] = Float.floatToRawIntBits(x[i]);
        }
        return b;
    }

    /** Key offsets of {@code n} rows of width {@code stride} in a shuffled order with gaps, head offset {@code h}. */
    private static int[] keys(SplittableRandom rnd, int n, int stride, int h) {
        int[] rows = new int[n];
        for (int j = 0; j < n; j++) {
            rows[j] = 2 * j + (rnd.nextBoolean() ? 1 : 0);
        }
        for (int j = n - 1; j > 0; j--) {
            int o = rnd.nextInt(j + 1);
            int t = rows[j];
            rows[j] = rows[o];
            rows[o] = t;
        }
        int[] keys = new int[n];
        for (int j = 0; j < n; j++) {
            keys[j] = rows[j] * stride + h;
        }
        return keys;
    }

    @Test
    void scoresAndWeightedSumsHaveTheBitsOfDotAndAxpyKeyByKey() {
        VectorKernels vk = VectorKernels.INSTANCE;
        SplittableRandom rnd = new SplittableRandom(17);
        for (int d : HEAD_DIMS) {
            for (int n : KEY_COUNTS) {
                for (int nh = 1; nh <= VectorAttention.HEAD_TILE; nh++) {
                    int stride = 2 * d + 3;
                    int sStride = n + 2;
                    float[] q = randoms(rnd, 5 + nh * d);
                    float[] kv = randoms(rnd, (2 * n + 2) * stride);
                    int[] keys = keys(rnd, n, stride, d / 2);
                    float scale = (float) (1.0 / Math.sqrt(d));
                    String what = "d " + d + ", keys " + n + ", heads " + nh;

                    float[] want = new float[nh * sStride];
                    for (int h = 0; h < nh; h++) {
                        for (int j = 0; j < n; j++) {
                            want[h * sStride + j] = vk.dot(q, 5 + h * d, kv, keys[j], d) * scale;
                        }
                    }
                    float[] got = new float[nh * sStride];
                    VectorAttention.scores(q, 5, nh, kv, keys, n, d, scale, got, sStride, VectorAttention.chains());
                    assertArrayEquals(bits(want), bits(got), "scores, " + what);

                    float[] p = randoms(rnd, nh * sStride);
                    float[] inv = randoms(rnd, nh);
                    float[] outWant = randoms(rnd, 9 + nh * d + 4);
                    float[] outGot = outWant.clone();
                    for (int h = 0; h < nh; h++) {
                        for (int j = 0; j < n; j++) {
                            vk.axpy(p[h * sStride + j] * inv[h], kv, keys[j], outWant, 9 + h * d, d);
                        }
                    }
                    VectorAttention.weightedSum(p, sStride, inv, nh, kv, keys, n, d, outGot, 9);
                    assertArrayEquals(bits(outWant), bits(outGot), "weighted sum, " + what);
                }
            }
        }
    }

    /** Attention as JavaOps wrote it before the key blocks: one pass of dot, then exp, then axpy per key. */
    private static void attentionByKey(
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
        java.util.Arrays.fill(out, 0, nSeq * seqLen * qDim, 0f);
        float[] scores = new float[total];
        for (int item = 0; item < nSeq * seqLen * heads; item++) {
            int row = item / heads;
            int h = item % heads;
            int kv0 = (row / seqLen) * total;
            int kvh = h / group;
            int qOff = row * qDim + h * d;
            int visible = startPos + row % seqLen + 1;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < visible; j++) {
                float sc = kern.dot(q, qOff, k, (kv0 + j) * kvDim + kvh * d, d) * scale;
                scores[j] = sc;
                max = Math.max(max, sc);
            }
            double sum = 0;
            for (int j = 0; j < visible; j++) {
                float e = (float) Math.exp(scores[j] - max);
                scores[j] = e;
                sum += e;
            }
            float inv = (float) (1.0 / sum);
            for (int j = 0; j < visible; j++) {
                kern.axpy(scores[j] * inv, v, (kv0 + j) * kvDim + kvh * d, out, qOff, d);
            }
        }
    }

    @Test
    void attentionHasTheBitsOfTheKeyByKeyLoop() {
        SplittableRandom rnd = new SplittableRandom(23);
        // 4 heads in groups of 2 (the fixture), 10 in groups of 5 (Qwen2.5-32B), 18 in one group (tiles of 8, 8, 2)
        for (int[] hk : new int[][] {{4, 2}, {10, 2}, {18, 1}})
            for (int d : new int[] {64, 72, 128}) {
                int heads = hk[0];
                int kvHeads = hk[1];
                // decoding after a prompt (1 row), a verify (3 rows), a calibration batch (2 sequences from position 0)
                for (int[] shape : new int[][] {{1, 1, 40}, {1, 3, 37}, {2, 21, 0}, {1, 1, 700}}) {
                    int nSeq = shape[0];
                    int seqLen = shape[1];
                    int startPos = shape[2];
                    int total = startPos + seqLen;
                    float[] q = randoms(rnd, nSeq * seqLen * heads * d);
                    float[] k = randoms(rnd, nSeq * total * kvHeads * d);
                    float[] v = randoms(rnd, nSeq * total * kvHeads * d);
                    float[] want = new float[q.length];
                    float[] got = new float[q.length];
                    attentionByKey(VectorKernels.INSTANCE, q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, want);
                    VectorKernels.INSTANCE.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, got);
                    assertArrayEquals(bits(want), bits(got), "d " + d + ", shape " + java.util.Arrays.toString(shape));
                    // and the scalar kernels still take their own dot and axpy
                    attentionByKey(ScalarKernels.INSTANCE, q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, want);
                    ScalarKernels.INSTANCE.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, got);
                    assertArrayEquals(bits(want), bits(got), "scalar, d " + d);
                }
            }
    }
}
