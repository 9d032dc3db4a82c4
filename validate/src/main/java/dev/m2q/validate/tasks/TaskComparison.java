package dev.m2q.validate.tasks;

import java.util.ArrayList;
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
        List<String> wrongToRightExamples) {
    public TaskComparison {
        Objects.requireNonNull(task);
        Objects.requireNonNull(metric);
        Objects.requireNonNull(reference);
        Objects.requireNonNull(candidate);
        Objects.requireNonNull(deltaInterval);
        rightToWrongExamples = List.copyOf(rightToWrongExamples);
        wrongToRightExamples = List.copyOf(wrongToRightExamples);
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

    /**
     * Every figure of this comparison that is not a finite number, each as a sentence naming the task, metric and
     * figure; empty when all are finite. The report turns each into a failed check: a NaN accuracy or interval means
     * the scoring is broken (or the task is empty), and no claim can rest on it.
     */
    public List<String> nonFinite() {
        List<String> out = new ArrayList<>();
        String where = "task " + task + " (" + metric + "): ";
        for (Model m : rtn == null ? List.of(reference, candidate) : List.of(reference, candidate, rtn)) {
            check(out, where + m.name() + " accuracy", m.accuracy());
            check(
                    out,
                    where + m.name() + " accuracy interval, low end",
                    m.interval().low());
            check(
                    out,
                    where + m.name() + " accuracy interval, high end",
                    m.interval().high());
            check(out, where + m.name() + " items/s", m.itemsPerSecond());
        }
        check(out, where + "Δ", deltaPoints);
        check(out, where + "Δ interval, low end", deltaInterval.low());
        check(out, where + "Δ interval, high end", deltaInterval.high());
        check(out, where + "McNemar p", mcnemarP);
        check(out, where + "agreement", agreement());
        return out;
    }

    private static void check(List<String> out, String what, double v) {
        if (!Double.isFinite(v)) {
            out.add(what + " is " + v + " (not a finite number)");
        }
    }
}
