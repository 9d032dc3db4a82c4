package dev.m2q.core.draft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Rope;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * DraftModel against a plain fp64 transcription of ALGORITHMS §5's layer written here from the spec, and its cache
 * against itself: n rows at once equal the same rows fed one by one, and a truncated chain leaves no trace.
 *
 * <p>Tolerance: DraftModel computes in fp32 with fp32 accumulation over at most 3H = 768 products of O(1) values;
 * the reference in fp64. Relative fp32 error per dot product is at most ~n·2⁻²⁴ ≈ 5e-5 in the worst case and far
 * less in practice; we allow 2e-4·(1 + |x|) on hidden states and logits, while a wrong concat order, RoPE position
 * or residual moves them by O(0.1).
 */
class DraftModelTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    @Test
    void matchesAnFp64TranscriptionOfTheSpec() {
        ModelConfig target = ModelConfig.load(FIXTURE);
        DraftHead head = DraftHeadTest.randomHead(target, null, 7);
        DraftModel m = new DraftModel(head, Kernels.byName("vector"));
        int h = target.hiddenSize();
        int rows = 5;
        Random rnd = new Random(11);
        float[] features = gaussian(rnd, rows * 3 * h, 1.0);
        float[] emb = gaussian(rnd, rows * h, 0.05);

        DraftModel.Cache cache = m.newCache(16);
        float[] g = m.project(features, rows);
        float[] out = m.step(g, emb, rows, cache);
        float[] logits = m.logits(out, rows);

        Reference ref = new Reference(head);
        double[] gRef = ref.matmul(toDouble(features), rows, DraftHead.FC, h, 3 * h);
        double[] outRef = ref.step(gRef, toDouble(emb), rows);
        double[] logitsRef = ref.logits(outRef, rows);
        assertClose(gRef, g, "fc");
        assertClose(outRef, out, "hidden");
        assertClose(logitsRef, logits, "logits");
    }

    @Test
    void rowsAtOnceEqualRowsOneByOneAndTruncationForgetsAChain() {
        ModelConfig target = ModelConfig.load(FIXTURE);
        DraftModel m = new DraftModel(DraftHeadTest.randomHead(target, null, 8), Kernels.byName("vector"));
        int h = target.hiddenSize();
        int rows = 6;
        Random rnd = new Random(12);
        float[] g = gaussian(rnd, rows * h, 1.0);
        float[] emb = gaussian(rnd, rows * h, 0.05);
        DraftModel.Cache all = m.newCache(rows + 3);
        float[] together = m.step(g, emb, rows, all);

        DraftModel.Cache one = m.newCache(rows + 3);
        float[] single = new float[rows * h];
        for (int r = 0; r < rows; r++) {
            if (r == 3) {
                // A two-row chain at positions 3, 4 that speculative decoding rejects: truncating it must leave the
                // cache as if it had never run.
                m.step(gaussian(rnd, 2 * h, 1.0), gaussian(rnd, 2 * h, 0.05), 2, one);
                one.truncate(3);
            }
            float[] o = m.step(
                    Arrays.copyOfRange(g, r * h, (r + 1) * h), Arrays.copyOfRange(emb, r * h, (r + 1) * h), 1, one);
            System.arraycopy(o, 0, single, r * h, h);
        }
        assertEquals(rows, one.length());
        // Same fp32 arithmetic per row; only the attention's summation order over the same keys can differ.
        for (int i = 0; i < together.length; i++) {
            assertEquals(together[i], single[i], 1e-5 * (1 + Math.abs(together[i])), "element " + i);
        }
    }

    @Test
    void aHeadReadFromDiskRunsOnBf16WeightsWithTheSameBits() {
        ModelConfig target = ModelConfig.load(FIXTURE);
        DraftHead head = DraftHeadTest.randomHead(target, null, 9).roundedToBf16();
        Kernels kernels = Kernels.byName("vector");
        DraftModel packed = new DraftModel(head, kernels);
        DraftModel plain = new DraftModel(head, kernels, false);
        int h = target.hiddenSize();
        int rows = 3;
        Random rnd = new Random(13);
        float[] features = gaussian(rnd, rows * 3 * h, 1.0);
        float[] emb = gaussian(rnd, rows * h, 0.05);
        float[] a = packed.step(packed.project(features, rows), emb, rows, packed.newCache(4));
        float[] b = plain.step(plain.project(features, rows), emb, rows, plain.newCache(4));
        // bf16 weights widen to exactly the fp32 values, and both kernels sum in the same order: bit for bit.
        org.junit.jupiter.api.Assertions.assertArrayEquals(b, a);
        org.junit.jupiter.api.Assertions.assertArrayEquals(plain.logits(b, rows), packed.logits(a, rows));
    }

    private static void assertClose(double[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(want[i] - got[i]) / (1 + Math.abs(want[i]));
            worst = Math.max(worst, err);
        }
        assertTrue(worst <= 2e-4, what + ": worst relative error " + worst);
    }

    static float[] gaussian(Random rnd, int n, double sd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (sd * rnd.nextGaussian());
        }
        return a;
    }

    private static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /** The draft layer from ALGORITHMS §5 in fp64, one fresh sequence at positions 0.. . */
    private record Reference(DraftHead head) {
        double[] matmul(double[] x, int rows, String w, int out, int in) {
            float[] wt = head.weight(w);
            double[] y = new double[rows * out];
            for (int r = 0; r < rows; r++) {
                for (int o = 0; o < out; o++) {
                    double s = 0;
                    for (int i = 0; i < in; i++) {
                        s += x[r * in + i] * wt[o * in + i];
                    }
                    y[r * out + o] = s;
                }
            }
            return y;
        }

        double[] norm(double[] x, int rows, String w) {
            float[] wt = head.weight(w);
            int n = wt.length;
            double[] y = new double[x.length];
            for (int r = 0; r < rows; r++) {
                double ss = 0;
                for (int i = 0; i < n; i++) {
                    ss += x[r * n + i] * x[r * n + i];
                }
                double inv = 1 / Math.sqrt(ss / n + head.config().rmsNormEps());
                for (int i = 0; i < n; i++) {
                    y[r * n + i] = wt[i] * x[r * n + i] * inv;
                }
            }
            return y;
        }

        void rope(double[] x, int rows, int heads, int d) {
            DraftConfig c = head.config();
            float[] inv = Rope.of(d, c.ropeTheta(), c.scaling()).inverseFrequencies();
            for (int r = 0; r < rows; r++) {
                for (int hh = 0; hh < heads; hh++) {
                    int o = (r * heads + hh) * d;
                    for (int i = 0; i < d / 2; i++) {
                        double ang = (float) r * inv[i];
                        double a = x[o + i];
                        double b = x[o + i + d / 2];
                        x[o + i] = a * Math.cos(ang) - b * Math.sin(ang);
                        x[o + i + d / 2] = b * Math.cos(ang) + a * Math.sin(ang);
                    }
                }
            }
        }

        double[] step(double[] g, double[] emb, int rows) {
            DraftConfig c = head.config();
            int h = c.hiddenSize();
            int d = c.headDim();
            double[] en = norm(emb, rows, DraftHead.INPUT_NORM);
            double[] gn = norm(g, rows, DraftHead.HIDDEN_NORM);
            double[] a = new double[rows * 2 * h];
            for (int r = 0; r < rows; r++) {
                System.arraycopy(en, r * h, a, r * 2 * h, h);
                System.arraycopy(gn, r * h, a, r * 2 * h + h, h);
            }
            double[] q = matmul(a, rows, DraftHead.Q, c.qDim(), 2 * h);
            double[] k = matmul(a, rows, DraftHead.K, c.kvDim(), 2 * h);
            double[] v = matmul(a, rows, DraftHead.V, c.kvDim(), 2 * h);
            rope(q, rows, c.numHeads(), d);
            rope(k, rows, c.numKvHeads(), d);
            double[] attn = new double[rows * c.qDim()];
            int group = c.numHeads() / c.numKvHeads();
            for (int t = 0; t < rows; t++) {
                for (int hh = 0; hh < c.numHeads(); hh++) {
                    int kvh = hh / group;
                    double[] s = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int i = 0; i < d; i++) {
                            dot += q[t * c.qDim() + hh * d + i] * k[j * c.kvDim() + kvh * d + i];
                        }
                        s[j] = dot / Math.sqrt(d);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        for (int i = 0; i < d; i++) {
                            attn[t * c.qDim() + hh * d + i] += s[j] / sum * v[j * c.kvDim() + kvh * d + i];
                        }
                    }
                }
            }
            double[] x = matmul(attn, rows, DraftHead.O, h, c.qDim());
            for (int i = 0; i < x.length; i++) {
                x[i] += g[i];
            }
            double[] n = norm(x, rows, DraftHead.POST_NORM);
            int in = c.intermediateSize();
            double[] gt = matmul(n, rows, DraftHead.GATE, in, h);
            double[] up = matmul(n, rows, DraftHead.UP, in, h);
            for (int i = 0; i < gt.length; i++) {
                gt[i] = gt[i] / (1 + Math.exp(-gt[i])) * up[i];
            }
            double[] down = matmul(gt, rows, DraftHead.DOWN, h, in);
            for (int i = 0; i < x.length; i++) {
                x[i] += down[i];
            }
            return x;
        }

        double[] logits(double[] hidden, int rows) {
            DraftConfig c = head.config();
            return matmul(
                    norm(hidden, rows, DraftHead.NORM), rows, DraftHead.LM_HEAD, c.draftVocabSize(), c.hiddenSize());
        }
    }
}
