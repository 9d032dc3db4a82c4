package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.validate.tasks.TaskStats.Interval;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The perplexity increase's paired bootstrap over windows. Where a value has a closed form it is compared to within
 * 1e-12 relative: every figure is a handful of double sums and one expm1, whose rounding is far below that.
 */
class PplStatsTest {
    private static final long SEED = 7;

    @Test
    void theIncreaseIsThePerplexityRatioLessOne() {
        double[] ref = {30.0, 41.5, 12.25};
        double[] nll = {30.3, 41.0, 12.75};
        int[] tokens = {10, 14, 5};
        double pplRef = Math.exp((30.0 + 41.5 + 12.25) / 29);
        double ppl = Math.exp((30.3 + 41.0 + 12.75) / 29);
        assertEquals(100 * (ppl / pplRef - 1), PplStats.increasePercent(ref, nll, tokens), 1e-12);
    }

    @Test
    void windowsThatAllShiftAlikeLeaveNoUncertainty() {
        // Every window's NLL rises by the same 0.01 nats per token: every draw gives the same increase.
        double[] ref = {20, 35, 50, 8};
        int[] tokens = {10, 16, 25, 4};
        double[] nll = new double[4];
        for (int w = 0; w < 4; w++) {
            nll[w] = ref[w] + 0.01 * tokens[w];
        }
        double point = 100 * Math.expm1(0.01);
        Interval i = PplStats.increaseInterval(ref, nll, tokens, 2000, SEED);
        assertEquals(point, PplStats.increasePercent(ref, nll, tokens), 1e-12 * point);
        assertEquals(point, i.low(), 1e-12 * point);
        assertEquals(point, i.high(), 1e-12 * point);
    }

    @Test
    void oneResampleIsOneSeededDrawOfAsManyWindows() {
        double[] ref = {10, 20, 30};
        double[] nll = {11, 19, 33};
        int[] tokens = {5, 10, 15};
        double[] draw = oneDraw(nll, ref, tokens);
        double want = 100 * Math.expm1(draw[0] / draw[1]);
        Interval i = PplStats.increaseInterval(ref, nll, tokens, 1, SEED);
        assertEquals(want, i.low(), 0.0, "the same draws and the same sums: bit for bit");
        assertEquals(want, i.high(), 0.0);
    }

    @Test
    void theIntervalIsAsWideAsTheWindowsSpreadSays() {
        // 400 windows of 256 predictions, each model's per-token NLL shift drawn around 0.002 nats with a spread of
        // 0.01 per window: the increase's standard error is about 100·0.01/√400 = 0.05 points, so a 95% interval is
        // about 0.196 points wide and holds the true 0.2002%. The percentile bootstrap's width matches the normal
        // one to within sampling error (a 10,000-draw bootstrap's percentiles move by ~2%); 15% is the bound.
        SplittableRandom data = new SplittableRandom(11);
        int m = 400;
        double[] ref = new double[m];
        double[] nll = new double[m];
        int[] tokens = new int[m];
        double sum = 0;
        double sumSq = 0;
        for (int w = 0; w < m; w++) {
            tokens[w] = 256;
            ref[w] = 256 * (2.5 + 0.1 * data.nextGaussian());
            double shift = 0.002 + 0.01 * data.nextGaussian();
            nll[w] = ref[w] + 256 * shift;
            sum += shift;
            sumSq += shift * shift;
        }
        double mean = sum / m;
        double sd = Math.sqrt((sumSq - m * mean * mean) / (m - 1));
        double normalWidth = 2 * 1.959963984540054 * 100 * sd / Math.sqrt(m);
        Interval i = PplStats.increaseInterval(ref, nll, tokens, 10_000, SEED);
        double point = PplStats.increasePercent(ref, nll, tokens);
        assertTrue(i.low() < point && point < i.high(), i + " around " + point);
        assertTrue(i.contains(100 * Math.expm1(0.002)), i + " holds the true increase");
        assertEquals(normalWidth, i.high() - i.low(), 0.15 * normalWidth);
        Interval again = PplStats.increaseInterval(ref, nll, tokens, 10_000, SEED);
        assertEquals(i, again, "the same seed draws the same windows");
        assertNotEquals(i, PplStats.increaseInterval(ref, nll, tokens, 10_000, SEED + 1), "another seed, others");
    }

    @Test
    void theDifferenceOfTwoModelsPairsTheirWindows() {
        double[] ref = {10, 20, 30, 40, 50};
        double[] a = {10.2, 20.1, 30.5, 40.2, 50.4};
        double[] b = {10.4, 20.0, 30.9, 40.6, 50.3};
        int[] tokens = {5, 10, 15, 20, 25};
        // Against a model that is the reference itself, the difference is the increase of the other, draw for draw.
        Interval self = PplStats.differenceInterval(ref, a, ref, tokens, 3000, SEED);
        Interval alone = PplStats.increaseInterval(ref, a, tokens, 3000, SEED);
        assertEquals(alone.low(), self.low(), 0.0);
        assertEquals(alone.high(), self.high(), 0.0);
        // Swapping the two models mirrors the interval (the same draws, negated; type-7 percentiles are symmetric).
        Interval ab = PplStats.differenceInterval(ref, a, b, tokens, 3000, SEED);
        Interval ba = PplStats.differenceInterval(ref, b, a, tokens, 3000, SEED);
        assertEquals(-ab.high(), ba.low(), 1e-12);
        assertEquals(-ab.low(), ba.high(), 1e-12);
        // Pairing makes it narrower than the two separate intervals' widths would suggest: a and b move together.
        Interval ib = PplStats.increaseInterval(ref, b, tokens, 3000, SEED);
        assertTrue(ab.high() - ab.low() < (alone.high() - alone.low()) + (ib.high() - ib.low()));
    }

    @Test
    void unpairedOrEmptyWindowsAreRefused() {
        assertThrows(
                IllegalArgumentException.class,
                () -> PplStats.increaseInterval(new double[2], new double[3], new int[] {1, 1}, 10, SEED));
        assertThrows(
                IllegalArgumentException.class,
                () -> PplStats.increaseInterval(new double[1], new double[1], new int[] {0}, 10, SEED));
        assertThrows(
                IllegalArgumentException.class,
                () -> PplStats.increaseInterval(new double[1], new double[1], new int[] {1}, 0, SEED));
        Interval none = PplStats.increaseInterval(new double[0], new double[0], new int[0], 10, SEED);
        assertTrue(Double.isNaN(none.low()) && Double.isNaN(none.high()));
        // A window whose NLL is NaN (a model that produced NaN logits there) leaves no interval, not one from the
        // draws that happened to miss it.
        double[] ref = {10, 20, 30};
        int[] tokens = {5, 5, 5};
        Interval nan = PplStats.increaseInterval(ref, new double[] {11, Double.NaN, 31}, tokens, 100, SEED);
        assertTrue(Double.isNaN(nan.low()) && Double.isNaN(nan.high()), nan.toString());
        Interval nanB = PplStats.differenceInterval(
                ref, new double[] {11, 21, 31}, new double[] {11, 21, Double.POSITIVE_INFINITY}, tokens, 100, SEED);
        assertTrue(Double.isNaN(nanB.low()) && Double.isNaN(nanB.high()), nanB.toString());
    }

    @Test
    void theMeanDifferenceIsPairedPerWindow() {
        double[] a = {0.5, 0.2, 0.9, 0.1};
        double[] b = {0.4, 0.3, 0.6, 0.1};
        int[] counts = {10, 20, 30, 5};
        // The same model twice: every draw differs by exactly 0.
        Interval none = PplStats.meanDifferenceInterval(a, a, counts, 500, SEED);
        assertEquals(0.0, none.low(), 0.0);
        assertEquals(0.0, none.high(), 0.0);
        // One resample is one seeded draw of as many windows, (Σ a − Σ b) / Σ counts over it.
        double[] draw = oneDraw(a, b, counts);
        Interval one = PplStats.meanDifferenceInterval(a, b, counts, 1, SEED);
        assertEquals(draw[0] / draw[1], one.low(), 0.0, "the same draws and sums: bit for bit");
        // Swapping the models mirrors the interval.
        Interval ab = PplStats.meanDifferenceInterval(a, b, counts, 2000, SEED);
        Interval ba = PplStats.meanDifferenceInterval(b, a, counts, 2000, SEED);
        assertEquals(-ab.high(), ba.low(), 1e-15);
        assertEquals(-ab.low(), ba.high(), 1e-15);
        assertThrows(
                IllegalArgumentException.class,
                () -> PplStats.meanDifferenceInterval(a, new double[3], counts, 10, SEED));
    }

    /**
     * The first resample of the bootstrap, replayed from its seed: as many windows as there are, drawn with
     * replacement, and {Σ (x − y), Σ n} over them.
     */
    private static double[] oneDraw(double[] x, double[] y, int[] n) {
        SplittableRandom rnd = new SplittableRandom(SEED);
        double d = 0;
        long count = 0;
        for (int i = 0; i < n.length; i++) {
            int w = rnd.nextInt(n.length);
            d += x[w] - y[w];
            count += n[w];
        }
        return new double[] {d, count};
    }
}
