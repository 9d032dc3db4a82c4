package dev.m2q.core.tokenizer;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Prompts for generation (EAGLE-3 training data, speculative-decoding runs). A {@code .jsonl} file holds one JSON
 * object per line: {@code {"messages": [{"role": ..., "content": ...}, ...]}} (a chat; trailing assistant turns
 * are dropped, the model answers the last user turn) or {@code {"prompt": "..."}} / {@code {"text": "..."}} (one
 * user message). Any other file holds one user message per non-blank line. Every prompt is rendered through the
 * chat template with an open assistant turn.
 */
public final class PromptFile {
    private PromptFile() {}

    /** Reads the conversations of {@code file}, each ending in a non-assistant message. */
    public static List<List<ChatTemplate.Message>> read(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read prompts: " + e.getMessage(), e);
        }
        boolean jsonl = file.getFileName().toString().endsWith(".jsonl");
        List<List<ChatTemplate.Message>> out = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty()) {
                continue;
            }
            String where = file + ":" + (i + 1) + ": ";
            out.add(jsonl ? parse(line, where) : List.of(new ChatTemplate.Message("user", line)));
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
