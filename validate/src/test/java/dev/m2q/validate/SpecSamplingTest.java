package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;
import java.io.IOException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.random.RandomGenerator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Speculative sampling (T > 0) keeps the target's distribution: many seeded runs of the first three new tokens of
 * one prompt (the first drawn from the prefill, the next two through draft rounds with k = 1: acceptance, the
 * residual max(0, p − q) after a rejection, and the bonus after an acceptance all occur) are compared with the
 * target's exact probabilities p(x1)·p(x2 | x1)·p(x3 | x1, x2).
 *
 * <p>The check: the total variation between the empirical and the exact distribution over categories (the likely
 * triples, and "anything else" lumped) must stay below E + ε with E = ½ Σ_c √(P_c(1 − P_c)/N) ≥ E[TV] (Jensen, per
 * category) and ε = √(ln(10⁶) / 2N): one sample moves TV by at most 1/N, so by McDiarmid's inequality a correct
 * sampler exceeds the bound with probability below 10⁻⁶. A sampler that always accepts the drafts emits the
 * drafter's distribution instead, and the same check fails it.
 */
class SpecSamplingTest {
    static final double T = 0.8;
    static final int N = 1200;
    static final int[] NO_EOS = {};
    static final SpecDecode.Settings SETTINGS = new SpecDecode.Settings(1, T, 3, NO_EOS);

    static Qwen2Model target;
    static int[] taps;
    static int[] prompt;
    static int vocab;
    static Map<Long, Double> exact;

    @BeforeAll
    static void load() throws IOException {
        target = SpecFixtures.target();
        taps = DraftConfig.defaultTaps(target.numLayers());
        prompt = SpecFixtures.prompt(10);
        vocab = target.config().vocabSize();
        exact = exactTriples();
    }

    @AfterAll
    static void close() {
        target.close();
    }

    /** P(x1, x2, x3) for every triple above 1e-3, each factor from a fresh target forward over its context. */
    static Map<Long, Double> exactTriples() {
        Map<Long, Double> out = new HashMap<>();
        double[] p1 = next(prompt);
        for (int a = 0; a < vocab; a++) {
            if (p1[a] < 1e-2) {
                continue;
            }
            double[] p2 = next(append(prompt, a));
            for (int b = 0; b < vocab; b++) {
                if (p1[a] * p2[b] < 3e-3) {
                    continue;
                }
                double[] p3 = next(append(append(prompt, a), b));
                for (int c = 0; c < vocab; c++) {
                    double pr = p1[a] * p2[b] * p3[c];
                    if (pr >= 1e-3) {
                        out.put(key(a, b, c), pr);
                    }
                }
            }
        }
        return out;
    }

    static double[] next(int[] context) {
        float[] logits = target.forward(context, target.newCache(context.length), true);
        return Sampler.softmax(logits, 0, vocab, T);
    }

    static int[] append(int[] a, int x) {
        int[] b = Arrays.copyOf(a, a.length + 1);
        b[a.length] = x;
        return b;
    }

    static long key(int a, int b, int c) {
        return ((long) a * vocab + b) * vocab + c;
    }

    /** Total variation to {@link #exact} of {@code N} runs, and the bound a correct sampler stays under. */
    record Check(double tv, double bound, long accepted, long rejected) {}

    static Check run(SpecDecode spec) {
        SpecDecode.Prefilled pre = spec.prefill(prompt, SpecDecode.capacity(prompt.length, SETTINGS));
        Map<Long, Integer> counts = new HashMap<>();
        long accepted = 0;
        long reached = 0;
        RandomGenerator rng = new SplittableRandom(20260101);
        for (int i = 0; i < N; i++) {
            SpecDecode.Result r = spec.generate(pre, SETTINGS, rng);
            int[] t = r.tokens();
            counts.merge(key(t[0], t[1], t[2]), 1, Integer::sum);
            accepted += r.accepted()[0];
            reached += r.reached()[0];
        }
        double tv = 0;
        double mean = 0;
        double other = 1;
        int inOther = N;
        for (var e : exact.entrySet()) {
            double p = e.getValue();
            int c = counts.getOrDefault(e.getKey(), 0);
            tv += Math.abs(c / (double) N - p);
            mean += Math.sqrt(p * (1 - p) / N);
            other -= p;
            inOther -= c;
        }
        tv += Math.abs(inOther / (double) N - other);
        mean += Math.sqrt(other * (1 - other) / N);
        return new Check(tv / 2, mean / 2 + Math.sqrt(Math.log(1e6) / (2 * N)), accepted, reached - accepted);
    }

    @Test
    void aRandomHeadSamplesTheTargetsDistribution() {
        DraftHead head = SpecFixtures.randomHead(target.config(), SpecFixtures.strided(vocab, 0, 2), 5);
        Check c = run(new SpecDecode(target, taps, SpecFixtures.drafter(head, target)));
        assertTrue(c.tv() < c.bound(), c.toString());
        // Both branches ran: a random head's drafts are mostly rejected (about 3% accepted with this seed).
        assertTrue(c.accepted() > 20 && c.rejected() > 20, c.toString());
    }

    @Test
    void alwaysAcceptingFails() {
        DraftHead head = SpecFixtures.randomHead(target.config(), SpecFixtures.strided(vocab, 0, 2), 5);
        SpecDecode.Verifier wrong = (logits, v, d, temperature, rng) -> new SpecDecode.Verdict(
                d.tokens().length, Sampler.choose(logits, d.tokens().length * v, v, temperature, rng));
        Check c = run(new SpecDecode(target, taps, SpecFixtures.drafter(head, target), wrong));
        assertTrue(c.tv() > c.bound(), c.toString());
    }
}
