package dev.m2q.eagle.train;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A held-out evaluation's line of {@code train-log.jsonl}.
 *
 * @param step steps done when it ran
 * @param eval the split evaluated ({@value #HOLDOUT})
 * @param loss the batch-size-weighted mean loss
 * @param stepLoss the same per TTT step ({@code step_loss})
 * @param top1 pooled top-1 agreement per TTT step (NaN, written null, where no position was counted)
 * @param counted positions counted per TTT step
 */
public record EvalRow(
        int step,
        String eval,
        double loss,
        @JsonProperty("step_loss") List<Double> stepLoss,
        List<Double> top1,
        List<Long> counted)
        implements TrainLogLine {
    public static final String HOLDOUT = "holdout";

    public EvalRow {
        stepLoss = List.copyOf(stepLoss);
        top1 = List.copyOf(top1);
        counted = List.copyOf(counted);
    }

    /** The line of an evaluation of the held-out split. */
    static EvalRow of(DraftTrainer.Evaluation ev) {
        List<Long> counted = new ArrayList<>();
        for (long c : ev.counted()) {
            counted.add(c);
        }
        return new EvalRow(ev.step(), HOLDOUT, ev.loss(), boxed(ev.stepLoss()), boxed(ev.top1()), counted);
    }

    static List<Double> boxed(double[] v) {
        return Arrays.stream(v).boxed().toList();
    }
}
