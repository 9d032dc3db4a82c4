package dev.m2q.eagle.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.ScalarKernels;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** What the training-time test counts and averages: labels, exclusions, padding, per-step weights. */
class TttLossTest {
    private static final DraftConfig CFG = TttFixtures.tinyConfig();
    private static final DraftVocab VOCAB = TttFixtures.tinyVocab(); // target ids 0, 3, ..., 33

    /**
     * A zero lm_head makes every draft distribution uniform over the 12 draft ids (loss ln 12 on every loss row,
     * top-1 = draft id 0 = target id 0). One 6-token sequence, tokens 0 and 3 prompt tokens, whose target argmax
     * at positions 0..5 is 1, 0 (in the draft vocabulary), 3 (but token 3 is a prompt token), 15 (in), 2
     * (outside), 0 (position 5 predicts no token). Labelled positions: 0, 1, 3, 4; of them 1 and 3 in the loss.
     * Step i, row t reads position t + i (row 0 at step 1 predicts token 2), rows t = 0..4:
     *
     * <pre>
     * step 1: positions 1..5 → counted 1, 3, 4;  correct 1;     loss rows 1, 3  → ln 12
     * step 2: positions 2..6 → counted 3, 4;     correct none;  loss row 3      → ln 12
     * step 3: positions 3..7 → counted 3, 4;     correct none;  loss row 3      → ln 12
     * step 4: positions 4..8 → counted 4;        correct none;  no loss row     → 0
     * </pre>
     *
     * Position 5 and beyond (the last token and padding rows) never count; 4 is a miss outside the loss.
     */
    @Test
    void uniformDraftGivesTheHandCountedStatistics() {
        TttObjective ttt = new TttObjective(CFG, VOCAB, 4, ScalarKernels.INSTANCE);
        Map<String, Tensor> params = TttFixtures.randomParams(CFG, 5, 1);
        params.get(DraftHead.LM_HEAD).clear();
        int t = 6;
        int v = VOCAB.targetVocab();
        float[] logits = new float[t * v];
        int[] argmax = {1, 0, 3, 15, 2, 0};
        for (int p = 0; p < t; p++) {
            logits[p * v + argmax[p]] = 5;
        }
        SplittableRandom r = new SplittableRandom(6);
        TrainingSequence random = TttFixtures.randomSequence(r, t, CFG.hiddenSize(), VOCAB);
        TrainingSequence seq = new TrainingSequence(
                random.ids(),
                new boolean[] {false, true, true, false, true, true},
                random.embeddings(),
                random.features(),
                logits);
        StepStats stats = ttt.evaluate(params, List.of(seq));
        assertArrayEquals(new long[] {3, 2, 2, 1}, stats.counted());
        assertArrayEquals(new long[] {1, 0, 0, 0}, stats.correct());
        double ln12 = Math.log(12);
        // fp64 throughout: the soft cross-entropy of a uniform q sums 12 terms p·ln 12 with Σ p = 1, exact to a
        // few ulps of ln 12 ≈ 2.5, so 1e−12 is a rounding bound, not a modelling one.
        assertArrayEquals(new double[] {ln12, ln12, ln12, 0}, stats.stepLoss(), 1e-12);
        assertEquals(ln12 * (1 + 0.8 + 0.64), stats.loss(), 1e-12, "weights 0.8^(i−1); an empty step adds 0");
        assertEquals(1 / 3.0, stats.top1(1), 0.0);
    }

    /**
     * On random weights and a ragged two-sequence batch, the statistics equal those recomputed here from the
     * definition (ALGORITHMS §5) over the objective's own per-step logits, and lossAndGradients reports what
     * evaluate does.
     */
    @Test
    void statisticsFollowTheDefinition() {
        int steps = 7;
        TttObjective ttt = new TttObjective(CFG, VOCAB, steps, ScalarKernels.INSTANCE);
        SplittableRandom r = new SplittableRandom(9);
        List<TrainingSequence> batch = List.of(
                TttFixtures.randomSequence(r, 11, CFG.hiddenSize(), VOCAB),
                TttFixtures.randomSequence(r, 7, CFG.hiddenSize(), VOCAB));
        Map<String, Tensor> params = TttFixtures.randomParams(CFG, 10, 3);
        List<Tensor> z = ttt.logits(params, batch);
        double[] stepLoss = new double[steps];
        long[] correct = new long[steps];
        long[] counted = new long[steps];
        double total = 0;
        int vd = VOCAB.size();
        int v = VOCAB.targetVocab();
        for (int i = 1; i <= steps; i++) {
            double sum = 0;
            int lossRows = 0;
            int row = 0;
            for (TrainingSequence s : batch) {
                int len = s.length();
                for (int t = 0; t < len - 1; t++, row++) {
                    int p = t + i;
                    if (p + 1 > len - 1 || !s.lossMask()[p + 1]) {
                        continue;
                    }
                    counted[i - 1]++;
                    int target = 0;
                    for (int k = 1; k < v; k++) {
                        target = s.targetLogits()[p * v + k] > s.targetLogits()[p * v + target] ? k : target;
                    }
                    int draft = 0;
                    for (int d = 1; d < vd; d++) {
                        draft = z.get(i - 1).get(row * vd + d) > z.get(i - 1).get(row * vd + draft) ? d : draft;
                    }
                    correct[i - 1] += VOCAB.targetId(draft) == target ? 1 : 0;
                    if (VOCAB.draftId(target) < 0) {
                        continue;
                    }
                    lossRows++;
                    double zs = 0;
                    double ps = 0;
                    for (int d = 0; d < vd; d++) {
                        zs += Math.exp(z.get(i - 1).get(row * vd + d));
                        ps += Math.exp(s.targetLogits()[p * v + VOCAB.targetId(d)]);
                    }
                    for (int d = 0; d < vd; d++) {
                        double prob = Math.exp(s.targetLogits()[p * v + VOCAB.targetId(d)]) / ps;
                        sum -= prob * (z.get(i - 1).get(row * vd + d) - Math.log(zs));
                    }
                }
            }
            stepLoss[i - 1] = lossRows == 0 ? 0 : sum / lossRows;
            total += Math.pow(0.8, i - 1) * stepLoss[i - 1];
        }
        assertTrue(counted[0] > correct[0] && stepLoss[0] > 0, "the batch must exercise misses and the loss");
        assertTrue(counted[steps - 1] > 0, "the longer sequence must still count at step 7");
        StepStats stats = ttt.evaluate(params, batch);
        assertArrayEquals(counted, stats.counted());
        assertArrayEquals(correct, stats.correct());
        // fp64 on both sides; the only difference is the log-sum-exp's max shift (logits are O(5), so no
        // overflow either way), a few ulps of each O(1) term.
        assertArrayEquals(stepLoss, stats.stepLoss(), 1e-12);
        assertEquals(total, stats.loss(), 1e-12);
        StepStats trained = ttt.lossAndGradients(params, batch, TttFixtures.zerosLike(params));
        assertEquals(stats.loss(), trained.loss(), 0.0, "same forward, same arithmetic");
        assertArrayEquals(stats.counted(), trained.counted());
        assertArrayEquals(stats.correct(), trained.correct());
    }
}
