package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.model.Qwen2Model;
import java.io.IOException;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Greedy speculative decoding on the fixture: with any drafter the output is the target's greedy output token for
 * token, and an oracle drafter has every draft accepted.
 */
class SpecDecodeTest {
    static final int NEW = 25;
    static final int[] NO_EOS = {};

    static Qwen2Model target;
    static int[] taps;
    static int[] prompt;
    static int[] greedy;

    @BeforeAll
    static void load() throws IOException {
        target = SpecFixtures.target();
        taps = DraftConfig.defaultTaps(target.numLayers());
        prompt = SpecFixtures.prompt(12);
        greedy = new SpecDecode(target, taps, new SpecFixtures.Oracle(0, new int[0]))
                .plain(prompt, new SpecDecode.Settings(1, 0, NEW, NO_EOS), new SplittableRandom(0))
                .tokens();
        assertEquals(NEW, greedy.length);
    }

    @AfterAll
    static void close() {
        target.close();
    }

    @Test
    void greedyOutputWithARandomHeadIsTheTargetsForEveryK() {
        int v = target.config().vocabSize();
        // A full draft vocabulary, and one with every third target id only (d2t offsets, q = 0 elsewhere).
        for (DraftVocab vocab : new DraftVocab[] {SpecFixtures.strided(v, 0, 1), SpecFixtures.strided(v, 1, 3)}) {
            DraftHead head = SpecFixtures.randomHead(target.config(), vocab, 11);
            SpecDecode spec = new SpecDecode(target, taps, SpecFixtures.drafter(head, target));
            for (int k = 1; k <= 7; k++) {
                SpecDecode.Result r =
                        spec.generate(prompt, new SpecDecode.Settings(k, 0, NEW, NO_EOS), new SplittableRandom(0));
                assertArrayEquals(greedy, r.tokens(), "k = " + k + ", V_d = " + vocab.size());
                assertEquals(NEW - 1, r.roundTokens());
                for (int j = 0; j < k; j++) {
                    assertEquals(r.rounds(), r.proposed()[j]);
                    assertTrue(r.accepted()[j] <= r.reached()[j] && r.reached()[j] <= r.proposed()[j]);
                    if (j + 1 < k) {
                        assertEquals(r.accepted()[j], r.reached()[j + 1], "draft j+1 is reached when j is accepted");
                    }
                }
                long accepted = java.util.Arrays.stream(r.accepted()).sum();
                assertEquals(NEW - 1, r.rounds() + accepted, "each round emits its accepted drafts and one token");
            }
        }
    }

    @Test
    void anOracleDrafterHasEveryDraftAccepted() {
        for (int k = 1; k <= 7; k++) {
            int rounds = 3;
            int n = 1 + rounds * (k + 1);
            int[] continuation = new SpecDecode(target, taps, new SpecFixtures.Oracle(0, new int[0]))
                    .plain(prompt, new SpecDecode.Settings(1, 0, n + k + 1, NO_EOS), new SplittableRandom(0))
                    .tokens();
            SpecDecode spec = new SpecDecode(target, taps, new SpecFixtures.Oracle(prompt.length, continuation));
            SpecDecode.Result r =
                    spec.generate(prompt, new SpecDecode.Settings(k, 0, n, NO_EOS), new SplittableRandom(0));
            assertArrayEquals(java.util.Arrays.copyOf(continuation, n), r.tokens(), "k = " + k);
            assertEquals(rounds, r.rounds(), "k = " + k);
            assertEquals(rounds * (k + 1), r.roundTokens(), "τ = k + 1 exactly");
            for (int j = 0; j < k; j++) {
                assertEquals(rounds, r.reached()[j]);
                assertEquals(rounds, r.accepted()[j], "per-position acceptance 1 at j = " + j);
            }
        }
    }
}
