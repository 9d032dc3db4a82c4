package dev.m2q.validate.tasks;

import java.util.List;
import java.util.Locale;

/**
 * The gate {@code --max-acc-drop POINTS}: a comparison passes only when the drop (reference − candidate accuracy,
 * in percentage points) is shown to be within POINTS, that is when the upper end of the 95% interval of the drop
 * (the paired bootstrap's, mirrored) is ≤ POINTS. A point estimate inside the limit is not enough: with few items its
 * interval is wide, and a small task cannot certify a small drop. A figure that is not a number fails.
 *
 * @param maxDropPoints the largest drop allowed, in percentage points (finite; may be negative to demand a gain)
 */
public record AccuracyGate(double maxDropPoints) {
    /** The gate's name, as the option spells it. */
    public static final String NAME = "max-acc-drop";

    public AccuracyGate {
        if (!Double.isFinite(maxDropPoints)) {
            throw new IllegalArgumentException(
                    "--" + NAME + " " + maxDropPoints + ": must be a finite number of points");
        }
    }

    /**
     * The gate's verdict on one comparison.
     *
     * @param task the comparison's task (or {@value TaskStats#OVERALL})
     * @param metric the comparison's metric
     * @param limit the allowed drop, points
     * @param value the upper end of the 95% interval of the drop, points (NaN when not a number)
     * @param passed whether {@code value ≤ limit}
     * @param sentence what the report prints
     */
    public record Result(String task, String metric, double limit, double value, boolean passed, String sentence) {}

    /** Applies the gate to each comparison, in order (for example every task's primary metric, then the pooled one). */
    public List<Result> check(List<TaskComparison> comparisons) {
        return comparisons.stream().map(this::check).toList();
    }

    /** Applies the gate to one comparison. */
    public Result check(TaskComparison c) {
        double upper = c.dropInterval().high();
        boolean passed = Double.isFinite(upper) && upper <= maxDropPoints;
        String sentence;
        if (!Double.isFinite(upper)) {
            sentence = String.format(
                    Locale.ROOT,
                    "%s (%s): `--%s %s` gates on the upper end of the 95%% interval of the drop: it is %s (not a"
                            + " number), so the drop is not shown to be within %s points: **fail**",
                    c.task(),
                    c.metric(),
                    NAME,
                    points(maxDropPoints),
                    upper,
                    points(maxDropPoints));
        } else {
            sentence = String.format(
                    Locale.ROOT,
                    "%s (%s): `--%s %s` gates on the upper end of the 95%% interval of the drop: the drop is %s points"
                            + " [%s, %s], upper end %s %s %s, so the drop is %s within %s points: %s",
                    c.task(),
                    c.metric(),
                    NAME,
                    points(maxDropPoints),
                    points(-c.deltaPoints()),
                    points(c.dropInterval().low()),
                    points(upper),
                    points(upper),
                    passed ? "≤" : ">",
                    points(maxDropPoints),
                    passed ? "shown to be" : "not shown to be",
                    points(maxDropPoints),
                    passed ? "pass" : "**fail**");
        }
        return new Result(c.task(), c.metric(), maxDropPoints, upper, passed, sentence);
    }

    private static String points(double v) {
        return String.format(Locale.ROOT, "%.2f", v + 0.0); // + 0.0 turns −0 into 0
    }
}
