package dev.m2q.validate;

import java.util.Arrays;

/**
 * A histogram on log-spaced bins, for values that span decades (per-token KL, 1e-6 … 1 nats).
 *
 * <p>Bins are {@link #BINS_PER_DECADE} per factor of ten, from {@code 10^lowerExp} to {@code 10^upperExp}. The lower
 * edge is the decade of the smallest positive value but never below {@link #FLOOR}; values under the lower edge —
 * zero, the small negatives that float round-off gives a KL, and anything tinier than the floor — are counted in the
 * first bin. Several series can share one set of edges ({@link #edgesFor}) so that their bars line up.
 *
 * @param edges {@code [bins + 1]}, ascending, {@code edges[i + 1] / edges[i] = 10^(1 / BINS_PER_DECADE)}
 * @param counts {@code [bins]}, values in {@code [edges[i], edges[i + 1])}; the last bin also holds {@code edges[bins]}
 * @param belowLower how many of the values in {@code counts[0]} were under {@code edges[0]}
 */
record LogHistogram(double[] edges, long[] counts, long belowLower) {
    static final int BINS_PER_DECADE = 8;
    /** Smallest lower edge: KL below 1e-6 nats is indistinguishable from zero for a 4-bit model. */
    static final double FLOOR = 1e-6;

    private static final int FLOOR_EXP = -6;

    LogHistogram {
        if (edges.length != counts.length + 1 || counts.length == 0) {
            throw new IllegalArgumentException(
                    "edges must have one more entry than counts, got " + edges.length + " and " + counts.length);
        }
    }

    /** Shared edges covering every value of every series, whole decades at both ends. */
    static double[] edgesFor(double[]... series) {
        double minPositive = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        for (double[] values : series) {
            for (double v : values) {
                if (v > 0) {
                    minPositive = Math.min(minPositive, v);
                }
                max = Math.max(max, v);
            }
        }
        int lowerExp = minPositive == Double.POSITIVE_INFINITY
                ? FLOOR_EXP
                : Math.max(FLOOR_EXP, (int) Math.floor(Math.log10(minPositive)));
        int upperExp = max > 0 ? (int) Math.ceil(Math.log10(max)) : lowerExp + 1;
        upperExp = Math.max(upperExp, lowerExp + 1);
        int bins = (upperExp - lowerExp) * BINS_PER_DECADE;
        double[] edges = new double[bins + 1];
        for (int i = 0; i <= bins; i++) {
            edges[i] = Math.pow(10, lowerExp + (double) i / BINS_PER_DECADE);
        }
        return edges;
    }

    /** Counts {@code values} into {@code edges}; values above the last edge are refused (the edges do not fit). */
    static LogHistogram of(double[] values, double[] edges) {
        int bins = edges.length - 1;
        double lowerExp = Math.log10(edges[0]);
        long[] counts = new long[bins];
        long below = 0;
        for (double v : values) {
            if (v > edges[bins]) {
                throw new IllegalArgumentException("value " + v + " is above the last edge " + edges[bins]);
            }
            if (v < edges[0]) {
                below++;
                counts[0]++;
                continue;
            }
            int i = (int) Math.floor((Math.log10(v) - lowerExp) * BINS_PER_DECADE);
            // log10 rounding can put a value sitting on an edge one bin off; settle it against the edges themselves.
            i = Math.clamp(i, 0, bins - 1);
            while (i > 0 && v < edges[i]) {
                i--;
            }
            while (i < bins - 1 && v >= edges[i + 1]) {
                i++;
            }
            counts[i]++;
        }
        return new LogHistogram(edges, counts, below);
    }

    int bins() {
        return counts.length;
    }

    long total() {
        return Arrays.stream(counts).sum();
    }

    static double mean(double[] values) {
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return sum / values.length;
    }

    /** Nearest-rank percentile: the smallest value with at least {@code p} percent of the values at or below it. */
    static double percentile(double[] values, double p) {
        if (!(p > 0 && p <= 100)) {
            throw new IllegalArgumentException("percentile must be in (0, 100], got " + p);
        }
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(p / 100 * sorted.length);
        return sorted[Math.max(rank, 1) - 1];
    }
}
