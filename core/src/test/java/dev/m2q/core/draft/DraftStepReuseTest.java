package dev.m2q.core.draft;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.ModelConfig;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The draft head's allocation-free forms (issue 16): {@link DraftModel#project(Buf, int, Buf)}, {@link
 * DraftModel#step(Buf, Buf, int, DraftModel.Cache, Buf)} and {@link DraftModel#logits(Buf, int, DraftModel.Cache,
 * Buf)} run the same operations in the same order as the forms that return new buffers, so they give the same bits
 * (compared exactly), and once the cache has run a step of as many rows, a chain step asks the backend for no buffer
 * at all ({@link CountingKernels} counts backend.alloc).
 */
class DraftStepReuseTest {
    @Test
    void reusedBuffersGiveTheSameBitsAndAChainStepAllocatesNothing() {
        ModelConfig target = ModelConfig.load(DraftModelTest.FIXTURE);
        DraftHead head = DraftHeadTest.randomHead(target, null, 41);
        DraftConfig cfg = head.config();
        int h = cfg.hiddenSize();
        int vd = cfg.draftVocabSize();
        int rows = 6;
        int k = 5;
        Random rnd = new Random(42);
        float[] features = DraftModelTest.gaussian(rnd, rows * 3 * h, 1.0);
        float[] emb = DraftModelTest.gaussian(rnd, rows * h, 0.05);
        float[][] chainEmb = new float[k][];
        for (int j = 0; j < k; j++) {
            chainEmb[j] = DraftModelTest.gaussian(rnd, h, 0.05);
        }
        CountingKernels ck = new CountingKernels(VectorKernels.INSTANCE);
        try (DraftModel m = new DraftModel(head, ck);
                DraftModel.Cache fresh = m.newCache(32);
                DraftModel.Cache reused = m.newCache(32)) {
            Backend b = m.backend();

            // The forms that return new buffers.
            float[][] wantLogits = new float[k][];
            float[] wantH;
            Buf hb;
            try (Buf f = b.wrap(features);
                    Buf g = m.project(f, rows);
                    Buf e = b.wrap(emb);
                    Buf out = m.step(g, e, rows, fresh)) {
                hb = b.alloc(h);
                b.copy(out, (long) (rows - 1) * h, hb, 0, h);
            }
            for (int j = 0; j < k; j++) {
                wantLogits[j] = b.take(m.logits(hb, 1));
                try (Buf e = b.wrap(chainEmb[j])) {
                    Buf next = m.step(hb, e, 1, fresh);
                    hb.close();
                    hb = next;
                }
            }
            wantH = b.take(hb);

            // The same on buffers made once.
            try (Buf f = b.wrap(features);
                    Buf g = b.alloc((long) rows * h);
                    Buf e = b.wrap(emb);
                    Buf out = b.alloc((long) rows * h);
                    Buf hA = b.alloc(h);
                    Buf hB = b.alloc(h);
                    Buf e1 = b.alloc(h);
                    Buf logits = b.alloc(vd)) {
                m.project(f, rows, g);
                m.step(g, e, rows, reused, out);
                b.copy(out, (long) (rows - 1) * h, hA, 0, h);
                assertThrows(IllegalArgumentException.class, () -> m.step(hA, e1, 1, reused, hA));
                Buf cur = hA;
                ck.reset(false);
                for (int j = 0; j < k; j++) {
                    m.logits(cur, 1, reused, logits);
                    float[] got = new float[vd];
                    b.read(logits, 0, got, 0, vd);
                    assertArrayEquals(bits(wantLogits[j]), bits(got), "logits of chain step " + j);
                    b.write(chainEmb[j], 0, e1, 0, h);
                    Buf next = cur == hA ? hB : hA;
                    m.step(cur, e1, 1, reused, next);
                    cur = next;
                }
                assertEquals(0, ck.count("backend.alloc").calls(), ck.table());
                float[] gotH = new float[h];
                b.read(cur, 0, gotH, 0, h);
                assertArrayEquals(bits(wantH), bits(gotH), "the chain's last hidden state");
                assertEquals(fresh.length(), reused.length());
            }
        }
    }

    private static int[] bits(float[] v) {
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = Float.floatToRawIntBits(v[i]);
        }
        return out;
    }
}
