package dev.m2q.autoround;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Which calibration sequences each SignRound step uses: epochs of a seeded shuffle, consumed {@code batchSize} at a
 * time, so every sequence is used once before any is reused (AutoRound's index sampler does the same). The order
 * starts as a Fisher–Yates shuffle of 0..n−1 drawn from {@code new SplittableRandom(seed)} (i from n−1 down to 1,
 * swap with nextInt(i + 1)); when fewer than {@code batchSize} indices remain, the whole order is shuffled again
 * the same way and consumption restarts at its front.
 */
final class BatchSampler {
    private final int[] order;
    private final int batchSize;
    private final SplittableRandom random;
    private int next;

    BatchSampler(int samples, int batchSize, long seed) {
        if (batchSize < 1 || batchSize > samples) {
            throw new IllegalArgumentException(
                    "a batch of " + batchSize + " sequences cannot be drawn from " + samples + " calibration samples");
        }
        this.order = new int[samples];
        for (int i = 0; i < samples; i++) {
            order[i] = i;
        }
        this.batchSize = batchSize;
        this.random = new SplittableRandom(seed);
        shuffle();
    }

    /** The next batch's sample indices. */
    int[] next() {
        if (next + batchSize > order.length) {
            shuffle();
        }
        int[] batch = Arrays.copyOfRange(order, next, next + batchSize);
        next += batchSize;
        return batch;
    }

    private void shuffle() {
        for (int i = order.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        next = 0;
    }
}
