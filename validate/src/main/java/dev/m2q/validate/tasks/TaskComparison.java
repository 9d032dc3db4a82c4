package dev.m2q.validate.tasks;

import java.util.List;
import java.util.Objects;

/**
 * A candidate against the reference on one task (or {@value TaskStats#OVERALL}, all tasks pooled) under one metric:
 * everything the report prints. Built by {@link TaskStats#compare} and {@link TaskStats#overall}.
 *
 * @param task the task's name, or {@value TaskStats#OVERALL}
 * @param metric "acc", "acc_norm", "acc_bytes" or "exact_match"
 * @param n paired items
 * @param reference the reference's accuracy
 * @param candidate the candidate's accuracy
 * @param rtn the RTN baseline's accuracy on the same items, or null when it was not run
 * @param deltaPoints Δ = candidate − reference accuracy, in percentage points (NaN when n = 0)
 * @param deltaInterval the paired bootstrap 95% interval of Δ, in points
 * @param resamples the bootstrap's resamples
 * @param seed the bootstrap's seed
 * @param mcnemarP McNemar's exact two-sided p-value on the discordant pairs
 * @param agreed items where both models chose the same answer (a generative output with no extracted answer agrees
 *     with nothing)
 * @param rightToWrong items the reference got right and the candidate wrong (McNemar's b)
 * @param wrongToRight items the reference got wrong and the candidate right (McNemar's c)
 * @param rightToWrongExamples the first (up to {@value TaskStats#EXAMPLES}) such item ids, in item order
 * @param wrongToRightExamples likewise for wrong → right
 * @param rtnPaired the RTN baseline against the reference on the same items (Δ, its interval, McNemar, agreement,
 *     flips), or null when it was not run
 */
public record TaskComparison(
        String task,
        String metric,
        int n,
        Model reference,
        Model candidate,
        Model rtn,
        double deltaPoints,
        TaskStats.Interval deltaInterval,
        int resamples,
        long seed,
        double mcnemarP,
        int agreed,
        int rightToWrong,
        int wrongToRight,
        List<String> rightToWrongExamples,
        List<String> wrongToRightExamples,
        Paired rtnPaired) {
    public TaskComparison {
        Objects.requireNonNull(task);
        Objects.requireNonNull(metric);
        Objects.requireNonNull(reference);
        Objects.requireNonNull(candidate);
        Objects.requireNonNull(deltaInterval);
        rightToWrongExamples = List.copyOf(rightToWrongExamples);
        wrongToRightExamples = List.copyOf(wrongToRightExamples);
        if ((rtn == null) != (rtnPaired == null)) {
            throw new IllegalArgumentException("an RTN run comes with its paired comparison, and only then");
        }
    }

    /**
     * A second model against the reference on the same items, item by item: the figures the report gives the
     * candidate, here for the RTN baseline.
     *
     * @param deltaPoints Δ = model − reference accuracy, percentage points (NaN when n = 0)
     * @param deltaInterval the paired bootstrap 95% interval of Δ, points (same resamples and seed)
     * @param mcnemarP McNemar's exact two-sided p-value on the discordant pairs
     * @param agreed items where both chose the same answer
     * @param rightToWrong items right for the reference and wrong for this model
     * @param wrongToRight the reverse
     * @param rightToWrongExamples the first such ids, in item order
     * @param wrongToRightExamples likewise
     */
    public record Paired(
            double deltaPoints,
            TaskStats.Interval deltaInterval,
            double mcnemarP,
            int agreed,
            int rightToWrong,
            int wrongToRight,
            List<String> rightToWrongExamples,
            List<String> wrongToRightExamples) {
        public Paired {
            Objects.requireNonNull(deltaInterval);
            rightToWrongExamples = List.copyOf(rightToWrongExamples);
            wrongToRightExamples = List.copyOf(wrongToRightExamples);
        }
    }

    /**
     * One model's accuracy on the compared items.
     *
     * @param name "reference", "candidate" or "rtn"
     * @param correct items answered correctly
     * @param n items
     * @param accuracy correct / n as a fraction (NaN when n = 0)
     * @param interval the 95% Wilson interval of the accuracy, as fractions
     * @param itemsPerSecond items scored per second of this model's wall time (NaN when no time was recorded)
     */
    public record Model(
            String name, int correct, int n, double accuracy, TaskStats.Interval interval, double itemsPerSecond) {
        public Model {
            Objects.requireNonNull(name);
            Objects.requireNonNull(interval);
        }
    }

    /** The share of items where both models chose the same answer (NaN when n = 0). */
    public double agreement() {
        return n == 0 ? Double.NaN : (double) agreed / n;
    }

    /**
     * The 95% interval of the drop = reference − candidate, in points: Δ's bootstrap interval mirrored. Its upper end
     * is what {@link AccuracyGate} compares with {@code --max-acc-drop}.
     */
    public TaskStats.Interval dropInterval() {
        return new TaskStats.Interval(-deltaInterval.high(), -deltaInterval.low());
    }
}
