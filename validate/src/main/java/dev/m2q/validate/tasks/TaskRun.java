package dev.m2q.validate.tasks;

import java.util.List;
import java.util.Objects;

/**
 * One model's results on one task under one metric, item by item in the task file's order (so two runs of the same
 * task pair up by position).
 *
 * @param task the task's name (its file's name without extension, or the items' "task" field)
 * @param metric "acc", "acc_norm" or "acc_bytes" (multiple choice), "exact_match" (generative)
 * @param model which model: "reference", "candidate" or "rtn"
 * @param items the per-item results
 * @param seconds wall time spent scoring this task with this model (shared by its metrics)
 */
public record TaskRun(String task, String metric, String model, List<ItemResult> items, double seconds) {
    public TaskRun {
        Objects.requireNonNull(task);
        Objects.requireNonNull(metric);
        Objects.requireNonNull(model);
        items = List.copyOf(items);
    }

    /** Items answered correctly. */
    public int correct() {
        int c = 0;
        for (ItemResult r : items) {
            if (r.correct()) {
                c++;
            }
        }
        return c;
    }

    /** Accuracy in [0, 1] (NaN for an empty task). */
    public double accuracy() {
        return items.isEmpty() ? Double.NaN : (double) correct() / items.size();
    }
}
