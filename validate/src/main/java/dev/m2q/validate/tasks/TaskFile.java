package dev.m2q.validate.tasks;

import dev.m2q.core.InputException;
import dev.m2q.core.io.InputText;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.tokenizer.ChatTemplate;
import java.math.BigInteger;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * One task: a name and its items, all multiple choice or all generative, in file order. Read from JSONL files (one
 * JSON object per line, blank lines skipped) through a {@link TaskFields} mapping, through {@link InputText}: a file
 * may be gzip, xz, bzip2 or zstd compressed, or a tar of such files, each member read as a file of its own.
 *
 * @param name the items' task field, else the file's (or tar member's) name without its extension and without a
 *     compression suffix
 * @param path the file the items come from
 * @param where how messages name the items' text: the file, or {@code "file (member m)"} for a tar member
 * @param items at least one
 */
public record TaskFile(String name, Path path, String where, List<TaskItem> items) {
    public TaskFile {
        Objects.requireNonNull(name);
        Objects.requireNonNull(path);
        Objects.requireNonNull(where);
        items = List.copyOf(items);
        if (items.isEmpty()) {
            throw new IllegalArgumentException("task " + name + " has no items");
        }
        boolean gen = items.getFirst() instanceof TaskItem.Generation;
        for (TaskItem it : items) {
            if ((it instanceof TaskItem.Generation) != gen) {
                throw new IllegalArgumentException("task " + name + " mixes multiple-choice and generative items");
            }
        }
    }

    /** A task read from {@code path} itself (not from a tar member). */
    public TaskFile(String name, Path path, List<TaskItem> items) {
        this(name, path, path.toString(), items);
    }

    /** Whether the task's items are generative (else multiple choice). */
    public boolean generative() {
        return items.getFirst() instanceof TaskItem.Generation;
    }

    /**
     * The tasks of several files, in file order and, within a file, in order of first appearance.
     *
     * @throws InputException as {@link #read}, and when two files yield a task of the same name
     */
    public static List<TaskFile> readAll(List<Path> files, TaskFields fields) {
        Map<String, TaskFile> byName = new LinkedHashMap<>();
        for (Path f : files) {
            for (TaskFile t : read(f, fields)) {
                TaskFile prev = byName.putIfAbsent(t.name(), t);
                if (prev != null) {
                    throw new InputException("task \"" + t.name() + "\" comes from both " + prev.where() + " and "
                            + t.where() + "; rename a file or set the items' task field");
                }
            }
        }
        return List.copyOf(byName.values());
    }

    /**
     * The tasks of one file: one, named after the file, unless its items carry a task field.
     *
     * @throws InputException naming the file, the line and the field for a file that cannot be read, a line that
     *     is not a JSON object, a missing or malformed field, an answer that names no choice, a repeated id, a task
     *     that mixes multiple-choice and generative items, or a file with no items
     */
    public static List<TaskFile> read(Path file, TaskFields fields) {
        List<TaskFile> out = new ArrayList<>();
        for (InputText.Part part : InputText.read(file, "task file")) {
            out.addAll(read(file, part, fields));
        }
        return out;
    }

    /** The tasks of one text of {@code file} (the file itself, or a member of a tar). */
    private static List<TaskFile> read(Path file, InputText.Part part, TaskFields fields) {
        List<String> lines = part.lines();
        String where = part.where();
        String fileTask = part.stem();
        Map<String, List<TaskItem>> tasks = new LinkedHashMap<>();
        Map<String, Map<String, Integer>> idLines = new HashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) {
                continue;
            }
            Line l = new Line(where, i + 1, fields);
            Map<String, Object> obj;
            try {
                obj = Json.parseObject(lines.get(i));
            } catch (JsonException e) {
                throw new InputException(where + ":" + (i + 1) + ": not a JSON object: " + e.getMessage(), e);
            }
            Object taskValue = lookup(obj, fields.task());
            String task = taskValue == null ? fileTask : l.text(taskValue, fields.task());
            TaskItem item = l.item(obj);
            Integer prev = idLines.computeIfAbsent(task, k -> new HashMap<>()).putIfAbsent(item.id(), i + 1);
            if (prev != null) {
                throw l.fail(fields.id(), "id \"" + item.id() + "\" repeats line " + prev);
            }
            List<TaskItem> items = tasks.computeIfAbsent(task, k -> new ArrayList<>());
            if (!items.isEmpty()
                    && (items.getFirst() instanceof TaskItem.Generation) != (item instanceof TaskItem.Generation)) {
                throw l.fail(
                        fields.prompt(),
                        "task \"" + task + "\" mixes multiple-choice and generative items (line "
                                + items.getFirst().line() + " is " + kind(items.getFirst()) + ", this one "
                                + kind(item) + ")");
            }
            items.add(item);
        }
        if (tasks.isEmpty()) {
            throw new InputException(where + ": no items (expected one JSON object per line)");
        }
        List<TaskFile> out = new ArrayList<>();
        tasks.forEach((name, items) -> out.add(new TaskFile(name, file, where, items)));
        return out;
    }

    private static String kind(TaskItem it) {
        return it instanceof TaskItem.Generation ? "generative" : "multiple choice";
    }

    /** The value at a dotted path ({@code context.contexts}), or null when any step is absent. */
    static Object lookup(Map<String, Object> obj, String path) {
        Object v = obj;
        for (String key : path.split("\\.")) {
            if (!(v instanceof Map<?, ?> m)) {
                return null;
            }
            v = m.get(key);
        }
        return v;
    }

    /** One line being parsed: its errors name the file, the line and the field. */
    private record Line(String file, int line, TaskFields f) {
        InputException fail(String field, String problem) {
            return new InputException(file + ":" + line + ": field \"" + field + "\": " + problem);
        }

        TaskItem item(Map<String, Object> obj) {
            Object idValue = lookup(obj, f.id());
            String id = idValue == null ? Integer.toString(line) : text(idValue, f.id());
            boolean generative = f.generate() || has(obj, f.prompt()) || has(obj, f.messages());
            Choices choices = choices(obj, !generative);
            if (!generative) {
                String context = render(obj, choices);
                List<String> scored =
                        f.format() == TaskFields.Format.LETTERS ? letters(choices.texts.size()) : choices.texts;
                return new TaskItem.Choice(id, line, context, scored, answer(obj, choices));
            }
            String prompt = null;
            List<ChatTemplate.Message> messages = List.of();
            if (has(obj, f.messages())) {
                messages = messages(lookup(obj, f.messages()));
            } else if (has(obj, f.prompt())) {
                prompt = text(lookup(obj, f.prompt()), f.prompt());
                if (prompt.isBlank()) {
                    throw fail(f.prompt(), "empty prompt");
                }
            } else {
                prompt = render(obj, choices);
            }
            if (choices == null) {
                return new TaskItem.Generation(id, line, prompt, messages, List.of(reference(obj)), 0, false);
            }
            // Letters name choices when the prompt shows them lettered: the item's own prompt, or format=letters.
            boolean lettered = prompt == null || has(obj, f.prompt()) || f.format() == TaskFields.Format.LETTERS;
            return new TaskItem.Generation(id, line, prompt, messages, choices.texts, answer(obj, choices), lettered);
        }

        /** The choices' texts, and the keys of a choices object (null otherwise); null when optional and absent. */
        private record Choices(List<String> texts, List<String> keys) {}

        private Choices choices(Map<String, Object> obj, boolean required) {
            if (!f.fixedChoices().isEmpty()) {
                return new Choices(f.fixedChoices(), null);
            }
            List<String> texts = new ArrayList<>();
            List<String> keys = null;
            String name = String.join("|", f.choices());
            if (f.choices().size() == 1) {
                Object v = lookup(obj, name);
                switch (v) {
                    case null -> {
                        if (!required) {
                            return null;
                        }
                        throw fail(name, "missing");
                    }
                    case List<?> list -> {
                        for (Object c : list) {
                            texts.add(text(c, name));
                        }
                    }
                    case Map<?, ?> m -> {
                        keys = new ArrayList<>();
                        for (Map.Entry<?, ?> e : m.entrySet()) {
                            keys.add((String) e.getKey());
                            texts.add(text(e.getValue(), name + "." + e.getKey()));
                        }
                    }
                    default -> throw fail(name, "not a list or an object of choices");
                }
            } else {
                boolean any = false;
                for (String field : f.choices()) {
                    any |= has(obj, field);
                }
                if (!any && !required) {
                    return null;
                }
                for (String field : f.choices()) {
                    Object v = lookup(obj, field);
                    if (v == null) {
                        throw fail(field, "missing (one of the choices " + name + ")");
                    }
                    texts.add(text(v, field));
                }
            }
            if (texts.isEmpty()) {
                throw fail(name, "no choices");
            }
            for (int i = 0; i < texts.size(); i++) {
                if (texts.get(i).isBlank()) {
                    throw fail(name, "choice " + i + " is empty");
                }
            }
            if (f.format() == TaskFields.Format.LETTERS && texts.size() > 26) {
                throw fail(name, texts.size() + " choices, more than the 26 letters format=letters can name");
            }
            return new Choices(List.copyOf(texts), keys);
        }

        /** The prompt of {@link TaskFields.Format}: context and question, and under LETTERS the lettered choices. */
        private String render(Map<String, Object> obj, Choices choices) {
            String context = has(obj, f.context()) ? text(lookup(obj, f.context()), f.context()) : null;
            String question = has(obj, f.question()) ? text(lookup(obj, f.question()), f.question()) : null;
            if (context == null && question == null) {
                throw fail(f.question(), "missing (and no \"" + f.context() + "\" field either)");
            }
            if (question == null && f.format() != TaskFields.Format.PLAIN) {
                throw fail(
                        f.question(),
                        "missing (format=" + f.format().name().toLowerCase(Locale.ROOT) + " asks a question)");
            }
            StringBuilder b = new StringBuilder();
            switch (f.format()) {
                case PLAIN -> {
                    if (context != null) {
                        b.append(context);
                    }
                    if (question != null) {
                        b.append(context != null ? "\n" : "").append(question);
                    }
                }
                case QA -> {
                    if (context != null) {
                        b.append("Abstract: ").append(context).append('\n');
                    }
                    b.append("Question: ").append(question).append("\nAnswer:");
                }
                case LETTERS -> {
                    if (context != null) {
                        b.append(context).append('\n');
                    }
                    b.append("Question: ").append(question).append('\n');
                    if (choices != null) {
                        for (int i = 0; i < choices.texts.size(); i++) {
                            b.append((char) ('A' + i))
                                    .append(". ")
                                    .append(choices.texts.get(i))
                                    .append('\n');
                        }
                    }
                    b.append("Answer:");
                }
            }
            if (b.toString().isBlank()) {
                throw fail(f.question(), "empty prompt");
            }
            return b.toString();
        }

        /** The index of the correct choice. */
        private int answer(Map<String, Object> obj, Choices choices) {
            Object v = lookup(obj, f.answer());
            int n = choices.texts.size();
            String range = " is out of range: " + n + " choices" + (f.indexBase() == 1 ? " (index_base 1)" : "");
            switch (v) {
                case null -> throw fail(f.answer(), "missing");
                case Long l -> {
                    long idx = l - f.indexBase();
                    if (idx < 0 || idx >= n) {
                        throw fail(f.answer(), "answer " + l + range);
                    }
                    return (int) idx;
                }
                case BigInteger b -> throw fail(f.answer(), "answer " + b + range);
                case String s -> {
                    String t = s.strip();
                    if (choices.keys != null && choices.keys.contains(t)) {
                        return choices.keys.indexOf(t);
                    }
                    if (choices.texts.contains(t)) {
                        return choices.texts.indexOf(t);
                    }
                    if (t.matches("-?[0-9]{1,9}")) {
                        long idx = Long.parseLong(t) - f.indexBase();
                        if (idx < 0 || idx >= n) {
                            throw fail(f.answer(), "answer " + t + range);
                        }
                        return (int) idx;
                    }
                    if (t.length() == 1 && Character.isLetter(t.charAt(0)) && t.charAt(0) < 128) {
                        int idx = Character.toUpperCase(t.charAt(0)) - 'A';
                        if (idx >= n) {
                            throw fail(f.answer(), "answer letter " + t + range);
                        }
                        return idx;
                    }
                    for (int i = 0; i < n; i++) {
                        if (TaskScorer.normalize(choices.texts.get(i)).equals(TaskScorer.normalize(t))) {
                            return i;
                        }
                    }
                    throw fail(f.answer(), "\"" + s + "\" is not an index, a letter, a key or the text of a choice");
                }
                default -> throw fail(f.answer(), "not an index or a text (" + v + ")");
            }
        }

        private String reference(Map<String, Object> obj) {
            Object v = lookup(obj, f.answer());
            if (v == null) {
                throw fail(f.answer(), "missing (the reference answer)");
            }
            String r = text(v, f.answer());
            if (TaskScorer.normalize(r).isEmpty()) {
                throw fail(f.answer(), "the reference answer is empty");
            }
            return r;
        }

        private List<ChatTemplate.Message> messages(Object v) {
            if (!(v instanceof List<?> list) || list.isEmpty()) {
                throw fail(f.messages(), "not a non-empty list of {\"role\": .., \"content\": ..} objects");
            }
            List<ChatTemplate.Message> out = new ArrayList<>();
            for (int i = 0; i < list.size(); i++) {
                if (!(list.get(i) instanceof Map<?, ?> m)
                        || !(m.get("role") instanceof String role)
                        || !(m.get("content") instanceof String content)) {
                    throw fail(f.messages() + "[" + i + "]", "not a {\"role\": text, \"content\": text} object");
                }
                out.add(new ChatTemplate.Message(role, content));
            }
            return out;
        }

        String text(Object v, String field) {
            return switch (v) {
                case String s -> s;
                case Long l -> l.toString();
                case BigInteger b -> b.toString();
                case Double d -> d.toString();
                case Boolean b -> b.toString();
                case List<?> list -> {
                    List<String> parts = new ArrayList<>();
                    for (Object o : list) {
                        if (!(o instanceof String s)) {
                            throw fail(field, "a list that is not all text");
                        }
                        parts.add(s);
                    }
                    yield String.join("\n", parts);
                }
                default ->
                    throw fail(
                            field, "not text (" + v.getClass().getSimpleName().toLowerCase(Locale.ROOT) + ")");
            };
        }

        private static boolean has(Map<String, Object> obj, String path) {
            return lookup(obj, path) != null;
        }

        private static List<String> letters(int n) {
            List<String> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                out.add(String.valueOf((char) ('A' + i)));
            }
            return out;
        }
    }
}
