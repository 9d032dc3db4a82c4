package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.ProgressListener;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.random.RandomGenerator;
import org.junit.jupiter.api.Test;

/**
 * The sweep's arithmetic (--k parsing, the α estimator and the speedup formula at values worked by hand) and its
 * schedule on the fixture: every k warmed before any is timed, then prompt by prompt.
 */
class SpecBenchTest {
    @Test
    void kListsAndRangesParse() {
        assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6, 7}, SpecBench.parseKs("1..7"));
        assertArrayEquals(new int[] {1, 3, 5}, SpecBench.parseKs("5,1,3"));
        assertArrayEquals(new int[] {1, 2, 3, 5}, SpecBench.parseKs("1..3, 5, 2"));
        for (String bad : new String[] {"0", "3..1", "x", "1..", "", "65"}) {
            assertThrows(InputException.class, () -> SpecBench.parseKs(bad), bad);
        }
    }

    @Test
    void theFormulaAtHandWorkedValues() {
        // α = 1/2, k = 2: τ = (1 − 1/8) / (1/2) = 7/4; with c = 1/4: 7/4 / (2/4 + 1) = 7/6. Exact in binary up to
        // the last rounding of each operation, hence 1e-15.
        assertEquals(1.75, SpecBench.predictedTau(0.5, 2), 1e-15);
        assertEquals(7.0 / 6, SpecBench.predictedSpeedup(0.5, 2, 0.25), 1e-15);
        assertEquals(4, SpecBench.predictedTau(1, 3));
        assertEquals(1, SpecBench.predictedTau(0, 5));
        // 3 of 4 first drafts and 1 of 3 second drafts accepted: α = 4 / 7.
        assertEquals(4.0 / 7, SpecBench.alphaOf(new long[] {4, 3}, new long[] {3, 1}), 1e-15);
        assertEquals(Double.NaN, SpecBench.alphaOf(new long[] {0, 0}, new long[] {0, 0}));
    }

    /** An oracle that notes the k of each run (the first proposal after a reset: each run prefills first). */
    private static final class Recording implements SpecDecode.Drafter {
        private final SpecFixtures.Oracle oracle;
        final List<Integer> runs = new ArrayList<>();
        private boolean fresh;

        Recording(SpecFixtures.Oracle oracle) {
            this.oracle = oracle;
        }

        @Override
        public void reset(int capacity) {
            oracle.reset(capacity);
            fresh = true;
        }

        @Override
        public void append(float[] features, int[] next, int rows) {
            oracle.append(features, next, rows);
        }

        @Override
        public SpecDecode.Proposal propose(int k, double temperature, RandomGenerator rng) {
            if (fresh) {
                runs.add(k);
                fresh = false;
            }
            return oracle.propose(k, temperature, rng);
        }

        @Override
        public int length() {
            return oracle.length();
        }

        @Override
        public void truncate(int length) {
            oracle.truncate(length);
        }
    }

    @Test
    void everyKIsWarmedThenEachPromptRunsPlainEveryKAndPlainAgain() throws IOException {
        int fresh = 9; // new tokens per run: with k = 1 four rounds of 2, with k = 3 two rounds of 4
        try (Qwen2Model target = SpecFixtures.target()) {
            int[] taps = DraftConfig.defaultTaps(target.numLayers());
            int[] prompt = SpecFixtures.prompt(10);
            int[] none = {};
            int[] continuation = new SpecDecode(target, taps, new SpecFixtures.Oracle(0, new int[0]))
                    .plain(prompt, new SpecDecode.Settings(1, 0, 64 + 8, none), new SplittableRandom(0))
                    .tokens();
            Recording drafter = new Recording(new SpecFixtures.Oracle(prompt.length, continuation));
            SpecDecode spec = new SpecDecode(target, taps, drafter);
            List<Long> units = new ArrayList<>();
            ProgressListener progress = new ProgressListener() {
                @Override
                public void units(String phase, long done, long total, String line) {
                    assertEquals(SpecBench.PHASE, phase);
                    assertEquals(8, total, "2 prompts × (2 plain runs + 2 ks)");
                    units.add(done);
                }
            };
            SpecBench.Outcome out =
                    SpecBench.measure(spec, List.of(prompt, prompt), new int[] {1, 3}, 0, fresh, 0, none, progress);

            // Three warm-up passes of every k, then the two prompts, each with every k: under the old schedule
            // (warm-up at the largest k only, then one k after another) this read [3, 3, 3, 1, 1, 3, 3].
            assertEquals(List.of(1, 3, 1, 3, 1, 3, 1, 3, 1, 3), drafter.runs);
            assertEquals(2L * (fresh - 1), out.baseline().tokens());
            assertEquals(2 * (fresh - 1), out.baseline().forwards());
            assertEquals(2, out.rows().size());
            for (SpecBench.Row r : out.rows()) {
                // The oracle's drafts are all accepted: each round emits k + 1 of the 8 tokens after the first.
                assertEquals(2 * 8 / (r.k() + 1), r.rounds(), "k = " + r.k());
                assertEquals(2L * (fresh - 1), r.emitted());
                assertEquals(2, r.greedyIdentical(), "k = " + r.k());
            }
            assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L), units);
        }
    }
}
