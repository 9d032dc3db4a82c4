package dev.m2q.validate.tasks;

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
    public static TaskSection json(
            List<TaskComparison> comparisons, List<TaskComparison> overall, List<AccuracyGate.Result> gates) {
        TaskSection.Method method = new TaskSection.Method(
                "Wilson score, 95%",
                "candidate - reference accuracy, percentage points",
                "paired bootstrap over items, percentile method, 95%",
                "exact two-sided binomial test on the discordant pairs, p = 1/2",
                "the upper end of the 95% interval of the drop (reference - candidate) must be <= the limit",
                "rtn_vs_reference: the RTN baseline against the reference with the same statistics (Δ = rtn -"
                        + " reference, same resamples and seed)");
        List<TaskSection.Gate> g = new ArrayList<>();
        for (AccuracyGate.Result r : gates) {
            g.add(new TaskSection.Gate(
                    AccuracyGate.NAME, r.task(), r.metric(), r.limit(), r.value(), r.passed(), r.sentence()));
        }
        return new TaskSection(
                method,
                comparisons.stream().map(TaskReport::comparison).toList(),
                overall.stream().map(TaskReport::comparison).toList(),
                g);
    }

    static TaskSection.Comparison comparison(TaskComparison c) {
        TaskComparison.Paired p = c.rtnPaired();
        return new TaskSection.Comparison(
                c.task(),
                c.metric(),
                c.n(),
                model(c.reference()),
                model(c.candidate()),
                c.rtn() == null ? null : model(c.rtn()),
                c.deltaPoints(),
                c.deltaInterval().low(),
                c.deltaInterval().high(),
                c.resamples(),
                c.seed(),
                c.mcnemarP(),
                c.agreement(),
                c.rightToWrong(),
                c.wrongToRight(),
                c.rightToWrongExamples(),
                c.wrongToRightExamples(),
                p == null
                        ? null
                        : new TaskSection.Paired(
                                p.deltaPoints(),
                                p.deltaInterval().low(),
                                p.deltaInterval().high(),
                                p.mcnemarP(),
                                c.n() == 0 ? Double.NaN : (double) p.agreed() / c.n(),
                                p.rightToWrong(),
                                p.wrongToRight(),
                                p.rightToWrongExamples(),
                                p.wrongToRightExamples()));
    }

    private static TaskSection.ModelAccuracy model(TaskComparison.Model x) {
        return new TaskSection.ModelAccuracy(
                x.correct(), x.accuracy(), x.interval().low(), x.interval().high(), x.itemsPerSecond());
    }

    /**
     * The failed checks of the task comparison: every figure that is not a finite number, then every gate that
     * failed (its sentence). Empty when all is well.
     */
    public static List<String> failures(
            List<TaskComparison> comparisons, List<TaskComparison> overall, List<AccuracyGate.Result> gates) {
        return json(comparisons, overall, gates).failures();
    }

    /** {@link #markdown(TaskSection, boolean)} of the comparisons' {@link #json}. */
    public static String markdown(
            List<TaskComparison> comparisons,
            List<TaskComparison> overall,
            List<AccuracyGate.Result> gates,
            boolean plotted) {
        return markdown(json(comparisons, overall, gates), plotted);
    }

    /**
     * The section of validation.md, starting with its {@code ## Task accuracy} heading: one table per metric (per
     * task, then the pooled row), with the RTN baseline's own paired table when it ran, what the columns mean, the
     * gate's sentences and the plot.
     *
     * @param plotted whether {@link #plot} wrote {@link #PLOT} (it is embedded only then)
     */
    public static String markdown(TaskSection t, boolean plotted) {
        List<TaskSection.Comparison> comparisons = t.perTask();
        List<TaskSection.Comparison> overall = t.overall();
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
                        + " last row of each table pools every task's items.%s%n%n",
                rtn ? ", the candidate and the RTN baseline" : " and the candidate",
                resamples,
                seed,
                TaskStats.EXAMPLES,
                rtn
                        ? " The RTN baseline gets the same paired comparison with the reference in its own table"
                                + " (Δ = RTN − reference)."
                        : ""));
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
            for (TaskSection.Comparison c : comparisons) {
                if (c.metric().equals(metric)) {
                    row(md, c, rtn, false);
                }
            }
            for (TaskSection.Comparison c : overall) {
                if (c.metric().equals(metric)) {
                    row(md, c, rtn, true);
                }
            }
            md.append('\n');
            if (rtn) {
                md.append("RTN baseline against the reference (").append(metric).append("):\n\n");
                md.append(
                        "| task | n | reference | RTN | Δ (points) | McNemar p | agreement | flips r→w | flips w→r |\n");
                md.append("|---|---|---|---|---|---|---|---|---|\n");
                for (TaskSection.Comparison c : comparisons) {
                    if (c.metric().equals(metric) && c.rtnVsReference() != null) {
                        rtnRow(md, c, false);
                    }
                }
                for (TaskSection.Comparison c : overall) {
                    if (c.metric().equals(metric) && c.rtnVsReference() != null) {
                        rtnRow(md, c, true);
                    }
                }
                md.append('\n');
            }
        }
        if (!t.gates().isEmpty()) {
            md.append("Gate: the drop is the reference's accuracy minus the candidate's; `--")
                    .append(AccuracyGate.NAME)
                    .append("` passes only when the upper end of its 95% interval is within the limit, so a drop that"
                            + " is merely not significant does not pass.\n\n");
            for (TaskSection.Gate g : t.gates()) {
                md.append("- ").append(g.sentence()).append('\n');
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

    private static void row(StringBuilder md, TaskSection.Comparison c, boolean rtn, boolean pooled) {
        String name = escape(c.task());
        md.append("| ").append(pooled ? "**" + name + "**" : name);
        md.append(" | ").append(c.n());
        md.append(" | ").append(accuracy(c.reference()));
        md.append(" | ").append(accuracy(c.candidate()));
        if (rtn) {
            md.append(" | ").append(c.rtn() == null ? "–" : accuracy(c.rtn()));
        }
        md.append(" | ").append(delta(c.deltaPoints(), c.deltaLow(), c.deltaHigh()));
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

    private static void rtnRow(StringBuilder md, TaskSection.Comparison c, boolean pooled) {
        TaskSection.Paired p = c.rtnVsReference();
        String name = escape(c.task());
        md.append("| ").append(pooled ? "**" + name + "**" : name);
        md.append(" | ").append(c.n());
        md.append(" | ").append(accuracy(c.reference()));
        md.append(" | ").append(accuracy(c.rtn()));
        md.append(" | ").append(delta(p.deltaPoints(), p.deltaLow(), p.deltaHigh()));
        md.append(" | ").append(num(p.mcnemarP(), "%.3g"));
        md.append(" | ").append(num(100 * p.agreement(), "%.1f%%"));
        md.append(" | ").append(flips(p.rightToWrong(), p.rightToWrongExamples()));
        md.append(" | ").append(flips(p.wrongToRight(), p.wrongToRightExamples()));
        md.append(" |\n");
    }

    private static String delta(double points, double low, double high) {
        return num(points, "%+.1f") + " [" + num(low, "%+.1f") + ", " + num(high, "%+.1f") + "]";
    }

    private static String accuracy(TaskSection.ModelAccuracy m) {
        return num(100 * m.accuracy(), "%.1f%%") + " [" + num(100 * m.low(), "%.1f") + ", "
                + num(100 * m.high(), "%.1f") + "]";
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

    /** {@link #plottable(List)} read from the report: the same figures, as validation.json holds them. */
    public static boolean plottable(TaskSection t) {
        if (t.perTask().isEmpty()) {
            return false;
        }
        Set<String> seen = new LinkedHashSet<>();
        for (TaskSection.Comparison c : t.perTask()) {
            if (!seen.add(c.task())) {
                continue;
            }
            List<TaskSection.ModelAccuracy> models = c.rtn() == null
                    ? List.of(c.reference(), c.candidate())
                    : List.of(c.reference(), c.candidate(), c.rtn());
            for (TaskSection.ModelAccuracy m : models) {
                if (!Double.isFinite(m.accuracy()) || !Double.isFinite(m.low()) || !Double.isFinite(m.high())) {
                    return false;
                }
            }
        }
        return true;
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
