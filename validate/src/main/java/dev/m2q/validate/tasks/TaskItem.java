package dev.m2q.validate.tasks;

import dev.m2q.core.tokenizer.ChatTemplate;
import java.util.List;
import java.util.Objects;

/** One item of a task file, its prompt already rendered by {@link TaskFields.Format}. */
public sealed interface TaskItem {
    /** The item's id: its id field, else its 1-based line number. */
    String id();

    /** Its 1-based line in the task file. */
    int line();

    /**
     * A multiple-choice item, scored by the log-likelihood of each choice given the context.
     *
     * @param context the rendered prompt (the chat template, if any, is applied when scoring)
     * @param choices the choices' texts as scored (letters A, B, … under {@link TaskFields.Format#LETTERS}); at least
     *     one, none empty
     * @param answer the index of the correct choice
     */
    record Choice(String id, int line, String context, List<String> choices, int answer) implements TaskItem {
        public Choice {
            Objects.requireNonNull(id);
            Objects.requireNonNull(context);
            choices = List.copyOf(choices);
            if (choices.isEmpty() || answer < 0 || answer >= choices.size()) {
                throw new IllegalArgumentException("item " + id + ": answer " + answer + " of " + choices.size());
            }
        }
    }

    /**
     * A generative item: greedy output, an answer extracted from it, compared with the options after normalization.
     *
     * @param prompt the prompt text (null when the item gives chat messages)
     * @param messages the chat messages (empty when the item gives a text prompt)
     * @param options the answers an extracted answer is matched against: the item's choices, or its reference alone
     * @param answer the index of the reference among the options
     * @param lettered whether an extracted letter A, B, … names option 0, 1, … (items that have choices)
     */
    record Generation(
            String id,
            int line,
            String prompt,
            List<ChatTemplate.Message> messages,
            List<String> options,
            int answer,
            boolean lettered)
            implements TaskItem {
        public Generation {
            Objects.requireNonNull(id);
            messages = List.copyOf(messages);
            options = List.copyOf(options);
            if ((prompt == null) == messages.isEmpty()) {
                throw new IllegalArgumentException("item " + id + ": exactly one of prompt and messages");
            }
            if (answer < 0 || answer >= options.size()) {
                throw new IllegalArgumentException("item " + id + ": answer " + answer + " of " + options.size());
            }
        }

        /** The reference answer's text. */
        public String reference() {
            return options.get(answer);
        }
    }
}
