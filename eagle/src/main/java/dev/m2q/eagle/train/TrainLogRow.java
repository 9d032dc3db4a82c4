package dev.m2q.eagle.train;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;

/**
 * A training step's line of {@code train-log.jsonl}.
 *
 * @param step steps done, this one included
 * @param loss the batch's loss, averaged over the TTT steps
 * @param stepLoss the loss per TTT step ({@code step_loss})
 * @param top1 the draft's top-1 agreement per TTT step on the batch
 * @param lr the learning rate the step used
 * @param gradNorm the global gradient norm before clipping ({@code grad_norm})
 */
public record TrainLogRow(
        int step,
        double loss,
        @JsonProperty("step_loss") List<Double> stepLoss,
        List<Double> top1,
        double lr,
        @JsonProperty("grad_norm") double gradNorm)
        implements TrainLogLine {
    public TrainLogRow {
        stepLoss = List.copyOf(stepLoss);
        top1 = List.copyOf(top1);
    }
}
