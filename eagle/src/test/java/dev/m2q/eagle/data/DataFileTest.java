package dev.m2q.eagle.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Data generation on the bundled fixture model, the file's round trip, and the reader's refusals. */
class DataFileTest {
    static final Path FIXTURE =
            Path.of("..", "fixtures", "tiny-qwen2").toAbsolutePath().normalize();

    @Test
    void greedyAnswersRoundTripWithTheirLossMask(@TempDir Path dir) throws IOException {
        Path prompts = dir.resolve("prompts.txt");
        Files.writeString(prompts, "In the beginning\n\nAnd God said\n", StandardCharsets.UTF_8);
        Path out = dir.resolve("data.jsonl");
        DataFile d = new DataGeneration(FIXTURE, prompts, out, 6, 0, 0, false).run(Kernels.byName("vector"), l -> {});
        assertEquals(2, d.sequences().size());
        Tokenizer tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
        ChatTemplate chat = ChatTemplate.load(FIXTURE);
        int[] stops = ResponseGenerator.stopIds(FIXTURE, tok);
        assertArrayEquals(new int[] {2045, 2047}, stops, "generation_config's eos ids and ChatML's <|im_end|>");
        try (Qwen2Model model = Qwen2Model.load(FIXTURE, Kernels.byName("vector"))) {
            String[] texts = {"In the beginning", "And God said"};
            for (int i = 0; i < 2; i++) {
                DataFile.Sequence s = d.sequences().get(i);
                int[] prompt = tok.encode(chat.render(List.of(new ChatTemplate.Message("user", texts[i])), true));
                int answer = s.length() - prompt.length;
                assertTrue(answer >= 1 && answer <= 6, "answer length " + answer);
                for (int t = 0; t < s.length(); t++) {
                    assertEquals(t >= prompt.length, s.lossMask()[t], "mask at " + t);
                    if (t < prompt.length) {
                        assertEquals(prompt[t], s.ids()[t], "prompt token " + t);
                    }
                }
                // Greedy: each answer token is the argmax of the full (cache-free) forward at the previous position.
                // The cached decoding sums in another order, so a near-tie could flip; allow the chosen logit to sit
                // 1e-4 (fp32 accumulation over 256-wide rows, ~1e-6 relative, times logits of ~10) below the max.
                float[] logits = model.forward(s.ids());
                int v = model.config().vocabSize();
                for (int t = prompt.length; t < s.length(); t++) {
                    float best = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j < v; j++) {
                        best = Math.max(best, logits[(t - 1) * v + j]);
                    }
                    assertTrue(logits[(t - 1) * v + s.ids()[t]] >= best - 1e-4, "token " + t + " is not greedy");
                }
                boolean stopped = s.ids()[s.length() - 1] == 2045 || s.ids()[s.length() - 1] == 2047;
                assertTrue(stopped || answer == 6, "an answer ends at a stop id or at --max-new-tokens");
            }
        }
        DataFile back = DataFile.read(out);
        assertEquals(d.sequences().size(), back.sequences().size());
        for (int i = 0; i < 2; i++) {
            assertArrayEquals(
                    d.sequences().get(i).ids(), back.sequences().get(i).ids());
            assertArrayEquals(
                    d.sequences().get(i).lossMask(), back.sequences().get(i).lossMask());
        }
        assertEquals(2048, back.vocabSize());
        assertEquals(0.0, back.header().temperature());
        assertTrue(back.header().targetSha256().containsKey("model.safetensors"));
        assertEquals(
                Files.readAllLines(out).getFirst(),
                dev.m2q.core.json.Json.write(back.header()),
                "the header reads back to the line it was written as");
        assertThrows(
                InputException.class, () -> new DataGeneration(FIXTURE, prompts, out, 6, 0, 0, false).checkOutput());
    }

    @Test
    void theReaderRefusesBrokenFilesNamingTheLine(@TempDir Path dir) throws IOException {
        String header = "{\"format\":\"m2q-eagle-data\",\"format_version\":1,\"vocab_size\":10,\"sequences\":1}\n";
        assertRefused(dir, header + "{\"ids\":[1,2,10],\"loss_mask\":[0,1,1]}\n", ":2: ids[2] = 10");
        assertRefused(dir, header + "{\"ids\":[1,2],\"loss_mask\":[0,1,1]}\n", ":2: ids (2) and loss_mask (3)");
        assertRefused(dir, header + "{\"ids\":[1,2],\"loss_mask\":[0,0]}\n", "no assistant token");
        assertRefused(dir, header + "{\"ids\":[1,2],\"loss_mask\":[0,2]}\n", "loss_mask[1] = 2");
        assertRefused(dir, header, "announces 1 sequences but the file holds 0");
        assertRefused(dir, header.replace("m2q-eagle-data", "other") + "{}\n", "not an m2q-eagle-data file");
        assertRefused(dir, header.replace("\"format_version\":1", "\"format_version\":9"), "format_version 9");
        assertRefused(dir, header + "{\"ids\":[1,2\n", ":2: malformed JSON");
        assertRefused(
                dir,
                header.replace("\"sequences\":1", "\"sequences\":1,\"seeds\":3"),
                ":1: not an m2q-eagle-data header");
        assertRefused(
                dir,
                header.replace("\"sequences\":1", "\"sequences\":1,\"seed\":\"x\""),
                ":1: not an m2q-eagle-data header");
        DataFile ok = DataFile.read(write(dir, header + "{\"ids\":[1,2],\"loss_mask\":[0,1]}\n"));
        assertFalse(ok.sequences().get(0).lossMask()[0]);
        assertThrows(InputException.class, () -> ok.checkVocab(11, "x"));
    }

    private static Path write(Path dir, String text) throws IOException {
        Path f = dir.resolve("d.jsonl");
        Files.writeString(f, text, StandardCharsets.UTF_8);
        return f;
    }

    private static void assertRefused(Path dir, String text, String expected) throws IOException {
        Path f = write(dir, text);
        InputException e = assertThrows(InputException.class, () -> DataFile.read(f));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
    }
}
