package dev.m2q.core.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The bundled model's own tokenizer: the Java encoder must give, id for id, what the fixture's Python encoder
 * (tools/fixture/bpe.py, an independent implementation) produced for the held-out text.
 */
class FixtureTokenizerTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    @Test
    void heldOutIdsMatchThePythonEncoder() throws IOException {
        Tokenizer tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
        assertEquals(2048, tok.vocabSize());
        List<?> want = (List<?>)
                Json.parse(Files.readString(Path.of("..", "fixtures", "golden", "tiny-qwen2-heldout-ids.json")));
        int[] expected = want.stream().mapToInt(o -> ((Long) o).intValue()).toArray();
        String text = Files.readString(FIXTURE.resolve("heldout.txt"));
        int[] got = tok.encode(text);
        assertArrayEquals(expected, got);
        assertEquals(text, tok.decode(got));
    }

    @Test
    @SuppressWarnings("unchecked")
    void chatTemplateRendersTheGoldenChatMlPrompt() throws IOException {
        // Golden sequence 2 is the Python encoder's ids of a ChatML prompt (system, user, generation prompt).
        List<java.util.Map<String, Object>> sources = (List<java.util.Map<String, Object>>)
                Json.parse(Files.readString(Path.of("..", "fixtures", "golden", "tiny-qwen2-logits.json")));
        String text = (String) sources.get(2).get("text");
        String system = text.substring(text.indexOf("system\n") + 7, text.indexOf("<|im_end|>"));
        int userStart = text.indexOf("user\n") + 5;
        String user = text.substring(userStart, text.indexOf("<|im_end|>", userStart));
        ChatTemplate chat = ChatTemplate.load(FIXTURE);
        String rendered = chat.render(
                List.of(new ChatTemplate.Message("system", system), new ChatTemplate.Message("user", user)), true);
        assertEquals(text, rendered);
        Tokenizer tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
        try (dev.m2q.core.io.Checkpoint golden =
                dev.m2q.core.io.Checkpoint.open(Path.of("..", "fixtures", "golden", "tiny-qwen2-logits.safetensors"))) {
            long[] want = golden.tensor("ids.2").toLongArray();
            assertArrayEquals(
                    java.util.Arrays.stream(want).mapToInt(l -> (int) l).toArray(), tok.encode(rendered));
        }
    }

    @Test
    void chatMarkersAreSingleIds() {
        Tokenizer tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
        int[] ids = tok.encode("<|im_start|>user\nAnd God said<|im_end|>\n<|endoftext|>");
        assertEquals(2046, ids[0]);
        assertEquals(2045, ids[ids.length - 1]);
        assertEquals(2047, ids[ids.length - 3]);
    }
}
