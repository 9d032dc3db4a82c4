package dev.m2q.core.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChatTemplateTest {
    @TempDir
    Path tmp;

    static final List<ChatTemplate.Message> CHAT = List.of(
            new ChatTemplate.Message("system", "Be brief."),
            new ChatTemplate.Message("user", "Tide at 06:42?"),
            new ChatTemplate.Message("assistant", "High, 4.2 m."),
            new ChatTemplate.Message("user", "And tonight?"),
            new ChatTemplate.Message("assistant", "Low.\nAbout 0.8 m."));

    @Test
    void rendersChatMlExactly() {
        String expected = "<|im_start|>system\nBe brief.<|im_end|>\n"
                + "<|im_start|>user\nTide at 06:42?<|im_end|>\n"
                + "<|im_start|>assistant\nHigh, 4.2 m.<|im_end|>\n"
                + "<|im_start|>user\nAnd tonight?<|im_end|>\n"
                + "<|im_start|>assistant\nLow.\nAbout 0.8 m.<|im_end|>\n";
        assertEquals(expected, ChatTemplate.chatMl().render(CHAT, false));
        assertEquals(expected + "<|im_start|>assistant\n", ChatTemplate.chatMl().render(CHAT, true));
        assertEquals("<|im_start|>assistant\n", ChatTemplate.chatMl().render(List.of(), true));
    }

    @Test
    void assistantSpansCoverExactlyTheAssistantContents() {
        ChatTemplate.RenderedChat r = ChatTemplate.chatMl().renderWithSpans(CHAT, true);
        assertEquals(2, r.assistantContent().size());
        ChatTemplate.Span first = r.assistantContent().get(0);
        ChatTemplate.Span second = r.assistantContent().get(1);
        assertEquals("High, 4.2 m.", r.text().substring(first.start(), first.end()));
        assertEquals("Low.\nAbout 0.8 m.", r.text().substring(second.start(), second.end()));
        assertTrue(r.text().startsWith("<|im_end|>", first.end()));
        assertTrue(r.text().startsWith("<|im_start|>assistant\n", first.start() - "<|im_start|>assistant\n".length()));
        assertEquals(r.text(), ChatTemplate.chatMl().render(CHAT, true));
    }

    @Test
    void defaultSystemMessageOnlyWhenTheFirstMessageIsNotSystem() {
        ChatTemplate t = ChatTemplate.chatMl("Sys.");
        List<ChatTemplate.Message> user = List.of(new ChatTemplate.Message("user", "hi"));
        assertEquals(
                "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
                t.render(user, true));
        assertEquals(ChatTemplate.chatMl().render(CHAT, false), t.render(CHAT, false));
        ChatTemplate.RenderedChat r = t.renderWithSpans(
                List.of(new ChatTemplate.Message("user", "hi"), new ChatTemplate.Message("assistant", "yo")), false);
        ChatTemplate.Span s = r.assistantContent().getFirst();
        assertEquals("yo", r.text().substring(s.start(), s.end()));
    }

    @Test
    void renderedChatEncodesWithSingleIdMarkers() throws Exception {
        Path json = Path.of(getClass().getResource("/tokenizer/tokenizer.json").toURI());
        Tokenizer qwen = Tokenizer.load(json);
        String text = ChatTemplate.chatMl().render(List.of(new ChatTemplate.Message("user", "hi")), false);
        // the same ids the golden case "<|im_start|>user\nhi<|im_end|>\n" has
        assertArrayEquals(new int[] {151644, 872, 198, 6023, 151645, 198}, qwen.encode(text));
    }

    Path config(Object chatTemplate) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("model"));
        Files.writeString(dir.resolve("tokenizer_config.json"), Json.write(Map.of("chat_template", chatTemplate)));
        return dir;
    }

    @Test
    void loadsQwen25StyleTemplateWithItsDefaultSystemMessage() throws IOException {
        // a fragment in the shape of Qwen2.5's Jinja: the newline is an escaped \n inside a Jinja string
        String template = "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\n"
                + ChatTemplate.QWEN25_SYSTEM + "<|im_end|>\\n' }}{%- endif %}"
                + "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}";
        ChatTemplate t = ChatTemplate.load(config(template));
        assertEquals(Optional.of(ChatTemplate.QWEN25_SYSTEM), t.defaultSystemMessage());
        assertEquals(
                "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                        + "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
                t.render(List.of(new ChatTemplate.Message("user", "hi")), true));
    }

    @Test
    void loadsPlainChatMlWithoutDefault() throws IOException {
        String template = "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
                + "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
        assertEquals(Optional.empty(), ChatTemplate.load(config(template)).defaultSystemMessage());
    }

    @Test
    void refusesOtherTemplatesAndBrokenConfigs() throws IOException {
        InputException e = assertThrows(
                InputException.class, () -> ChatTemplate.load(config("{{ bos_token }}[INST] {{ m.content }} [/INST]")));
        assertTrue(e.getMessage().contains("only ChatML templates"), e.getMessage());
        assertTrue(e.getMessage().contains("tokenizer_config.json"), e.getMessage());

        e = assertThrows(InputException.class, () -> ChatTemplate.load(config(List.of())));
        assertTrue(e.getMessage().contains("chat_template is missing or not a string"), e.getMessage());

        e = assertThrows(InputException.class, () -> ChatTemplate.load(tmp.resolve("absent")));
        assertTrue(e.getMessage().contains("no such file"), e.getMessage());

        Path dir = Files.createDirectories(tmp.resolve("bad"));
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"chat_template\": ");
        e = assertThrows(InputException.class, () -> ChatTemplate.load(dir));
        assertTrue(e.getMessage().contains("malformed JSON"), e.getMessage());
    }
}
