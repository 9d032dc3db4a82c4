package dev.m2q.validate.tasks;

import dev.m2q.core.InputException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * Where a task file's items keep their parts, and how an item becomes a prompt: the {@code --task-fields} spec,
 * comma-separated {@code key=value} pairs, e.g. {@code question=question,choices=options,answer=answer_idx}. Keys
 * not given keep their defaults ({@link #DEFAULT}). A field name may be a dotted path into nested objects
 * ({@code context.contexts}).
 *
 * <ul>
 *   <li>{@code id} (default {@code id}): the item's id, text or number; absent → the item's line number.
 *   <li>{@code task} (default {@code task}): the task an item belongs to; absent → the file's name without
 *       extension.
 *   <li>{@code question} (default {@code question}) and {@code context} (default {@code context}): the prompt's
 *       text; either may be absent, not both. A list of strings is joined with newlines.
 *   <li>{@code choices} (default {@code choices}): a list of texts, an object of key → text (taken in key order; an
 *       answer may then name a key, as MedQA's {@code "answer_idx": "C"} does), or several fields joined by
 *       {@code |} ({@code opa|opb|opc|opd}, one choice each).
 *   <li>{@code fixed_choices}: the same choices for every item, joined by {@code |} ({@code yes|no|maybe});
 *       replaces {@code choices}.
 *   <li>{@code answer} (default {@code answer}): the correct choice as a {@code index_base}-based index, a key of
 *       the choices object, the choice's text, or a letter A–Z; for a generative item without choices, the
 *       reference answer itself.
 *   <li>{@code index_base} (default 0): 1 when answer indexes count from 1 (MedMCQA's original release).
 *   <li>{@code prompt} (default {@code prompt}) and {@code messages} (default {@code messages}): an item that has
 *       either is generative: a text prompt, or chat messages [{"role": .., "content": ..}, ..].
 *   <li>{@code format}: how a multiple-choice item's prompt is rendered; see {@link Format}.
 *   <li>{@code mode}: {@code choice} (default: multiple choice unless the item has a prompt or messages) or
 *       {@code generate} (every item generative; with choices, the prompt is rendered by {@code format} and the
 *       reference is the correct choice).
 * </ul>
 *
 * @param choices one field holding all choices, or several holding one each; empty with {@code fixedChoices}
 * @param fixedChoices choices shared by every item, or empty
 */
public record TaskFields(
        String id,
        String task,
        String question,
        String context,
        List<String> choices,
        List<String> fixedChoices,
        String answer,
        int indexBase,
        String prompt,
        String messages,
        Format format,
        boolean generate) {

    /**
     * How a multiple-choice item becomes a context and continuations (the continuation of choice {@code c} is
     * {@code " " + c}, lm-evaluation-harness's target delimiter).
     */
    public enum Format {
        /** The context and the question, joined by a newline; the choices' texts as continuations. */
        PLAIN,
        /**
         * {@code "Abstract: {context}\nQuestion: {question}\nAnswer:"} (the abstract line only with a context); the
         * choices' texts as continuations (lm-evaluation-harness's PubMedQA prompt).
         */
        QA,
        /**
         * {@code "{context}\nQuestion: {question}\nA. {choice 0}\nB. {choice 1}\n…Answer:"} (the context line only with
         * a context); the letters as continuations (lm-evaluation-harness's MedQA / MMLU prompt; at most 26 choices).
         */
        LETTERS
    }

    /** {@code id=id,task=task,question=question,context=context,choices=choices,answer=answer,...}. */
    public static final TaskFields DEFAULT = new TaskFields(
            "id",
            "task",
            "question",
            "context",
            List.of("choices"),
            List.of(),
            "answer",
            0,
            "prompt",
            "messages",
            Format.PLAIN,
            false);

    public TaskFields {
        for (String f : new String[] {id, task, question, context, answer, prompt, messages}) {
            Objects.requireNonNull(f);
        }
        choices = List.copyOf(choices);
        fixedChoices = List.copyOf(fixedChoices);
        Objects.requireNonNull(format);
        if (choices.isEmpty() == fixedChoices.isEmpty()) {
            throw new IllegalArgumentException("exactly one of choices and fixed_choices must be given");
        }
        if (indexBase != 0 && indexBase != 1) {
            throw new IllegalArgumentException("index_base must be 0 or 1, got " + indexBase);
        }
    }

    /**
     * Parses a spec of {@code key=value} pairs over {@link #DEFAULT}.
     *
     * @throws InputException naming the pair for an unknown key, a pair without {@code =}, an empty value, a key
     *     given twice or a bad {@code index_base}, {@code format} or {@code mode}
     */
    public static TaskFields parse(String spec) {
        Map<String, String> kv = new LinkedHashMap<>();
        for (String pair : spec.split(",", -1)) {
            String p = pair.strip();
            if (p.isEmpty()) {
                continue;
            }
            int eq = p.indexOf('=');
            if (eq <= 0 || eq == p.length() - 1) {
                throw new InputException("--task-fields: \"" + p + "\" is not key=value (e.g. choices=options)");
            }
            String key = p.substring(0, eq).strip().toLowerCase(Locale.ROOT);
            if (kv.put(key, p.substring(eq + 1).strip()) != null) {
                throw new InputException("--task-fields: " + key + " is given twice");
            }
        }
        TaskFields d = DEFAULT;
        List<String> choices = kv.containsKey("fixed_choices") ? List.of() : d.choices;
        if (kv.containsKey("choices")) {
            if (kv.containsKey("fixed_choices")) {
                throw new InputException("--task-fields: give choices or fixed_choices, not both");
            }
            choices = split(kv.get("choices"), "choices");
        }
        List<String> fixed =
                kv.containsKey("fixed_choices") ? split(kv.get("fixed_choices"), "fixed_choices") : List.of();
        int base = d.indexBase;
        if (kv.containsKey("index_base")) {
            base = switch (kv.get("index_base")) {
                case "0" -> 0;
                case "1" -> 1;
                default ->
                    throw new InputException(
                            "--task-fields: index_base must be 0 or 1, got \"" + kv.get("index_base") + "\"");
            };
        }
        Format format = d.format;
        if (kv.containsKey("format")) {
            try {
                format = Format.valueOf(kv.get("format").toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new InputException(
                        "--task-fields: format must be plain, qa or letters, got \"" + kv.get("format") + "\"", e);
            }
        }
        boolean generate = d.generate;
        if (kv.containsKey("mode")) {
            generate = switch (kv.get("mode")) {
                case "choice" -> false;
                case "generate" -> true;
                default ->
                    throw new InputException(
                            "--task-fields: mode must be choice or generate, got \"" + kv.get("mode") + "\"");
            };
        }
        for (String key : kv.keySet()) {
            if (!List.of(
                            "id",
                            "task",
                            "question",
                            "context",
                            "choices",
                            "fixed_choices",
                            "answer",
                            "index_base",
                            "prompt",
                            "messages",
                            "format",
                            "mode")
                    .contains(key)) {
                throw new InputException("--task-fields: unknown key \"" + key + "\" (known: id, task, question, "
                        + "context, choices, fixed_choices, answer, index_base, prompt, messages, format, mode)");
            }
        }
        return new TaskFields(
                kv.getOrDefault("id", d.id),
                kv.getOrDefault("task", d.task),
                kv.getOrDefault("question", d.question),
                kv.getOrDefault("context", d.context),
                choices,
                fixed,
                kv.getOrDefault("answer", d.answer),
                base,
                kv.getOrDefault("prompt", d.prompt),
                kv.getOrDefault("messages", d.messages),
                format,
                generate);
    }

    private static List<String> split(String value, String key) {
        List<String> out = new ArrayList<>();
        for (String s : value.split("\\|", -1)) {
            if (s.isBlank()) {
                throw new InputException("--task-fields: " + key + "=" + value + " has an empty entry");
            }
            out.add(s.strip());
        }
        return out;
    }
}
