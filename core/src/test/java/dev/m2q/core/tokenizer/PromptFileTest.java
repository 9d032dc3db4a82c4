package dev.m2q.core.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Packed;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.compressors.CompressorStreamFactory;
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

    @Test
    void compressedPromptFilesReadByContent(@TempDir Path dir) throws IOException {
        String jsonl = "{\"prompt\": \"P\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"Q\"}]}\n";
        List<List<ChatTemplate.Message>> expected = PromptFile.read(Files.writeString(dir.resolve("p.jsonl"), jsonl));
        for (String kind : Packed.KINDS) {
            // A .jsonl.zst shard, and the same bytes under a name that says nothing.
            assertEquals(
                    expected,
                    PromptFile.read(Files.write(dir.resolve("p.jsonl." + kind), Packed.compress(kind, jsonl))));
            assertEquals(expected, PromptFile.read(Files.write(dir.resolve("prompts"), Packed.compress(kind, jsonl))));
        }
        // Text prompts in a tar, one per line, members in archive order.
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("b.txt", "second\n".getBytes(StandardCharsets.UTF_8));
        members.put("a.txt.gz", Packed.compress(CompressorStreamFactory.GZIP, "third\nfourth\n"));
        Path tar = Files.write(dir.resolve("prompts.tar"), Packed.tar(members));
        assertEquals(
                List.of("second", "third", "fourth"),
                PromptFile.read(tar).stream().map(c -> c.getFirst().content()).toList());
        members.put("c.jsonl", "{\"prompt\": \"ok\"}\n{\"nothing\": 1}\n".getBytes(StandardCharsets.UTF_8));
        Path bad = Files.write(dir.resolve("bad.tar"), Packed.tar(members));
        InputException e = assertThrows(InputException.class, () -> PromptFile.read(bad));
        assertTrue(e.getMessage().startsWith(bad + " (member c.jsonl):2: "), e.getMessage());
    }
}
