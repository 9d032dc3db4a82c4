package dev.m2q.cli;

import dev.m2q.eagle.train.DraftTraining;
import dev.m2q.eagle.train.TttObjective;

/** The command line's objective: ALGORITHMS §5's training-time test ({@link TttObjective}). */
final class TttObjectives {
    private TttObjectives() {}

    static DraftTraining.ObjectiveFactory forSteps(int tttSteps) {
        return (config, vocab, kernels) -> new TttObjective(config, vocab, tttSteps, kernels);
    }
}
