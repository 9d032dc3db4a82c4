package dev.m2q.cli;

import dev.m2q.core.InputException;
import dev.m2q.eagle.train.DraftTraining;

/**
 * The command line's objective: ALGORITHMS §5's training-time test. Its implementation (TttObjective) is not on this
 * branch yet; until it is wired here, {@code m2q eagle train} stops before any work with this reason.
 */
final class TttObjectives {
    private TttObjectives() {}

    static DraftTraining.ObjectiveFactory forSteps(int tttSteps) {
        return (config, vocab, kernels) -> {
            throw new InputException(
                    "m2q eagle train: this build has no training-time-test objective (TttObjective)" + " yet");
        };
    }
}
