package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Percentile clipping against an exact sort of the same values. */
class AbsHistogramTest {
    @Test
    void thresholdBracketsTheExactPercentileAndCountsWhatItCuts() {
        SplittableRandom r = new SplittableRandom(42);
        int n = 200_003;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            // Heavy-tailed, like a down_proj input: Cauchy-distributed values of both signs.
            x[i] = (float) Math.tan(Math.PI * (r.nextDouble() - 0.5));
        }
        AbsHistogram h = new AbsHistogram();
        h.add(x, n / 2);
        h.add(Arrays.copyOfRange(x, n / 2, n), n - n / 2);
        assertEquals(n, h.total());
        float[] abs = new float[n];
        for (int i = 0; i < n; i++) {
            abs[i] = Math.abs(x[i]);
        }
        Arrays.sort(abs);
        for (double p : new double[] {50, 99, 99.9, 99.99, 100}) {
            AbsHistogram.Clip c = h.clip(p);
            int rank = (int) Math.max(1, Math.ceil(p / 100 * n));
            float exact = abs[rank - 1]; // nearest-rank percentile
            // The threshold is the top of the 2^-10-wide bin holding the exact percentile: never below it and at
            // most one bin (0.1% relative, plus one float step) above.
            assertTrue(c.threshold() >= exact, p + ": " + c.threshold() + " < " + exact);
            assertTrue(c.threshold() <= exact * (1 + 0x1p-10) + Math.ulp(exact), p + ": " + c.threshold());
            long above = 0;
            for (float a : abs) {
                if (a > c.threshold()) {
                    above++;
                }
            }
            assertEquals(above, c.above(), "values beyond the threshold, exactly: " + p);
            assertTrue(c.fraction() <= 1 - p / 100 + 1e-12, p + ": " + c.fraction());
        }
        assertEquals(0, h.clip(100).above());
    }
}
