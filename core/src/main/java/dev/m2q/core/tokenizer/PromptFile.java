package dev.m2q.core.tokenizer;

import dev.m2q.core.InputException;
import dev.m2q.core.io.InputText;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Prompts for generation (EAGLE-3 training data, speculative-decoding runs), read through {@link InputText} (plain,
 * gzip, xz, bzip2 or zstd text, or a tar of such files whose members are read in order). A JSON-lines text (named
 * {@code .jsonl}, or whose first non-blank line is an object with one of the keys below) holds one JSON object per
 * line: {@code {"messages": [{"role": ..., "content": ...}, ...]}} (a chat; trailing assistant turns
 * are dropped, the model answers the last user turn) or {@code {"prompt": "..."}} / {@code {"text": "..."}} (one
 * user message). Any other text holds one user message per non-blank line. Every prompt is rendered through the
 * chat template with an open assistant turn.
 */
public final class PromptFile {
    private PromptFile() {}

    /** The keys that make a file JSON lines by content ({@link InputText.Part#jsonLines}). */
    private static final Set<String> JSONL_KEYS = Set.of("messages", "prompt", "text");

    /** Reads the conversations of {@code file}, each ending in a non-assistant message. */
    public static List<List<ChatTemplate.Message>> read(Path file) {
        List<List<ChatTemplate.Message>> out = new ArrayList<>();
        for (InputText.Part part : InputText.read(file, "prompt file")) {
            boolean jsonl = part.jsonLines(JSONL_KEYS);
            List<String> lines = part.lines();
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i).strip();
                if (line.isEmpty()) {
                    continue;
                }
                String where = part.where() + ":" + (i + 1) + ": ";
                out.add(jsonl ? parse(line, where) : List.of(new ChatTemplate.Message("user", line)));
            }
        }
        if (out.isEmpty()) {
            throw new InputException(file + ": no prompts");
        }
        return out;
    }

    private static List<ChatTemplate.Message> parse(String line, String where) {
        Map<String, Object> o;
        try {
            o = Json.parseObject(line);
        } catch (JsonException e) {
            throw new InputException(where + "malformed JSON: " + e.getMessage(), e);
        }
        if (o.get("messages") instanceof List<?> list) {
            List<ChatTemplate.Message> msgs = new ArrayList<>();
            for (Object m : list) {
                if (!(m instanceof Map<?, ?> mm)
                        || !(mm.get("role") instanceof String role)
                        || !(mm.get("content") instanceof String content)) {
                    throw new InputException(where + "each message needs string \"role\" and \"content\", found " + m);
                }
                msgs.add(new ChatTemplate.Message(role, content));
            }
            while (!msgs.isEmpty() && msgs.getLast().role().equals("assistant")) {
                msgs.removeLast();
            }
            if (msgs.isEmpty()) {
                throw new InputException(where + "the conversation has no message for the model to answer");
            }
            return List.copyOf(msgs);
        }
        Object text = o.containsKey("prompt") ? o.get("prompt") : o.get("text");
        if (text instanceof String s && !s.isBlank()) {
            return List.of(new ChatTemplate.Message("user", s));
        }
        throw new InputException(where + "expected \"messages\", \"prompt\" or \"text\"");
    }

    /** The token ids of each prompt rendered with an open assistant turn. */
    public static List<int[]> encode(Path file, Tokenizer tok, ChatTemplate chat) {
        return read(file).stream().map(m -> tok.encode(chat.render(m, true))).toList();
    }
}
