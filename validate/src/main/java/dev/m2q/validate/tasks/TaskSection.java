package dev.m2q.validate.tasks;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The {@code "tasks"} object of validation.json: what the statistics mean, one comparison per task and metric, the
 * pooled comparisons and the gate's verdicts. Built by {@link TaskReport#json} from the {@link TaskComparison}s and
 * read back by the report's markdown and the command's summary.
 *
 * @param method the statistics' definitions, in words
 * @param perTask per task and metric, in task order
 * @param overall the pooled comparisons, one per metric (empty with a single task)
 * @param gates the verdicts of {@code --max-acc-drop} (empty without it)
 */
public record TaskSection(
        Method method, @JsonProperty("per_task") List<Comparison> perTask, List<Comparison> overall, List<Gate> gates) {
    public TaskSection {
        Objects.requireNonNull(method, "method");
        perTask = List.copyOf(perTask);
        overall = List.copyOf(overall);
        gates = List.copyOf(gates);
    }

    /** The definitions the figures follow. */
    public record Method(
            @JsonProperty("accuracy_interval") String accuracyInterval,
            String delta,
            @JsonProperty("delta_interval") String deltaInterval,
            String mcnemar,
            String gate,
            String rtn) {}

    /**
     * One model's accuracy on the compared items.
     *
     * @param correct items answered correctly
     * @param accuracy correct / n (NaN, written null, when n = 0)
     * @param low the 95% Wilson interval's low end, as a fraction
     * @param high its high end
     * @param itemsPerSecond items scored per second of the model's wall time
     */
    public record ModelAccuracy(
            int correct,
            double accuracy,
            double low,
            double high,
            @JsonProperty("items_per_second") double itemsPerSecond) {}

    /**
     * A model against the reference, item by item (the RTN baseline's part of a comparison).
     *
     * @param deltaPoints Δ = model − reference, percentage points
     * @param deltaLow the paired bootstrap 95% interval's low end, points
     * @param deltaHigh its high end
     * @param mcnemarP McNemar's exact two-sided p-value
     * @param agreement the share of items where both chose the same answer
     * @param rightToWrong items right for the reference, wrong for the model
     * @param wrongToRight the reverse
     */
    public record Paired(
            @JsonProperty("delta_points") double deltaPoints,
            @JsonProperty("delta_low") double deltaLow,
            @JsonProperty("delta_high") double deltaHigh,
            @JsonProperty("mcnemar_p") double mcnemarP,
            double agreement,
            @JsonProperty("right_to_wrong") int rightToWrong,
            @JsonProperty("wrong_to_right") int wrongToRight,
            @JsonProperty("right_to_wrong_examples") List<String> rightToWrongExamples,
            @JsonProperty("wrong_to_right_examples") List<String> wrongToRightExamples) {
        public Paired {
            rightToWrongExamples = List.copyOf(rightToWrongExamples);
            wrongToRightExamples = List.copyOf(wrongToRightExamples);
        }
    }

    /**
     * The candidate (and the RTN baseline, when run) against the reference on one task, or on all tasks pooled,
     * under one metric; the fields are those of {@link TaskComparison}.
     *
     * @param rtn the RTN baseline's accuracy, or null when it was not run
     * @param rtnVsReference the RTN baseline against the reference, item by item, or null when it was not run
     */
    public record Comparison(
            String task,
            String metric,
            int n,
            ModelAccuracy reference,
            ModelAccuracy candidate,
            ModelAccuracy rtn,
            @JsonProperty("delta_points") double deltaPoints,
            @JsonProperty("delta_low") double deltaLow,
            @JsonProperty("delta_high") double deltaHigh,
            @JsonProperty("bootstrap_resamples") int resamples,
            @JsonProperty("bootstrap_seed") long seed,
            @JsonProperty("mcnemar_p") double mcnemarP,
            double agreement,
            @JsonProperty("right_to_wrong") int rightToWrong,
            @JsonProperty("wrong_to_right") int wrongToRight,
            @JsonProperty("right_to_wrong_examples") List<String> rightToWrongExamples,
            @JsonProperty("wrong_to_right_examples") List<String> wrongToRightExamples,
            @JsonProperty("rtn_vs_reference") Paired rtnVsReference) {
        public Comparison {
            Objects.requireNonNull(task, "task");
            Objects.requireNonNull(metric, "metric");
            Objects.requireNonNull(reference, "reference");
            Objects.requireNonNull(candidate, "candidate");
            rightToWrongExamples = List.copyOf(rightToWrongExamples);
            wrongToRightExamples = List.copyOf(wrongToRightExamples);
            if ((rtn == null) != (rtnVsReference == null)) {
                throw new IllegalArgumentException(
                        task + " (" + metric + "): rtn and rtn_vs_reference come together or not at all");
            }
        }

        /** Every figure that is not a finite number, each as a sentence naming the task, metric and figure. */
        public List<String> nonFinite() {
            List<String> out = new ArrayList<>();
            String where = "task " + task + " (" + metric + "): ";
            String[] names = rtn == null
                    ? new String[] {"reference", "candidate"}
                    : new String[] {"reference", "candidate", "rtn"};
            ModelAccuracy[] models = rtn == null
                    ? new ModelAccuracy[] {reference, candidate}
                    : new ModelAccuracy[] {reference, candidate, rtn};
            for (int i = 0; i < models.length; i++) {
                ModelAccuracy m = models[i];
                check(out, where + names[i] + " accuracy", m.accuracy());
                check(out, where + names[i] + " accuracy interval, low end", m.low());
                check(out, where + names[i] + " accuracy interval, high end", m.high());
                check(out, where + names[i] + " items/s", m.itemsPerSecond());
            }
            check(out, where + "Δ", deltaPoints);
            check(out, where + "Δ interval, low end", deltaLow);
            check(out, where + "Δ interval, high end", deltaHigh);
            check(out, where + "McNemar p", mcnemarP);
            check(out, where + "agreement", agreement);
            if (rtnVsReference != null) {
                check(out, where + "RTN Δ", rtnVsReference.deltaPoints());
                check(out, where + "RTN Δ interval, low end", rtnVsReference.deltaLow());
                check(out, where + "RTN Δ interval, high end", rtnVsReference.deltaHigh());
                check(out, where + "RTN McNemar p", rtnVsReference.mcnemarP());
            }
            return out;
        }

        private static void check(List<String> out, String what, double v) {
            if (!Double.isFinite(v)) {
                out.add(what + " is " + v + " (not a finite number)");
            }
        }
    }

    /**
     * One verdict of {@code --max-acc-drop}.
     *
     * @param gate "max-acc-drop"
     * @param limit the allowed drop, points
     * @param value the upper end of the drop's 95% interval, points (NaN, written null, when not a number)
     * @param sentence what the report prints
     */
    public record Gate(
            String gate, String task, String metric, double limit, double value, boolean passed, String sentence) {}

    /** The failed checks: every non-finite figure, then every failed gate's sentence. */
    public List<String> failures() {
        List<String> out = new ArrayList<>();
        perTask.forEach(c -> out.addAll(c.nonFinite()));
        overall.forEach(c -> out.addAll(c.nonFinite()));
        for (Gate g : gates) {
            if (!g.passed()) {
                out.add(g.sentence());
            }
        }
        return out;
    }
}
