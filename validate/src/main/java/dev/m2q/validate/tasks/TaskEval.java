package dev.m2q.validate.tasks;

import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;

/**
 * {@code m2q validate --tasks}: every task scored by the reference, the candidate and optionally the RTN baseline on
 * the same items ({@link TaskScorer}), compared per task and metric and pooled over the tasks ({@link TaskStats}),
 * and gated by {@code --max-acc-drop} ({@link AccuracyGate}).
 *
 * <p>The gate applies to each task's primary metric, {@code acc} for multiple choice (lm-evaluation-harness's
 * headline figure) and {@code exact_match} for generation, and, when there are several tasks, to the pooled
 * comparison of each primary metric.
 */
public final class TaskEval {
    /** The unit of progress reported to a {@link ProgressListener} log: one task scored by one model. */
    public static final String PHASE = "task run";

    private TaskEval() {}

    /**
     * What to run.
     *
     * @param tasks the parsed task files
     * @param scorer chat rendering, generation length, eos and extraction
     * @param maxAccDrop the gate's limit in accuracy points, or null for no gate
     */
    public record Options(List<TaskFile> tasks, TaskScorer.Options scorer, Double maxAccDrop) {
        public Options {
            tasks = List.copyOf(tasks);
            Objects.requireNonNull(scorer);
            if (tasks.isEmpty()) {
                throw new IllegalArgumentException("no tasks");
            }
        }
    }

    /** The comparisons, pooled comparisons and gate verdicts of one run. */
    public record Result(List<TaskComparison> perTask, List<TaskComparison> overall, List<AccuracyGate.Result> gates) {
        public Result {
            perTask = List.copyOf(perTask);
            overall = List.copyOf(overall);
            gates = List.copyOf(gates);
        }

        /** The {@code "tasks"} object of validation.json. */
        public TaskSection json() {
            return TaskReport.json(perTask, overall, gates);
        }

        /** The failed checks: non-finite figures and failed gates. */
        public List<String> failures() {
            return TaskReport.failures(perTask, overall, gates);
        }

        /** Writes the plot into {@code dir} when its figures are finite; returns its path or null. */
        public Path plot(Path dir) throws IOException {
            return TaskReport.plottable(perTask) ? TaskReport.plot(dir, perTask) : null;
        }
    }

    /** The metric the gate reads for a task of this kind. */
    static String primaryMetric(TaskFile task) {
        return task.items().getFirst() instanceof TaskItem.Generation ? "exact_match" : "acc";
    }

    /**
     * Scores every task with each model and compares them.
     *
     * @param rtn the RTN baseline, or null
     * @param log one line per task and model (items/s)
     */
    public static Result run(
            Qwen2Model reference,
            Qwen2Model candidate,
            Qwen2Model rtn,
            Tokenizer tok,
            Options o,
            Consumer<String> log) {
        List<TaskComparison> perTask = new ArrayList<>();
        Map<String, List<TaskRun[]>> byMetric = new LinkedHashMap<>();
        Set<String> primary = new LinkedHashSet<>();
        List<AccuracyGate.Result> gates = new ArrayList<>();
        AccuracyGate gate = o.maxAccDrop() == null ? null : new AccuracyGate(o.maxAccDrop());
        int models = rtn == null ? 2 : 3;
        int scored = 0;
        for (TaskFile task : o.tasks()) {
            List<TaskRun> ref = score(reference, tok, task, "reference", o, log);
            ProgressListener.units(
                    log, PHASE, ++scored, (long) models * o.tasks().size(), null);
            List<TaskRun> cand = score(candidate, tok, task, "candidate", o, log);
            ProgressListener.units(
                    log, PHASE, ++scored, (long) models * o.tasks().size(), null);
            List<TaskRun> base = rtn == null ? null : score(rtn, tok, task, "rtn", o, log);
            if (base != null) {
                ProgressListener.units(
                        log, PHASE, ++scored, (long) models * o.tasks().size(), null);
            }
            String main = primaryMetric(task);
            primary.add(main);
            for (int m = 0; m < ref.size(); m++) {
                TaskRun b = base == null ? null : base.get(m);
                TaskComparison c = TaskStats.compare(ref.get(m), cand.get(m), b);
                perTask.add(c);
                byMetric.computeIfAbsent(c.metric(), k -> new ArrayList<>())
                        .add(new TaskRun[] {ref.get(m), cand.get(m), b});
                if (gate != null && c.metric().equals(main)) {
                    gates.add(gate.check(c));
                }
            }
        }
        List<TaskComparison> overall = new ArrayList<>();
        if (o.tasks().size() > 1) {
            for (Map.Entry<String, List<TaskRun[]>> e : byMetric.entrySet()) {
                List<TaskRun> refs = e.getValue().stream().map(r -> r[0]).toList();
                List<TaskRun> cands = e.getValue().stream().map(r -> r[1]).toList();
                List<TaskRun> rtns = rtn == null
                        ? null
                        : e.getValue().stream().map(r -> r[2]).toList();
                TaskComparison c = TaskStats.overall(e.getKey(), refs, cands, rtns);
                overall.add(c);
                if (gate != null && primary.contains(e.getKey())) {
                    gates.add(gate.check(c));
                }
            }
        }
        return new Result(perTask, overall, gates);
    }

    private static List<TaskRun> score(
            Qwen2Model model, Tokenizer tok, TaskFile task, String name, Options o, Consumer<String> log) {
        List<TaskRun> runs = TaskScorer.run(model, tok, task, name, o.scorer());
        log.accept(String.format(
                Locale.ROOT,
                "task %s, %s: %d items in %.1f s (%.1f items/s)",
                task.name(),
                name,
                task.items().size(),
                runs.getFirst().seconds(),
                TaskScorer.itemsPerSecond(runs.getFirst())));
        return runs;
    }
}
