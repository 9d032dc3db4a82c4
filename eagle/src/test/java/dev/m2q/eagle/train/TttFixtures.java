package dev.m2q.eagle.train;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.grad.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/** Small draft heads and training sequences for the training-time test's tests, all from seeded RNGs. */
final class TttFixtures {
    private TttFixtures() {}

    /** H 16, I 24, 2 heads sharing 1 kv head of dimension 8, V 40, V_d 12. */
    static DraftConfig tinyConfig() {
        return new DraftConfig(16, 24, 2, 1, 8, 1e-6, 10000.0, null, 64, 40, 12, null);
    }

    /** Target ids 0, 3, 6, ..., 33: every third id of the 40. */
    static DraftVocab tinyVocab() {
        int[] ids = new int[12];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 3 * i;
        }
        return DraftVocab.of(ids, 40);
    }

    /**
     * Random fp64 parameters, each element rounded to fp32 (so fp32 twins start equal): matrices N(0, 1/in) (unit
     * scale activations), norm weights 1 + N(0, 0.2²), lm_head N(0, lmScale²/in).
     */
    static Map<String, Tensor> randomParams(DraftConfig cfg, long seed, double lmScale) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, Tensor> p = new LinkedHashMap<>();
        for (var e : DraftHead.shapes(cfg).entrySet()) {
            long[] s = e.getValue();
            boolean vector = s.length == 1;
            int rows = vector ? 1 : (int) s[0];
            int cols = (int) s[s.length - 1];
            double sd = vector ? 0.2 : (e.getKey().equals(DraftHead.LM_HEAD) ? lmScale : 1) / Math.sqrt(cols);
            Tensor.F64 t = Tensor.f64(rows, cols);
            for (int i = 0; i < t.size(); i++) {
                t.set(i, (float) ((vector ? 1 : 0) + sd * r.nextGaussian()));
            }
            p.put(e.getKey(), t);
        }
        return p;
    }

    /** Zero tensors shaped like {@code params}. */
    static Map<String, Tensor> zerosLike(Map<String, Tensor> params) {
        Map<String, Tensor> z = new LinkedHashMap<>();
        params.forEach((k, v) -> z.put(k, v.zerosLike()));
        return z;
    }

    static Map<String, Tensor> toF32(Map<String, Tensor> params) {
        Map<String, Tensor> z = new LinkedHashMap<>();
        params.forEach((k, v) -> z.put(k, v.toF32()));
        return z;
    }

    /**
     * A sequence of t tokens with N(0, 1) embeddings and features and target logits N(0, 1) over v tokens, where
     * about two positions in three get +4 on a random draft-vocabulary id (so its argmax is usually in the draft
     * vocabulary) and the others keep their argmax anywhere (usually outside it). Token 0 and every token whose
     * index is a multiple of 4 are prompt tokens.
     */
    static TrainingSequence randomSequence(SplittableRandom r, int t, int hidden, DraftVocab vocab) {
        int v = vocab.targetVocab();
        int[] ids = new int[t];
        boolean[] mask = new boolean[t];
        float[] emb = new float[t * hidden];
        float[] feat = new float[t * 3 * hidden];
        float[] logits = new float[t * v];
        for (int i = 0; i < t; i++) {
            ids[i] = r.nextInt(v);
            mask[i] = i % 4 != 0;
        }
        for (int i = 0; i < emb.length; i++) {
            emb[i] = (float) r.nextGaussian();
        }
        for (int i = 0; i < feat.length; i++) {
            feat[i] = (float) r.nextGaussian();
        }
        for (int p = 0; p < t; p++) {
            for (int i = 0; i < v; i++) {
                logits[p * v + i] = (float) r.nextGaussian();
            }
            if (r.nextInt(3) != 0) {
                logits[p * v + vocab.targetId(r.nextInt(vocab.size()))] += 4;
            }
        }
        return new TrainingSequence(ids, mask, emb, feat, logits);
    }
}
