package dev.m2q.core.calib;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Packed;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.IntStream;
import org.apache.commons.compress.compressors.CompressorStreamFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CalibrationSetTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    static Tokenizer tok;
    static ChatTemplate chat;
    static int eot;

    @TempDir
    Path tmp;

    @BeforeAll
    static void loadTokenizer() {
        tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
        chat = ChatTemplate.load(FIXTURE);
        eot = tok.tokenId(CalibrationSet.SEPARATOR).orElseThrow();
    }

    Path write(String name, String content) throws IOException {
        return Files.writeString(tmp.resolve(name), content, StandardCharsets.UTF_8);
    }

    static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }

    @Test
    void textFileIsOneDocumentWithItsTokens() throws IOException {
        String text = "In the beginning God created the heaven and the earth.\nAnd the earth was without form.\n";
        CalibrationSet set = CalibrationSet.load(List.of(write("a.txt", text)), tok, chat);
        assertEquals(1, set.documents());
        assertArrayEquals(tok.encode(text), set.tokens());
        assertEquals(tok.encode(text).length, set.totalTokens());
    }

    @Test
    void fixtureCalibrationTextLoads() {
        CalibrationSet set = CalibrationSet.load(List.of(FIXTURE.resolve("calibration.txt")), tok, null);
        assertEquals(1, set.documents());
        assertTrue(set.totalTokens() > 30_000 && set.totalTokens() < 45_000, "tokens: " + set.totalTokens());
        List<int[]> windows = set.sample(16, 512, 7);
        assertEquals(16, windows.size());
    }

    @Test
    void jsonlTextLinesAreSeparatedByEndOfText() throws IOException {
        Path f = write(
                "t.jsonl",
                "{\"text\": \"Let there be light.\", \"id\": 1}\n\n  \n{\"text\": \"And there was light.\"}\n");
        CalibrationSet set = CalibrationSet.load(List.of(f), tok, null);
        assertEquals(2, set.documents());
        assertArrayEquals(
                concat(tok.encode("Let there be light."), new int[] {eot}, tok.encode("And there was light.")),
                set.tokens());
    }

    @Test
    void jsonlChatIsRenderedThroughTheTemplate() throws IOException {
        Path f = write(
                "c.jsonl",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Who begat Enos?\"},"
                        + " {\"role\": \"assistant\", \"content\": \"Seth.\"}]}\n");
        CalibrationSet set = CalibrationSet.load(List.of(f), tok, chat);
        String expected = "<|im_start|>user\nWho begat Enos?<|im_end|>\n<|im_start|>assistant\nSeth.<|im_end|>\n";
        assertEquals(
                expected,
                chat.render(
                        List.of(
                                new ChatTemplate.Message("user", "Who begat Enos?"),
                                new ChatTemplate.Message("assistant", "Seth.")),
                        false));
        int start = tok.tokenId("<|im_start|>").orElseThrow();
        int end = tok.tokenId("<|im_end|>").orElseThrow();
        int[] ids = set.tokens();
        assertArrayEquals(tok.encode(expected), ids);
        assertEquals(start, ids[0]);
        assertEquals(4, Arrays.stream(ids).filter(t -> t == start || t == end).count());
        assertEquals(1, set.documents());
    }

    @Test
    void chatWithoutTemplateIsRefusedNamingTheLine() throws IOException {
        Path f = write("c.jsonl", "{\"text\": \"x\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
        InputException e = assertThrows(InputException.class, () -> CalibrationSet.load(List.of(f), tok, null));
        assertTrue(e.getMessage().startsWith(f + ":2: "), e.getMessage());
        assertTrue(e.getMessage().contains("chat template"), e.getMessage());
    }

    @Test
    void mixedFilesConcatenateInOrder() throws IOException {
        Path a = write("a.txt", "Abraham begat Isaac");
        Path b = write(
                "b.jsonl",
                "{\"text\": \"Isaac begat Jacob\"}\n"
                        + "{\"messages\": [{\"role\": \"user\", \"content\": \"and then?\"}]}\n");
        Path empty = write("e.txt", "");
        CalibrationSet set = CalibrationSet.load(List.of(a, empty, b), tok, chat);
        assertEquals(3, set.documents());
        int[] expected = concat(
                tok.encode("Abraham begat Isaac"),
                new int[] {eot},
                tok.encode("Isaac begat Jacob"),
                new int[] {eot},
                tok.encode("<|im_start|>user\nand then?<|im_end|>\n"));
        assertArrayEquals(expected, set.tokens());
        CalibrationSet reversed = CalibrationSet.load(List.of(b, a), tok, chat);
        assertEquals(expected.length, reversed.totalTokens());
        assertNotEquals(set.hash(), reversed.hash());
        assertEquals(set.hash(), CalibrationSet.load(List.of(a, b), tok, chat).hash());
        assertTrue(set.hash().matches("[0-9a-f]{64}"));
    }

    @Test
    void seededSamplingIsReproducibleAndSlicesTheStream() {
        CalibrationSet set = CalibrationSet.load(List.of(FIXTURE.resolve("heldout.txt")), tok, null);
        int[] all = set.tokens();
        int n = 8;
        int len = 64;
        List<int[]> a = set.sample(n, len, 42);
        List<int[]> b = set.sample(n, len, 42);
        List<int[]> c = set.sample(n, len, 43);
        assertEquals(n, a.size());
        for (int i = 0; i < n; i++) {
            assertArrayEquals(a.get(i), b.get(i));
        }
        assertFalse(IntStream.range(0, n).allMatch(i -> Arrays.equals(a.get(i), c.get(i))));
        int[] starts = set.starts(n, len, 42);
        for (int i = 0; i < n; i++) {
            assertEquals(len, a.get(i).length);
            assertArrayEquals(Arrays.copyOfRange(all, starts[i], starts[i] + len), a.get(i));
        }
    }

    @Test
    void windowsNeverOverlapEvenWhenTight() {
        CalibrationSet set = CalibrationSet.load(List.of(FIXTURE.resolve("heldout.txt")), tok, null);
        int total = set.totalTokens();
        int len = 100;
        int n = total / len;
        for (long seed = 0; seed < 20; seed++) {
            int[] sorted = set.starts(n, len, seed);
            Arrays.sort(sorted);
            assertTrue(sorted[0] >= 0 && sorted[n - 1] <= total - len, Arrays.toString(sorted));
            for (int i = 1; i < n; i++) {
                assertTrue(sorted[i] - sorted[i - 1] >= len, "windows overlap: " + Arrays.toString(sorted));
            }
        }
        assertArrayEquals(set.tokens(), set.sample(1, total, 9).getFirst());
        int[] order = set.starts(n, len, 3);
        assertFalse(IntStream.range(1, n).allMatch(i -> order[i] > order[i - 1]), "windows are not shuffled");
    }

    @Test
    void tooSmallASetIsRefusedWithBothCounts() throws IOException {
        Path f = write("s.txt", "And God said, Let there be light: and there was light.");
        CalibrationSet set = CalibrationSet.load(List.of(f), tok, null);
        int total = set.totalTokens();
        InputException e = assertThrows(InputException.class, () -> set.sample(4, total, 1));
        String m = e.getMessage();
        assertTrue(m.contains("has " + total + " tokens"), m);
        assertTrue(m.contains("need " + (4L * total)), m);
        assertTrue(m.contains("--nsamples") && m.contains("--seqlen"), m);
        assertEquals(2, set.sample(2, total / 2, 1).size());
    }

    @Test
    void malformedJsonlLinesAreNamedByNumber() throws IOException {
        assertLineError("{\"text\": \"ok\"}\n\n{\"text\": 5}\n", ":3: ", "\"text\" must be a string");
        assertLineError("{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n", ":2: ", "not a JSON object");
        assertLineError("[1, 2]\n", ":1: ", "not a JSON object");
        assertLineError("{\"id\": 3}\n", ":1: ", "found neither");
        assertLineError("{\"text\": \"a\", \"messages\": []}\n", ":1: ", "found both");
        assertLineError("{\"messages\": [{\"role\": \"user\"}]}\n", ":1: ", "messages[0]");
        assertLineError("{\"messages\": []}\n", ":1: ", "non-empty list");
    }

    void assertLineError(String content, String where, String what) throws IOException {
        Path f = write("bad.jsonl", content);
        InputException e = assertThrows(InputException.class, () -> CalibrationSet.load(List.of(f), tok, chat));
        assertTrue(e.getMessage().startsWith(f + where), e.getMessage());
        assertTrue(e.getMessage().contains(what), e.getMessage());
    }

    @Test
    void invalidUtf8IsRefusedNamingTheFile() throws IOException {
        Path f = tmp.resolve("latin1.txt");
        Files.write(f, "line one\nna\u00efve".getBytes(StandardCharsets.ISO_8859_1));
        InputException e = assertThrows(InputException.class, () -> CalibrationSet.load(List.of(f), tok, null));
        assertTrue(e.getMessage().startsWith(f + ":2: not valid UTF-8 (byte offset 11)"), e.getMessage());
    }

    @Test
    void missingFileAndEmptyListAreRefused() {
        Path f = tmp.resolve("nope.txt");
        InputException e = assertThrows(InputException.class, () -> CalibrationSet.load(List.of(f), tok, null));
        assertTrue(e.getMessage().startsWith(f + ": cannot read"), e.getMessage());
        assertThrows(InputException.class, () -> CalibrationSet.load(List.of(), tok, null));
    }

    /** Numbered lines of {@code bytes} bytes in all: each line is "line N: …\n". */
    static String lines(int bytes) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; b.length() < bytes; i++) {
            b.append("line ").append(i).append(": the quick brown fox jumps over the lazy dog\n");
        }
        return b.substring(0, bytes);
    }

    @Test
    void textUnderTheCapIsReadWholeAndUnchanged() throws IOException {
        Path a = write("a.txt", lines(5000));
        Path b = write("b.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\"}\n");
        long both = Files.size(a) + Files.size(b);
        CalibrationSet uncapped = CalibrationSet.load(List.of(a, b), tok, chat, Long.MAX_VALUE);
        // A cap equal to the text is not crossed.
        for (long cap : new long[] {CalibrationSet.MAX_TEXT_BYTES, both}) {
            CalibrationSet set = CalibrationSet.load(List.of(a, b), tok, chat, cap);
            assertArrayEquals(uncapped.tokens(), set.tokens());
            assertTrue(set.capped().isEmpty(), set.capped().toString());
        }
        assertArrayEquals(
                concat(tok.encode(lines(5000)), new int[] {eot}, tok.encode("one"), new int[] {eot}, tok.encode("two")),
                uncapped.tokens());
    }

    @Test
    void aFileOverTheCapIsReadUpToItsLastLineWithinIt() throws IOException {
        // 2 MB of text against a 10 000-byte cap: only the complete lines in the first 10 000 bytes are tokenized,
        // later files are not read, and the note says both.
        String text = lines(2_000_000);
        Path big = write("big.txt", text);
        Path later = write("later.txt", "never read");
        CalibrationSet set = CalibrationSet.load(List.of(big, later), tok, chat, 10_000);
        String kept = text.substring(0, text.lastIndexOf('\n', 9_999) + 1);
        assertTrue(kept.length() > 9_900 && kept.length() <= 10_000, "cut at a line end: " + kept.length());
        assertArrayEquals(tok.encode(kept), set.tokens());
        assertEquals(1, set.documents());
        String note = set.capped().orElseThrow();
        assertTrue(note.startsWith("calibration text is capped at 0.0 MiB: read the first"), note);
        assertTrue(note.contains(big.toString()) && note.contains("1.9 MiB"), note);
        assertTrue(note.contains("not read: " + later), note);
        // Deterministic: the same files and cap give the same stream and the same samples.
        CalibrationSet again = CalibrationSet.load(List.of(big, later), tok, chat, 10_000);
        assertEquals(set.hash(), again.hash());
        assertArrayEquals(
                set.sample(4, 64, 3).toArray(int[][]::new),
                again.sample(4, 64, 3).toArray(int[][]::new));

        // The budget is shared: a first file under it leaves the rest for the second.
        Path small = write("small.txt", lines(4000));
        CalibrationSet shared = CalibrationSet.load(List.of(small, big), tok, chat, 10_000);
        String rest = text.substring(0, text.lastIndexOf('\n', 5_999) + 1);
        assertArrayEquals(concat(tok.encode(lines(4000)), new int[] {eot}, tok.encode(rest)), shared.tokens());
    }

    @Test
    void theCapDropsAPartialJsonlLineAndNeverSplitsACharacter() throws IOException {
        StringBuilder jsonl = new StringBuilder();
        for (int i = 0; i < 1000; i++) {
            jsonl.append("{\"text\": \"document ").append(i).append("\"}\n");
        }
        Path f = write("docs.jsonl", jsonl.toString());
        // Each line is 26 or 27 bytes: a 1000-byte cap keeps the lines that end within it, and none is cut.
        CalibrationSet set = CalibrationSet.load(List.of(f), tok, chat, 1000);
        int whole = jsonl.substring(0, 1000).lastIndexOf('\n') + 1;
        long lines = jsonl.substring(0, whole).lines().count();
        assertEquals(lines, set.documents());
        assertTrue(set.capped().isPresent());

        // No line break within the cap: cut before the character that crosses it (é is 2 bytes in UTF-8).
        Path accents = write("accents.txt", "é".repeat(5000));
        CalibrationSet cut = CalibrationSet.load(List.of(accents), tok, chat, 1001);
        assertArrayEquals(tok.encode("é".repeat(500)), cut.tokens());
    }

    @Test
    void compressedAndTarCalibrationGivesTheSameTokenIds() throws IOException {
        String jsonl = "{\"text\": \"In the beginning God created the heaven and the earth.\", \"url\": \"u1\"}\n"
                + "{\"text\": \"And the earth was without form, and void.\"}\n";
        String prose = "And God said, Let there be light: and there was light.\n";
        Path a = write("a.jsonl", jsonl);
        Path b = write("b.txt", prose);
        int[] expected = CalibrationSet.load(List.of(a, b), tok, chat).tokens();
        assertEquals(3, CalibrationSet.load(List.of(a, b), tok, chat).documents());
        for (String kind : Packed.KINDS) {
            // The published c4 shard name (.json, not .jsonl) and a name that says nothing: JSON lines by content.
            Path ca = Files.write(tmp.resolve("c4-train.00000-of-01024.json." + kind), Packed.compress(kind, jsonl));
            Path cb = Files.write(tmp.resolve("b-" + kind), Packed.compress(kind, prose));
            assertArrayEquals(
                    expected, CalibrationSet.load(List.of(ca, cb), tok, chat).tokens(), kind);
            Path shard = Files.write(tmp.resolve("shard"), Packed.compress(kind, jsonl));
            assertArrayEquals(
                    CalibrationSet.load(List.of(a), tok, chat).tokens(),
                    CalibrationSet.load(List.of(shard), tok, chat).tokens(),
                    kind);
        }
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("a.jsonl.zst", Packed.compress(CompressorStreamFactory.ZSTANDARD, jsonl));
        members.put("b.txt", prose.getBytes(StandardCharsets.UTF_8));
        byte[] tar = Packed.tar(members);
        Path t = Files.write(tmp.resolve("calib.tar"), tar);
        Path tgz = Files.write(tmp.resolve("calib.tgz"), Packed.compress(CompressorStreamFactory.GZIP, tar));
        assertArrayEquals(expected, CalibrationSet.load(List.of(t), tok, chat).tokens());
        assertArrayEquals(expected, CalibrationSet.load(List.of(tgz), tok, chat).tokens());
    }

    @Test
    void theCapNamesTheTarMemberItCuts() throws IOException {
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("one.txt", lines(3000).getBytes(StandardCharsets.UTF_8));
        members.put("two.txt", lines(3000).getBytes(StandardCharsets.UTF_8));
        Path t = Files.write(tmp.resolve("c.tar.xz"), Packed.compress(CompressorStreamFactory.XZ, Packed.tar(members)));
        String note = CalibrationSet.load(List.of(t), tok, chat, 4000).capped().orElseThrow();
        assertTrue(note.contains("of " + t + " (member two.txt) (0.0 MiB), up to its last complete line"), note);
    }

    @Test
    void aDefaultCountFitsShortTextAndSaysSo() throws IOException {
        CalibrationSet set = CalibrationSet.load(List.of(FIXTURE.resolve("calibration.txt")), tok, null);
        int total = set.totalTokens();
        int held = total / 1024;
        CalibrationSet.Fit fit = set.fit(128, 1024);
        assertEquals(held, fit.nsamples());
        assertEquals(
                "calibration: text holds " + held + " samples of 1024 tokens, using " + held + " (default 128)",
                fit.note().orElseThrow());
        assertEquals(held, set.sample(fit.nsamples(), 1024, 0).size());
        // Enough text: the default stands and nothing is said; exactly enough is enough.
        assertEquals(new CalibrationSet.Fit(held, Optional.empty()), set.fit(held, 1024));
        assertEquals(new CalibrationSet.Fit(4, Optional.empty()), set.fit(4, 1024));
        // Not even one window: the default stands, and sample() refuses it naming both counts.
        CalibrationSet tiny = CalibrationSet.load(List.of(write("s.txt", "Let there be light.")), tok, null);
        assertEquals(new CalibrationSet.Fit(128, Optional.empty()), tiny.fit(128, 1024));
        assertThrows(InputException.class, () -> tiny.sample(128, 1024, 0));
    }
}
