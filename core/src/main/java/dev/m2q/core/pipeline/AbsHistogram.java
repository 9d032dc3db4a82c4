package dev.m2q.core.pipeline;

/**
 * Counts of |x| over every calibration value of one tensor, for percentile clipping ({@code --act-clip}). A bin holds
 * 2^13 consecutive non-negative float bit patterns, so within a binade each bin is 2^-10 of the binade wide (0.1%
 * relative); 2^18 bins cover every float magnitude. Counts are exact longs, so the fraction of values beyond a bin
 * edge is exact.
 */
final class AbsHistogram {
    private static final int SHIFT = 13;

    private final long[] counts = new long[1 << (31 - SHIFT)];
    private long total;

    /**
     * A clipping threshold and what it cuts.
     *
     * @param threshold the upper edge of the bin holding the percentile: the largest float in it, so at most 0.1%
     *     above the exact percentile and never below it
     * @param above how many values lie strictly above the threshold, exactly
     * @param total how many values were counted
     */
    record Clip(float threshold, long above, long total) {
        double fraction() {
            return (double) above / total;
        }
    }

    /** Counts x[0 .. n). */
    void add(float[] x, int n) {
        for (int i = 0; i < n; i++) {
            counts[(Float.floatToRawIntBits(x[i]) & 0x7FFFFFFF) >>> SHIFT]++;
        }
        total += n;
    }

    long total() {
        return total;
    }

    /**
     * The threshold at {@code percentile}: the upper edge of the first bin at which the count of |x| at or below
     * reaches ⌈percentile/100 · total⌉ (at least one value).
     */
    Clip clip(double percentile) {
        if (total == 0) {
            throw new IllegalStateException("no values counted");
        }
        long need = Math.max(1, (long) Math.ceil(percentile / 100 * total));
        long seen = 0;
        for (int b = 0; b < counts.length; b++) {
            seen += counts[b];
            if (seen >= need) {
                return new Clip(Float.intBitsToFloat(((b + 1) << SHIFT) - 1), total - seen, total);
            }
        }
        throw new IllegalStateException("the counts do not add up to the total");
    }
}
