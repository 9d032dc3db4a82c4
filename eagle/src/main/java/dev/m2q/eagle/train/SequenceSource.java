package dev.m2q.eagle.train;

/**
 * The training sequences by index, each with the target's features: computed on demand (online, from the target's
 * forward), so nothing the size of the data set is held.
 */
@FunctionalInterface
public interface SequenceSource {
    TrainingSequence sequence(int index);
}
