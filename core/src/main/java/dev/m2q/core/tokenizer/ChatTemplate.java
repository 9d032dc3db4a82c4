package dev.m2q.core.tokenizer;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * The ChatML conversation format Qwen2 models are trained on. Each message renders as
 * {@code <|im_start|>{role}\n{content}<|im_end|>\n}, and a generation prompt as {@code <|im_start|>assistant\n}.
 *
 * <p>m2q does not run Jinja: {@link #load} recognizes a ChatML template in {@code tokenizer_config.json} and
 * reproduces it, including the default system message Qwen2 and Qwen2.5 insert when a conversation does not start
 * with one. Tools, images and Qwen3's thinking blocks are not rendered.
 */
public final class ChatTemplate {
    static final String START = "<|im_start|>";
    static final String END = "<|im_end|>";

    /** The default system message of Qwen2.5's template. */
    static final String QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

    /** The default system message of Qwen2's template. */
    static final String QWEN2_SYSTEM = "You are a helpful assistant.";

    /** One message; {@code role} is typically system, user or assistant. */
    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(content, "content");
        }
    }

    /** Characters {@code [start, end)} of a rendered conversation; the {@code <|im_end|>} closing it begins at end. */
    public record Span(int start, int end) {
        public Span {
            if (start < 0 || end < start) {
                throw new IllegalArgumentException("bad span [" + start + ", " + end + ")");
            }
        }
    }

    /**
     * A rendered conversation and, for building a loss mask, where each assistant message's content lies in it.
     *
     * @param text the prompt text, special markers included, ready for {@link Tokenizer#encode}
     * @param assistantContent one span per assistant message, in order
     */
    public record RenderedChat(String text, List<Span> assistantContent) {
        public RenderedChat {
            assistantContent = List.copyOf(assistantContent);
        }
    }

    private final String defaultSystem;

    private ChatTemplate(String defaultSystem) {
        this.defaultSystem = defaultSystem;
    }

    /** Plain ChatML, with no default system message. */
    public static ChatTemplate chatMl() {
        return new ChatTemplate(null);
    }

    /** ChatML that starts with a system message of {@code defaultSystem} when the first message is not one. */
    public static ChatTemplate chatMl(String defaultSystem) {
        return new ChatTemplate(Objects.requireNonNull(defaultSystem, "defaultSystem"));
    }

    /**
     * Reads {@code chat_template} from {@code modelDir/tokenizer_config.json}. A template that mentions
     * {@code <|im_start|>} is taken as ChatML; one that contains Qwen2.5's or Qwen2's default system sentence right
     * after {@code <|im_start|>system} and a newline (an escaped {@code \\n} inside a Jinja string, or a real one) gets
     * that default.
     *
     * @throws InputException when the file is missing or malformed, has no string {@code chat_template}, or the
     *     template is not ChatML
     */
    public static ChatTemplate load(Path modelDir) {
        Path file = modelDir.resolve("tokenizer_config.json");
        Map<String, Object> config;
        try {
            config = Json.parseObject(Files.readString(file));
        } catch (NoSuchFileException e) {
            throw new InputException(file + ": no such file (expected next to the model's tokenizer.json)", e);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
        if (!(config.get("chat_template") instanceof String template)) {
            throw new InputException(file + ": chat_template is missing or not a string");
        }
        if (!template.contains(START)) {
            throw new InputException(file + ": chat_template is not ChatML (no " + START
                    + "); only ChatML templates, as in Qwen2, are supported");
        }
        for (String sentence : List.of(QWEN25_SYSTEM, QWEN2_SYSTEM)) {
            if (template.contains(START + "system\\n" + sentence + END)
                    || template.contains(START + "system\n" + sentence + END)) {
                return chatMl(sentence);
            }
        }
        return chatMl();
    }

    /** The system message inserted when a conversation does not open with one, if this template has one. */
    public Optional<String> defaultSystemMessage() {
        return Optional.ofNullable(defaultSystem);
    }

    /** The prompt text of {@code messages}, ending in an open assistant turn when {@code addGenerationPrompt}. */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        return renderWithSpans(messages, addGenerationPrompt).text();
    }

    /** As {@link #render}, plus the character span of each assistant message's content. */
    public RenderedChat renderWithSpans(List<Message> messages, boolean addGenerationPrompt) {
        StringBuilder text = new StringBuilder();
        List<Span> spans = new ArrayList<>();
        if (defaultSystem != null
                && (messages.isEmpty() || !messages.getFirst().role().equals("system"))) {
            append(text, new Message("system", defaultSystem));
        }
        for (Message m : messages) {
            int start = append(text, m);
            if (m.role().equals("assistant")) {
                spans.add(new Span(start, start + m.content().length()));
            }
        }
        if (addGenerationPrompt) {
            text.append(START).append("assistant\n");
        }
        return new RenderedChat(text.toString(), spans);
    }

    /** Appends one message and returns where its content starts. */
    private static int append(StringBuilder text, Message m) {
        text.append(START).append(m.role()).append('\n');
        int start = text.length();
        text.append(m.content()).append(END).append('\n');
        return start;
    }
}
