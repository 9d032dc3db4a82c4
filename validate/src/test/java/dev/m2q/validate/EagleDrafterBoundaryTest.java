package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.CountingKernels.OpCount;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Issue 14's budget for the EAGLE-3 drafter on the backend, counted by {@link CountingKernels} on the fixture target
 * and a seeded random head: the head's weights cross once; appending r rows moves their features and embedding rows
 * in, 4·r·(3H + H) bytes, and nothing out (the last row's hidden state stays resident); a chain of k proposals moves
 * k logits rows of the draft vocabulary out (4·k·V_d) and the k − 1 embedding rows it continues from in (4·(k − 1)·H).
 * And the proposals are those of the host-array draft step run by hand.
 */
class EagleDrafterBoundaryTest {
    static final List<String> CROSSINGS = List.of(
            "backend.wrap",
            "backend.write",
            "backend.read",
            "backend.take",
            "backend.inspect",
            "backend.update",
            "backend.weight");

    @Test
    void appendAndProposeMoveOnlyTheirInputsAndLogits() throws Exception {
        CountingKernels ck = new CountingKernels(SpecFixtures.K);
        try (Qwen2Model target = Qwen2Model.load(SpecFixtures.FIXTURE, ck);
                KvCache cache = target.newCache(32)) {
            int h = target.config().hiddenSize();
            DraftHead head = SpecFixtures.randomHead(
                    target.config(), SpecFixtures.strided(target.config().vocabSize(), 1, 3), 31);
            int vd = head.config().draftVocabSize();
            int[] taps = head.config().taps(target.numLayers());
            int[] prompt = SpecFixtures.prompt(9);
            int n = prompt.length;
            float[] features = target.forwardTapped(prompt, cache, taps).features();
            int f = features.length / n;
            assertEquals(3 * h, f);
            try (DraftModel draft = new DraftModel(head, ck);
                    EagleDrafter drafter = new EagleDrafter(draft, target)) {
                drafter.reset(32);
                drafter.append(Arrays.copyOf(features, (n - 2) * f), Arrays.copyOfRange(prompt, 1, n - 1), n - 2);
                // The target's 7 linears per layer and lm_head, then the head's fc, q, k, v, o, gate, up, down,
                // lm_head.
                assertEquals(
                        7L * target.numLayers() + 1 + 9,
                        ck.count("backend.weight").calls());

                ck.reset(false);
                drafter.append(Arrays.copyOfRange(features, (n - 2) * f, n * f), new int[] {prompt[n - 1], 17}, 2);
                assertEquals(4L * 2 * (3 * h + h), ck.total().bytesIn(), ck.table());
                assertEquals(0, ck.total().bytesOut(), ck.table());
                assertOnlyCrossingsMoveBytes(ck);

                int k = 5;
                ck.reset(false);
                SpecDecode.Proposal p = drafter.propose(k, 0, new SplittableRandom(1));
                assertEquals(4L * (k - 1) * h, ck.total().bytesIn(), ck.table());
                assertEquals(4L * k * vd, ck.total().bytesOut(), ck.table());
                assertEquals(0, ck.count("backend.weight").calls());
                assertOnlyCrossingsMoveBytes(ck);
                assertEquals(n, drafter.length());

                // The same chain on the host arrays, step by step: the same tokens.
                int[] want = hostChain(draft, target, features, prompt, k);
                assertArrayEquals(want, p.tokens());
            }
        }
    }

    /**
     * The chain through DraftModel's host-array forms on a fresh cache: the rows above in the same two pieces (so the
     * attention sums in the same blocking), then k greedy steps.
     */
    private static int[] hostChain(DraftModel draft, Qwen2Model target, float[] features, int[] prompt, int k) {
        int n = prompt.length;
        int h = draft.config().hiddenSize();
        int[] next = new int[n];
        System.arraycopy(prompt, 1, next, 0, n - 1);
        next[n - 1] = 17;
        try (DraftModel.Cache c = draft.newCache(32)) {
            int f = 3 * h;
            draft.step(
                    draft.project(Arrays.copyOf(features, (n - 2) * f), n - 2),
                    target.embed(Arrays.copyOf(next, n - 2)),
                    n - 2,
                    c);
            float[] out = draft.step(
                    draft.project(Arrays.copyOfRange(features, (n - 2) * f, n * f), 2),
                    target.embed(Arrays.copyOfRange(next, n - 2, n)),
                    2,
                    c);
            float[] x = Arrays.copyOfRange(out, h, 2 * h);
            int[] tokens = new int[k];
            for (int j = 0; j < k; j++) {
                float[] logits = draft.logits(x, 1);
                tokens[j] = draft.head().vocab().targetId(Sampler.argmax(logits, 0, logits.length));
                if (j + 1 < k) {
                    x = draft.step(x, target.embed(new int[] {tokens[j]}), 1, c);
                }
            }
            return tokens;
        }
    }

    private static void assertOnlyCrossingsMoveBytes(CountingKernels ck) {
        for (OpCount c : ck.counts()) {
            if (!CROSSINGS.contains(c.op())) {
                assertEquals(0, c.bytesIn() + c.bytesOut(), c.op() + " moved bytes:\n" + ck.table());
            }
        }
    }
}
