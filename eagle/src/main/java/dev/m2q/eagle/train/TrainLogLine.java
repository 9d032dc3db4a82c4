package dev.m2q.eagle.train;

import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;

/**
 * One line of {@code train-log.jsonl}: a training step ({@link TrainLogRow}) or a held-out evaluation ({@link
 * EvalRow}), told apart by their keys when read back. Non-finite figures are written as null and read back as NaN.
 */
@JsonTypeInfo(use = JsonTypeInfo.Id.DEDUCTION)
@JsonSubTypes({@JsonSubTypes.Type(TrainLogRow.class), @JsonSubTypes.Type(EvalRow.class)})
public sealed interface TrainLogLine permits TrainLogRow, EvalRow {
    /** The optimizer steps done when the line was written. */
    int step();
}
