package dev.m2q.core.kernels;

import java.util.stream.IntStream;

/**
 * Splits an index range over the common fork-join pool when the work is large enough to pay for it. Each index
 * is handled by exactly one task, so results do not depend on the thread count.
 */
public final class Parallel {
    /** The body of a loop over [from, to). */
    @FunctionalInterface
    public interface Range {
        void run(int from, int to);
    }

    /**
     * About 10⁵ multiply-adds: below that the fork-join hand-off costs as much as the work (measured on 2 cores: a
     * decode step of the fixture, whose matrices are 256 wide, ran slower split at 2¹⁶ than on one thread).
     */
    private static final long MIN_WORK = 1 << 18;

    private Parallel() {}

    /** Runs {@code body} over [0, n), in parallel chunks when n × workPerItem is large. */
    public static void forRange(int n, long workPerItem, Range body) {
        int threads = Runtime.getRuntime().availableProcessors();
        if (threads == 1 || n < 2 || n * workPerItem < MIN_WORK) {
            body.run(0, n);
            return;
        }
        int chunks = Math.min(n, threads * 4);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            int from = (int) ((long) n * c / chunks);
            int to = (int) ((long) n * (c + 1) / chunks);
            body.run(from, to);
        });
    }
}
