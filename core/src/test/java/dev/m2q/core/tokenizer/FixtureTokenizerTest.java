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
    void chatMarkersAreSingleIds() {
        Tokenizer tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
        int[] ids = tok.encode("<|im_start|>user\nAnd God said<|im_end|>\n<|endoftext|>");
        assertEquals(2046, ids[0]);
        assertEquals(2045, ids[ids.length - 1]);
        assertEquals(2047, ids[ids.length - 3]);
    }
}
