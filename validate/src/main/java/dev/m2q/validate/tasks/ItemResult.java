package dev.m2q.validate.tasks;

import java.util.Objects;

/**
 * One model's answer to one task item.
 *
 * @param id the item's id (its "id" field, else its 1-based line number in the task file)
 * @param chosen the index of the chosen choice (multiple choice) or of the extracted answer among the item's options
 *     (generative); −1 when a generative output had no extractable answer
 * @param correct whether the answer is the item's reference answer
 */
public record ItemResult(String id, int chosen, boolean correct) {
    public ItemResult {
        Objects.requireNonNull(id);
        if (chosen < -1) {
            throw new IllegalArgumentException("chosen " + chosen + " < -1");
        }
        if (chosen == -1 && correct) {
            throw new IllegalArgumentException("item " + id + ": an answer that was not extracted cannot be correct");
        }
    }
}
