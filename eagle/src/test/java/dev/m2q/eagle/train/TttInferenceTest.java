package dev.m2q.eagle.train;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.Qwen2Model;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The training forward is the inference forward: on the fixture target's real taps and embeddings of a 12-token
 * sequence, the fp32 TTT logits at step i, row t equal those of {@link DraftModel} run the way speculative
 * decoding runs it: prefill rows 0..t (g = fc(features[s]), embedding of token s + 1) into a fresh cache, then
 * draft steps j = 2..i, each reading the previous output h and the embedding of token t + j (zero past the end),
 * at positions t + 1, ..., t + i − 1. Equal logits at every (i, t) checked, including i = 7 and rows whose chain
 * runs past the sequence's end, pin the chain mask, the positions and the padding.
 */
class TttInferenceTest {
    private static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");
    private static final int T = 12;
    private static final int STEPS = 7;

    @Test
    void everyStepsLogitsEqualTheDraftModelsChain() {
        Kernels kernels = Kernels.byName("vector");
        try (Qwen2Model target = Qwen2Model.load(FIXTURE, kernels)) {
            SplittableRandom r = new SplittableRandom(71);
            int[] ids = new int[T];
            for (int i = 0; i < T; i++) {
                ids[i] = r.nextInt(target.config().vocabSize());
            }
            Qwen2Model.Tapped tapped = target.forwardTapped(ids, null, new int[] {2, 4, 5});
            float[] emb = target.embed(ids);
            float[] features = tapped.features();
            boolean[] mask = new boolean[T];
            Arrays.fill(mask, true);
            TrainingSequence seq = new TrainingSequence(ids, mask, emb, features, tapped.logits());

            int[] draftIds = new int[64];
            for (int i = 0; i < draftIds.length; i++) {
                draftIds[i] = 32 * i;
            }
            DraftVocab vocab = DraftVocab.of(draftIds, target.config().vocabSize());
            DraftConfig cfg = DraftConfig.forTarget(target.config(), null, vocab.size(), null);
            Map<String, Tensor> params = TttFixtures.toF32(TttFixtures.randomParams(cfg, 72, 3));
            Map<String, float[]> weights = new LinkedHashMap<>();
            params.forEach((k, v) -> weights.put(k, ((Tensor.F32) v).data().clone()));
            DraftModel draft = new DraftModel(new DraftHead(cfg, vocab, weights), kernels);

            List<Tensor> z = new TttObjective(cfg, vocab, STEPS, kernels).logits(params, List.of(seq));
            int h = cfg.hiddenSize();
            int vd = vocab.size();
            int[][] pairs = {{1, 0}, {1, 10}, {2, 3}, {3, 0}, {4, 7}, {5, 9}, {7, 0}, {7, 4}, {7, 10}};
            for (int[] pair : pairs) {
                int i = pair[0];
                int t = pair[1];
                DraftModel.Cache cache = draft.newCache(t + i);
                float[] prefixEmb = Arrays.copyOfRange(emb, h, (t + 2) * h);
                float[] out = draft.step(
                        draft.project(Arrays.copyOf(features, (t + 1) * 3 * h), t + 1), prefixEmb, t + 1, cache);
                float[] last = Arrays.copyOfRange(out, t * h, (t + 1) * h);
                for (int j = 2; j <= i; j++) {
                    float[] e = t + j < T ? Arrays.copyOfRange(emb, (t + j) * h, (t + j + 1) * h) : new float[h];
                    last = draft.step(last, e, 1, cache);
                }
                float[] ref = draft.logits(last, 1);
                Tensor step = z.get(i - 1);
                double max = 0;
                for (float x : ref) {
                    max = Math.max(max, Math.abs(x));
                }
                assertTrue(max > 0.1, "logits of (" + i + ", " + t + ") too small to compare: " + max);
                for (int v = 0; v < vd; v++) {
                    // Both sides are fp32 with fp32-accumulated products, summed in different orders (the
                    // kernels' matmul and attention here, Tensor element arithmetic in double rounded per store
                    // there): ~1e−7 relative per op, compounded over up to 7 layer passes with 768-deep dots, is
                    // a few 1e−7 of the row's largest logit (3e−7 measured). 1e−5 leaves 30× margin, while one
                    // key dropped from the mask moves a logit by 5e−3 of that scale (measured).
                    double err = Math.abs(step.get(t * vd + v) - ref[v]);
                    int el = v;
                    assertTrue(
                            err <= 1e-5 * max,
                            () -> "step " + i + ", row " + t + ", draft id " + el + ": TTT " + step.get(t * vd + el)
                                    + ", DraftModel " + ref[el]);
                }
            }
        }
    }
}
