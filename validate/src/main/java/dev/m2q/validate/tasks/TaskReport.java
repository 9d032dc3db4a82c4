package dev.m2q.validate.tasks;

import dev.m2q.core.json.Json;
import dev.m2q.validate.Plots;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The task-accuracy part of a validation report: the section of {@code validation.md}, the {@code "tasks"} object of
 * {@code validation.json} and the per-task accuracy plot, from the comparisons {@link TaskStats} built and the
 * verdicts of {@link AccuracyGate}.
 *
 * <p>As in {@code Report}, figures that are not finite numbers are written as {@code null} in the JSON and "–" in
 * the markdown, never thrown on, and {@link #failures} lists each of them as a failed check.
 */
public final class TaskReport {
    /** The plot's file name, beside validation.md. */
    public static final String PLOT = "validation-task-accuracy.png";

    private TaskReport() {}

    /**
     * The {@code "tasks"} object of validation.json: the statistics' definitions, one entry per comparison (per task
     * and metric), the pooled comparisons, and the gate's verdicts.
     *
     * @param comparisons per task and metric
     * @param overall the pooled comparisons, one per metric (may be empty)
     * @param gates the gate's verdicts (empty when {@code --max-acc-drop} was not given)
     */
    public static Map<String, Object> json(
            List<TaskComparison> comparisons, List<TaskComparison> overall, List<AccuracyGate.Result> gates) {
        Map<String, Object> j = new LinkedHashMap<>();
        Map<String, Object> method = new LinkedHashMap<>();
        method.put("accuracy_interval", "Wilson score, 95%");
        method.put("delta", "candidate - reference accuracy, percentage points");
        method.put("delta_interval", "paired bootstrap over items, percentile method, 95%");
        method.put("mcnemar", "exact two-sided binomial test on the discordant pairs, p = 1/2");
        method.put(
                "gate", "the upper end of the 95% interval of the drop (reference - candidate) must be <= the limit");
        j.put("method", method);
        j.put("per_task", comparisons.stream().map(TaskReport::comparison).toList());
        j.put("overall", overall.stream().map(TaskReport::comparison).toList());
        List<Map<String, Object>> g = new ArrayList<>();
        for (AccuracyGate.Result r : gates) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("gate", AccuracyGate.NAME);
            m.put("task", r.task());
            m.put("metric", r.metric());
            m.put("limit", Json.finiteOrNull(r.limit()));
            m.put("value", Json.finiteOrNull(r.value()));
            m.put("passed", r.passed());
            m.put("sentence", r.sentence());
            g.add(m);
        }
        j.put("gates", g);
        return j;
    }

    private static Map<String, Object> comparison(TaskComparison c) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("task", c.task());
        m.put("metric", c.metric());
        m.put("n", c.n());
        m.put("reference", model(c.reference()));
        m.put("candidate", model(c.candidate()));
        if (c.rtn() != null) {
            m.put("rtn", model(c.rtn()));
        }
        m.put("delta_points", Json.finiteOrNull(c.deltaPoints()));
        m.put("delta_low", Json.finiteOrNull(c.deltaInterval().low()));
        m.put("delta_high", Json.finiteOrNull(c.deltaInterval().high()));
        m.put("bootstrap_resamples", c.resamples());
        m.put("bootstrap_seed", c.seed());
        m.put("mcnemar_p", Json.finiteOrNull(c.mcnemarP()));
        m.put("agreement", Json.finiteOrNull(c.agreement()));
        m.put("right_to_wrong", c.rightToWrong());
        m.put("wrong_to_right", c.wrongToRight());
        m.put("right_to_wrong_examples", c.rightToWrongExamples());
        m.put("wrong_to_right_examples", c.wrongToRightExamples());
        return m;
    }

    private static Map<String, Object> model(TaskComparison.Model x) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("correct", x.correct());
        m.put("accuracy", Json.finiteOrNull(x.accuracy()));
        m.put("low", Json.finiteOrNull(x.interval().low()));
        m.put("high", Json.finiteOrNull(x.interval().high()));
        m.put("items_per_second", Json.finiteOrNull(x.itemsPerSecond()));
        return m;
    }

    /**
     * The failed checks of the task comparison: every figure that is not a finite number, then every gate that
     * failed (its sentence). Empty when all is well.
     */
    public static List<String> failures(
            List<TaskComparison> comparisons, List<TaskComparison> overall, List<AccuracyGate.Result> gates) {
        List<String> out = new ArrayList<>();
        comparisons.forEach(c -> out.addAll(c.nonFinite()));
        overall.forEach(c -> out.addAll(c.nonFinite()));
        for (AccuracyGate.Result r : gates) {
            if (!r.passed()) {
                out.add(r.sentence());
            }
        }
        return out;
    }

    /**
     * The section of validation.md, starting with its {@code ## Task accuracy} heading: one table per metric (per
     * task, then the pooled row), what the columns mean, the gate's sentences and the plot.
     *
     * @param plotted whether {@link #plot} wrote {@link #PLOT} (it is embedded only then)
     */
    public static String markdown(
            List<TaskComparison> comparisons,
            List<TaskComparison> overall,
            List<AccuracyGate.Result> gates,
            boolean plotted) {
        StringBuilder md = new StringBuilder("## Task accuracy\n\n");
        boolean rtn = comparisons.stream().anyMatch(c -> c.rtn() != null);
        int resamples = comparisons.isEmpty()
                ? TaskStats.DEFAULT_RESAMPLES
                : comparisons.getFirst().resamples();
        long seed = comparisons.isEmpty()
                ? TaskStats.DEFAULT_SEED
                : comparisons.getFirst().seed();
        md.append(fmt(
                "The reference%s answer the same items. Accuracy with its 95%% Wilson score"
                        + " interval; Δ = candidate − reference in percentage points, with a paired bootstrap 95%%"
                        + " interval (%d resamples of the items, seed %d, percentile method); McNemar's exact"
                        + " two-sided test on the items only one model got right; agreement = items where both chose"
                        + " the same answer; flips = items right for the reference and wrong for the candidate (r→w)"
                        + " and the reverse (w→r), with up to %d example ids; items/s = reference / candidate. The"
                        + " last row of each table pools every task's items.%n%n",
                rtn ? ", the candidate and the RTN baseline" : " and the candidate",
                resamples,
                seed,
                TaskStats.EXAMPLES));
        Set<String> metrics = new LinkedHashSet<>();
        comparisons.forEach(c -> metrics.add(c.metric()));
        overall.forEach(c -> metrics.add(c.metric()));
        for (String metric : metrics) {
            md.append("### ").append(metric).append("\n\n");
            md.append("| task | n | reference | candidate |");
            md.append(rtn ? " RTN |" : "");
            md.append(" Δ (points) | McNemar p | agreement | flips r→w | flips w→r | items/s |\n");
            md.append(
                    rtn
                            ? "|---|---|---|---|---|---|---|---|---|---|---|\n"
                            : "|---|---|---|---|---|---|---|---|---|---|\n");
            for (TaskComparison c : comparisons) {
                if (c.metric().equals(metric)) {
                    row(md, c, rtn, false);
                }
            }
            for (TaskComparison c : overall) {
                if (c.metric().equals(metric)) {
                    row(md, c, rtn, true);
                }
            }
            md.append('\n');
        }
        if (!gates.isEmpty()) {
            md.append("Gate: the drop is the reference's accuracy minus the candidate's; `--")
                    .append(AccuracyGate.NAME)
                    .append("` passes only when the upper end of its 95% interval is within the limit, so a drop that"
                            + " is merely not significant does not pass.\n\n");
            for (AccuracyGate.Result r : gates) {
                md.append("- ").append(r.sentence()).append('\n');
            }
            md.append('\n');
        }
        List<String> broken = new ArrayList<>();
        comparisons.forEach(c -> broken.addAll(c.nonFinite()));
        overall.forEach(c -> broken.addAll(c.nonFinite()));
        for (String b : broken) {
            md.append("- **fail**: ").append(b).append('\n');
        }
        if (!broken.isEmpty()) {
            md.append('\n');
        }
        if (plotted) {
            md.append("![task accuracy](").append(PLOT).append(")\n\n");
        } else if (!comparisons.isEmpty()) {
            md.append("No plot: some accuracies are not finite numbers (null in validation.json).\n\n");
        }
        return md.toString();
    }

    private static void row(StringBuilder md, TaskComparison c, boolean rtn, boolean pooled) {
        String name = escape(c.task());
        md.append("| ").append(pooled ? "**" + name + "**" : name);
        md.append(" | ").append(c.n());
        md.append(" | ").append(accuracy(c.reference()));
        md.append(" | ").append(accuracy(c.candidate()));
        if (rtn) {
            md.append(" | ").append(c.rtn() == null ? "–" : accuracy(c.rtn()));
        }
        md.append(" | ")
                .append(num(c.deltaPoints(), "%+.1f"))
                .append(" [")
                .append(num(c.deltaInterval().low(), "%+.1f"))
                .append(", ")
                .append(num(c.deltaInterval().high(), "%+.1f"))
                .append("]");
        md.append(" | ").append(num(c.mcnemarP(), "%.3g"));
        md.append(" | ").append(num(100 * c.agreement(), "%.1f%%"));
        md.append(" | ").append(flips(c.rightToWrong(), c.rightToWrongExamples()));
        md.append(" | ").append(flips(c.wrongToRight(), c.wrongToRightExamples()));
        md.append(" | ")
                .append(num(c.reference().itemsPerSecond(), "%.1f"))
                .append(" / ")
                .append(num(c.candidate().itemsPerSecond(), "%.1f"));
        md.append(" |\n");
    }

    private static String accuracy(TaskComparison.Model m) {
        return num(100 * m.accuracy(), "%.1f%%") + " [" + num(100 * m.interval().low(), "%.1f") + ", "
                + num(100 * m.interval().high(), "%.1f") + "]";
    }

    private static String flips(int count, List<String> examples) {
        if (examples.isEmpty()) {
            return Integer.toString(count);
        }
        StringBuilder s = new StringBuilder().append(count).append(" (");
        for (int i = 0; i < examples.size(); i++) {
            s.append(i == 0 ? "" : ", ")
                    .append('`')
                    .append(escape(examples.get(i)).replace("`", "'"))
                    .append('`');
        }
        return s.append(count > examples.size() ? ", …)" : ")").toString();
    }

    /** Whether every accuracy and interval the plot draws is a finite number. */
    public static boolean plottable(List<TaskComparison> comparisons) {
        if (comparisons.isEmpty()) {
            return false;
        }
        for (TaskComparison c : plotted(comparisons)) {
            for (TaskComparison.Model m : models(c)) {
                if (!Double.isFinite(m.accuracy()) || !m.interval().finite()) {
                    return false;
                }
            }
        }
        return true;
    }

    /**
     * Writes {@link #PLOT} into {@code dir}: for each task (in order) its first-listed metric, each model's accuracy
     * with its 95% Wilson interval. Call only when {@link #plottable} (the plot refuses NaN).
     *
     * @return the plot's path
     */
    public static Path plot(Path dir, List<TaskComparison> comparisons) throws IOException {
        List<TaskComparison> shown = plotted(comparisons);
        boolean rtn = shown.stream().allMatch(c -> c.rtn() != null);
        List<String> models = rtn ? List.of("reference", "candidate", "RTN") : List.of("reference", "candidate");
        double[][] acc = new double[models.size()][shown.size()];
        double[][] low = new double[models.size()][shown.size()];
        double[][] high = new double[models.size()][shown.size()];
        List<String> names = new ArrayList<>();
        Set<String> metrics = new LinkedHashSet<>();
        for (int t = 0; t < shown.size(); t++) {
            TaskComparison c = shown.get(t);
            names.add(c.task() + " (" + c.metric() + ", n=" + c.n() + ")");
            metrics.add(c.metric());
            List<TaskComparison.Model> ms = models(c);
            for (int m = 0; m < models.size(); m++) {
                TaskComparison.Model x = ms.get(m);
                acc[m][t] = 100 * x.accuracy();
                // Clamp round-off only: the Wilson interval contains its own point estimate mathematically.
                low[m][t] = Math.min(100 * x.interval().low(), acc[m][t]);
                high[m][t] = Math.max(100 * x.interval().high(), acc[m][t]);
            }
        }
        Path png = dir.resolve(PLOT);
        Plots.taskAccuracy(
                png,
                "Task accuracy",
                "95% Wilson intervals; metric " + String.join(", ", metrics),
                names,
                models,
                acc,
                low,
                high);
        return png;
    }

    private static List<TaskComparison> plotted(List<TaskComparison> comparisons) {
        Map<String, TaskComparison> first = new LinkedHashMap<>();
        for (TaskComparison c : comparisons) {
            first.putIfAbsent(c.task(), c);
        }
        return List.copyOf(first.values());
    }

    private static List<TaskComparison.Model> models(TaskComparison c) {
        return c.rtn() == null ? List.of(c.reference(), c.candidate()) : List.of(c.reference(), c.candidate(), c.rtn());
    }

    private static String escape(String s) {
        return s.replace("|", "\\|");
    }

    private static String num(double v, String f) {
        return Double.isFinite(v) ? fmt(f, v) : "–";
    }

    private static String fmt(String f, Object... args) {
        return String.format(Locale.ROOT, f, args);
    }
}
