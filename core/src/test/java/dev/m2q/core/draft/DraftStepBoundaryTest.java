package dev.m2q.core.draft;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.CountingKernels.OpCount;
import dev.m2q.core.kernels.Crossings;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Rope;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The draft head on the backend (issue 14): its weights cross once, its cache and hidden states stay resident, and a
 * chain step moves exactly the embedding row of the token it continues from in (4·H bytes) and the logits of the draft
 * vocabulary out (4·V_d bytes); appending r rows moves their features and embedding rows in (4·r·(3H + H)) and
 * nothing out. And the resident step gives the bits of the host-array step it replaced (transcribed here on the
 * {@link Kernels}): the same fp32 operations in the same order, so the comparison is exact.
 */
class DraftStepBoundaryTest {
    @Test
    void aChainStepMovesOneEmbeddingRowInAndTheDraftLogitsOut() {
        ModelConfig target = ModelConfig.load(DraftModelTest.FIXTURE);
        DraftHead head = DraftHeadTest.randomHead(target, null, 21);
        DraftConfig cfg = head.config();
        int h = cfg.hiddenSize();
        int vd = cfg.draftVocabSize();
        CountingKernels ck = new CountingKernels(VectorKernels.INSTANCE);
        Random rnd = new Random(22);
        try (DraftModel m = new DraftModel(head, ck);
                DraftModel.Cache cache = m.newCache(32)) {
            Backend b = m.backend();
            // The prefill's rows: the weights cross here, once.
            Buf last = append(
                    m,
                    b,
                    DraftModelTest.gaussian(rnd, 5 * 3 * h, 1.0),
                    DraftModelTest.gaussian(rnd, 5 * h, 0.05),
                    5,
                    cache);
            long weightBytes = 0;
            for (var e : DraftHead.shapes(cfg).entrySet()) {
                if (e.getValue().length == 2) {
                    weightBytes += 4L * e.getValue()[0] * e.getValue()[1]; // randomHead is not bf16: fp32
                }
            }
            assertEquals(new OpCount("backend.weight", 9, weightBytes, 0), ck.count("backend.weight"));

            // One append after a verify: features and embedding rows in, nothing out.
            int r = 2;
            ck.reset(false);
            Buf next = append(
                    m,
                    b,
                    DraftModelTest.gaussian(rnd, r * 3 * h, 1.0),
                    DraftModelTest.gaussian(rnd, r * h, 0.05),
                    r,
                    cache);
            last.close();
            last = next;
            assertEquals(4L * r * (3 * h + h), ck.total().bytesIn(), ck.table());
            assertEquals(0, ck.total().bytesOut(), ck.table());
            Crossings.assertOnlyCrossingsMoveBytes(ck);

            // A chain of k steps: each reads its logits out and writes the next token's embedding row in.
            int k = 5;
            int length = cache.length();
            Buf hb = last;
            for (int j = 0; j < k; j++) {
                ck.reset(false);
                float[] logits = b.take(m.logits(hb, 1));
                assertEquals(vd, logits.length);
                Buf step;
                try (Buf e = b.wrap(DraftModelTest.gaussian(rnd, h, 0.05))) {
                    step = m.step(hb, e, 1, cache);
                }
                if (hb != last) {
                    hb.close();
                }
                hb = step;
                assertEquals(4L * h, ck.total().bytesIn(), "step " + j + "\n" + ck.table());
                assertEquals(4L * vd, ck.total().bytesOut(), "step " + j + "\n" + ck.table());
                assertEquals(0, ck.count("backend.weight").calls());
                Crossings.assertOnlyCrossingsMoveBytes(ck);
                // The layer ran on the backend: q, k, v, o, gate, up, down and lm_head.
                assertEquals(8, ck.count("backend.matmul").calls());
            }
            hb.close();
            last.close();
            cache.truncate(length);
        }
    }

    @Test
    void theResidentStepGivesTheHostStepsBits() {
        ModelConfig target = ModelConfig.load(DraftModelTest.FIXTURE);
        DraftHead head = DraftHeadTest.randomHead(target, null, 23);
        Kernels kernels = Kernels.byName("vector");
        int h = head.config().hiddenSize();
        Random rnd = new Random(24);
        try (DraftModel m = new DraftModel(head, kernels);
                DraftModel.Cache cache = m.newCache(16)) {
            HostStep ref = new HostStep(head, kernels, 16);
            int[] rows = {4, 1, 1, 2};
            for (int i = 0; i < rows.length; i++) {
                int n = rows[i];
                float[] features = DraftModelTest.gaussian(rnd, n * 3 * h, 1.0);
                float[] emb = DraftModelTest.gaussian(rnd, n * h, 0.05);
                float[] gWant = ref.project(features, n);
                float[] g = m.project(features, n);
                assertArrayEquals(gWant, g, "fc " + i);
                float[] want = ref.step(gWant, emb, n);
                float[] got = m.step(g, emb, n, cache);
                assertArrayEquals(want, got, "step " + i);
                assertArrayEquals(ref.logits(want, n), m.logits(got, n), "logits " + i);
                assertEquals(ref.length, cache.length());
            }
        }
    }

    /** SpecDecode's append through the Buf API: features and embeddings wrapped, the last row's h kept resident. */
    private static Buf append(DraftModel m, Backend b, float[] features, float[] emb, int rows, DraftModel.Cache c) {
        int h = m.config().hiddenSize();
        try (Buf f = b.wrap(features);
                Buf g = m.project(f, rows);
                Buf e = b.wrap(emb);
                Buf out = m.step(g, e, rows, c)) {
            Buf last = b.alloc(h);
            b.copy(out, (long) (rows - 1) * h, last, 0, h);
            return last;
        }
    }

    /** The draft step as it ran on host arrays before the backend (transcribed from that code), fp32 weights. */
    private static final class HostStep {
        private final DraftHead head;
        private final DraftConfig cfg;
        private final Kernels kernels;
        private final Rope rope;
        private final float[] keys;
        private final float[] values;
        int length;

        HostStep(DraftHead head, Kernels kernels, int capacity) {
            this.head = head;
            this.cfg = head.config();
            this.kernels = kernels;
            this.rope = Rope.of(cfg.headDim(), cfg.ropeTheta(), cfg.scaling());
            keys = new float[capacity * cfg.kvDim()];
            values = new float[capacity * cfg.kvDim()];
        }

        private Matrix w(String name, int rows, int cols) {
            return new Matrix.F32(head.weight(name), rows, cols);
        }

        float[] project(float[] features, int rows) {
            int h = cfg.hiddenSize();
            float[] g = new float[rows * h];
            kernels.matmul(features, rows, w(DraftHead.FC, h, 3 * h), null, g);
            return g;
        }

        float[] step(float[] g, float[] emb, int rows) {
            int h = cfg.hiddenSize();
            int start = length;
            float eps = (float) cfg.rmsNormEps();
            float[] en = new float[rows * h];
            float[] gn = new float[rows * h];
            kernels.rmsNorm(emb, rows, h, head.weight(DraftHead.INPUT_NORM), eps, en);
            kernels.rmsNorm(g, rows, h, head.weight(DraftHead.HIDDEN_NORM), eps, gn);
            float[] a = new float[rows * 2 * h];
            for (int r = 0; r < rows; r++) {
                System.arraycopy(en, r * h, a, r * 2 * h, h);
                System.arraycopy(gn, r * h, a, r * 2 * h + h, h);
            }
            int qDim = cfg.qDim();
            int kvDim = cfg.kvDim();
            float[] qa = new float[rows * qDim];
            float[] ka = new float[rows * kvDim];
            float[] va = new float[rows * kvDim];
            kernels.matmul(a, rows, w(DraftHead.Q, qDim, 2 * h), null, qa);
            kernels.matmul(a, rows, w(DraftHead.K, kvDim, 2 * h), null, ka);
            kernels.matmul(a, rows, w(DraftHead.V, kvDim, 2 * h), null, va);
            int[] positions = new int[rows];
            for (int r = 0; r < rows; r++) {
                positions[r] = start + r;
            }
            rope.apply(kernels, qa, rows, cfg.numHeads(), positions);
            rope.apply(kernels, ka, rows, cfg.numKvHeads(), positions);
            System.arraycopy(ka, 0, keys, start * kvDim, rows * kvDim);
            System.arraycopy(va, 0, values, start * kvDim, rows * kvDim);
            float[] attn = new float[rows * qDim];
            kernels.attention(qa, keys, values, 1, rows, start, cfg.numHeads(), cfg.numKvHeads(), cfg.headDim(), attn);
            length = start + rows;
            float[] x = new float[rows * h];
            kernels.matmul(attn, rows, w(DraftHead.O, h, qDim), null, x);
            for (int i = 0; i < x.length; i++) {
                x[i] += g[i];
            }
            float[] n = new float[rows * h];
            kernels.rmsNorm(x, rows, h, head.weight(DraftHead.POST_NORM), eps, n);
            int inter = cfg.intermediateSize();
            float[] gt = new float[rows * inter];
            float[] ut = new float[rows * inter];
            kernels.matmul(n, rows, w(DraftHead.GATE, inter, h), null, gt);
            kernels.matmul(n, rows, w(DraftHead.UP, inter, h), null, ut);
            kernels.swiglu(gt, ut, gt.length);
            float[] d = new float[rows * h];
            kernels.matmul(gt, rows, w(DraftHead.DOWN, h, inter), null, d);
            for (int i = 0; i < x.length; i++) {
                x[i] += d[i];
            }
            return x;
        }

        float[] logits(float[] hs, int rows) {
            int hd = cfg.hiddenSize();
            float[] n = new float[rows * hd];
            kernels.rmsNorm(hs, rows, hd, head.weight(DraftHead.NORM), (float) cfg.rmsNormEps(), n);
            float[] out = new float[rows * cfg.draftVocabSize()];
            kernels.matmul(n, rows, w(DraftHead.LM_HEAD, cfg.draftVocabSize(), hd), null, out);
            return out;
        }
    }
}
