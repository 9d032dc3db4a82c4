package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.quant.Bits;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * GPTQ's clipping search (issue 17): the loop once per {@link ScaleRule}, each output row keeping the rule with the
 * least loop loss. Checked against each rule run alone, one output row at a time, which is also the claim the
 * search rests on: a row's codes, scales and loss do not depend on the other rows.
 */
class GptqClipSearchTest {
    /** W1 (permuted), U, perm and the unpermuted W1 of a seeded problem, prepared as {@link Gptq#quantize} does. */
    private record Prepared(float[] w1, float[] w1Original, float[] u, int[] perm, int n, int k, int g, int b) {}

    private static Prepared prepare(float[] w, float[] h, int n, int k, int g, int b, boolean actOrder, Kernels kern) {
        float[] wt = Gptq.transpose(w, n, k);
        int[] perm = actOrder ? ActOrder.permutation(h, k) : null;
        float[] w1 = perm == null ? wt.clone() : ActOrder.permuteRows(wt, k, n, perm);
        float[] hp = perm == null ? h : ActOrder.permuteSymmetric(h, k, perm);
        float[] u = DampedCholesky.factor(hp, k, 0.01, GptqKernels.of(kern)).hinvUpper();
        return new Prepared(w1, wt, u, perm, n, k, g, b);
    }

    /** The static scales of {@code rule} [K/G, N], computed on the unpermuted W1, as Gptq did before the search. */
    private static float[] staticScales(Prepared p, ScaleRule rule, Bits bits, Kernels kern) {
        float[] s = new float[p.k() / p.g() * p.n()];
        for (int gi = 0; gi < p.k() / p.g(); gi++) {
            GptqLoop.groupScales(kern, p.w1Original(), gi * p.g(), p.g(), p.n(), s, gi * p.n(), bits, rule);
        }
        return s;
    }

    /** Column c of a [rows, n] array, as [rows, 1]. */
    private static float[] column(float[] a, int rows, int n, int c) {
        float[] out = new float[rows];
        for (int r = 0; r < rows; r++) {
            out[r] = a[r * n + c];
        }
        return out;
    }

    private static int[] column(int[] a, int rows, int n, int c) {
        int[] out = new int[rows];
        for (int r = 0; r < rows; r++) {
            out[r] = a[r * n + c];
        }
        return out;
    }

    /**
     * For every output row c and every rule: the rule alone on the one-row problem (W1's column c). The search's row
     * c must be the codes and scales of the first rule with the least of those losses, bit for bit, and its total
     * the sum of those least losses in row order; with {@link ScaleRule#ABSMAX} alone on the whole problem the
     * search must be plain GPTQ's loop, bit for bit. Both CPU kernel sets.
     */
    @ParameterizedTest
    @CsvSource({
        "12, 64, 16, 8, false, false, 4",
        "10, 96, 32, 40, false, false, 4",
        "9, 64, 64, 16, false, false, 4",
        "12, 64, 16, 16, true, true, 4",
        "8, 96, 32, 32, true, false, 4",
        "12, 64, 16, 8, false, false, 8",
        "10, 64, 16, 16, true, true, 8"
    })
    void eachRowKeepsItsBestRuleBitForBit(
            int n, int k, int g, int b, boolean actOrder, boolean staticGroups, int bitsValue) {
        Bits bits = Bits.of(bitsValue);
        List<ScaleRule> rules = ScaleRule.CLIP_SEARCH;
        TreeSet<String> winners = new TreeSet<>();
        for (Kernels kern : new Kernels[] {ScalarKernels.INSTANCE, VectorKernels.INSTANCE}) {
            SplittableRandom rnd = new SplittableRandom(31L * n + k + g + bitsValue);
            float[] w = Fixtures.heavyTailedWeights(rnd, n, k);
            Prepared p = prepare(w, Fixtures.hessian(rnd, 2 * k, k), n, k, g, b, actOrder, kern);
            int groups = k / g;
            float[][] ruleStatic = new float[rules.size()][];
            for (int r = 0; r < rules.size(); r++) {
                ruleStatic[r] = staticGroups ? staticScales(p, rules.get(r), bits, kern) : null;
            }
            GptqCodes search = GptqLoop.run(
                    kern, new GptqProblem(p.w1().clone(), p.u(), k, n, g, b, p.perm(), ruleStatic[0], bits, true));

            double total = 0;
            for (int c = 0; c < n; c++) {
                float[] w1c = column(p.w1(), k, n, c);
                int best = -1;
                GptqCodes bestRow = null;
                for (int r = 0; r < rules.size(); r++) {
                    float[] st = staticGroups ? column(ruleStatic[r], groups, n, c) : null;
                    GptqCodes alone = GptqLoop.clipSearch(
                            kern,
                            new GptqProblem(w1c.clone(), p.u(), k, 1, g, b, p.perm(), st, bits, true),
                            List.of(rules.get(r)));
                    if (best < 0 || alone.errSquares() < bestRow.errSquares()) {
                        best = r;
                        bestRow = alone;
                    }
                }
                winners.add(rules.get(best).name());
                String where = kern + ", row " + c + ", rule " + rules.get(best).name();
                assertArrayEquals(bestRow.codes(), column(search.codes(), k, n, c), where);
                assertArrayEquals(bestRow.scales(), column(search.scales(), groups, n, c), where);
                total += bestRow.errSquares();
            }
            assertEquals(total, search.errSquares(), kern.toString()); // the same sum in the same order: bit for bit

            // The first rule alone is plain GPTQ, bit for bit (the rows of the whole problem at once).
            GptqCodes plain = GptqLoop.run(
                    kern, new GptqProblem(p.w1().clone(), p.u(), k, n, g, b, p.perm(), ruleStatic[0], bits, false));
            GptqCodes first = GptqLoop.clipSearch(
                    kern,
                    new GptqProblem(p.w1().clone(), p.u(), k, n, g, b, p.perm(), ruleStatic[0], bits, true),
                    List.of(ScaleRule.ABSMAX));
            assertArrayEquals(plain.codes(), first.codes());
            assertArrayEquals(plain.scales(), first.scales());
            assertArrayEquals(plain.gIdx(), first.gIdx());
            assertArrayEquals(plain.gIdx(), search.gIdx());
            assertEquals(plain.errSquares(), first.errSquares());
        }
        // Not vacuous: some row of the case keeps a rule other than plain GPTQ's.
        assertTrue(winners.size() > 1 || !winners.contains(ScaleRule.ABSMAX.name()), winners.toString());
    }

    /**
     * Through {@link Gptq#quantize}: the search's loop loss is never above plain GPTQ's nor the 2.4-norm search
     * alone's (the old {@code --clip-search}); per row the least of the rules' losses is kept, and round-to-nearest
     * addition is monotone, so the totals compare exactly, without a tolerance. And on these heavy-tailed weights
     * it is strictly below plain GPTQ's (the search does something).
     */
    @ParameterizedTest
    @CsvSource({
        "32, 128, 32, 32, false, false, 4",
        "32, 128, -1, 32, false, false, 4",
        "32, 128, 32, 32, true, true, 4",
        "32, 128, -1, 64, true, true, 4",
        "32, 128, 32, 32, true, false, 4",
        "24, 128, 32, 32, false, false, 8",
        "24, 128, 32, 32, true, true, 8"
    })
    void totalLossNotAbovePlainNorTheNormSearch(
            int n, int k, int g, int b, boolean actOrder, boolean staticGroups, int bitsValue) {
        SplittableRandom rnd = new SplittableRandom(7L * n + k + b + bitsValue + (actOrder ? 1 : 0));
        float[] w = Fixtures.heavyTailedWeights(rnd, n, k);
        float[] h = Fixtures.hessian(rnd, 2 * k, k);
        GptqOptions o = new GptqOptions(bitsValue, g, true, 0.01, b, actOrder, staticGroups, 0);
        GptqResult plain = Gptq.quantize(w, n, k, h, o);
        GptqResult search = Gptq.quantize(w, n, k, h, o.withClipSearch(true));
        assertTrue(search.proxyLoss() < plain.proxyLoss(), search.proxyLoss() + " vs plain " + plain.proxyLoss());

        // The 2.4-norm search alone, on the problem Gptq.quantize builds.
        Kernels kern = Kernels.fromProperty();
        int gs = g < 0 ? k : g;
        Prepared p = prepare(w, h, n, k, gs, b, actOrder, kern);
        boolean st = actOrder && staticGroups;
        float[] normStatic = st ? staticScales(p, ScaleRule.NORM_SEARCH, Bits.of(bitsValue), kern) : null;
        GptqCodes norm = GptqLoop.clipSearch(
                kern,
                new GptqProblem(p.w1(), p.u(), k, n, gs, b, p.perm(), normStatic, Bits.of(bitsValue), true),
                List.of(ScaleRule.NORM_SEARCH));
        assertTrue(
                search.proxyLoss() <= norm.errSquares() / n,
                search.proxyLoss() + " vs the 2.4-norm search " + norm.errSquares() / n);
        assertTrue(Arrays.stream(search.q().codes()).allMatch(c -> c >= 0 && c < (1 << bitsValue)));
    }
}
