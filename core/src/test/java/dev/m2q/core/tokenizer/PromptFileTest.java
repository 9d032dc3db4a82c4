package dev.m2q.core.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PromptFileTest {
    @Test
    void readsTextLinesAndJsonlChatsDroppingTrailingAssistantTurns(@TempDir Path dir) throws IOException {
        Path txt = dir.resolve("p.txt");
        Files.writeString(txt, "first prompt\n\n  second  \n");
        assertEquals(
                List.of(
                        List.of(new ChatTemplate.Message("user", "first prompt")),
                        List.of(new ChatTemplate.Message("user", "second"))),
                PromptFile.read(txt));

        Path jsonl = dir.resolve("p.jsonl");
        Files.writeString(jsonl, """
                {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
                {"prompt": "P"}
                {"text": "T"}
                """);
        List<List<ChatTemplate.Message>> read = PromptFile.read(jsonl);
        assertEquals(
                List.of(new ChatTemplate.Message("system", "S"), new ChatTemplate.Message("user", "Q")), read.get(0));
        assertEquals(List.of(new ChatTemplate.Message("user", "P")), read.get(1));
        assertEquals(List.of(new ChatTemplate.Message("user", "T")), read.get(2));

        Tokenizer tok = Tokenizer.load(Path.of("..", "fixtures", "tiny-qwen2", "tokenizer.json"));
        List<int[]> ids = PromptFile.encode(txt, tok, ChatTemplate.chatMl());
        assertEquals("<|im_start|>user\nfirst prompt<|im_end|>\n<|im_start|>assistant\n", tok.decode(ids.get(0)));
    }

    @Test
    void refusesMalformedLinesNamingFileAndLine(@TempDir Path dir) throws IOException {
        Path bad = dir.resolve("bad.jsonl");
        Files.writeString(
                bad, "{\"prompt\": \"ok\"}\n{\"messages\": [{\"role\": \"assistant\", \"content\": \"A\"}]}\n");
        InputException e = assertThrows(InputException.class, () -> PromptFile.read(bad));
        assertTrue(e.getMessage().contains("bad.jsonl:2"), e.getMessage());
        Path empty = dir.resolve("empty.txt");
        Files.writeString(empty, "\n \n");
        assertThrows(InputException.class, () -> PromptFile.read(empty));
        Files.writeString(bad, "{not json\n");
        assertTrue(assertThrows(InputException.class, () -> PromptFile.read(bad))
                .getMessage()
                .contains("bad.jsonl:1"));
    }
}
