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
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tokenizer.json features Qwen's file does not exercise, on a tiny hand-made vocabulary: token id = byte value
 * for the 256 byte-level characters, then "bc" 256, "ab" 257, "abc" 258, "Ġa" 259, "xyz" 260 (no merge reaches it).
 * Also: every unsupported or broken file is refused with a message naming the file and the problem.
 */
class TokenizerFileTest {
    @TempDir
    Path tmp;

    static final List<List<String>> MERGES = List.of(
            List.of("b", "c"), // rank 0
            List.of("a", "b"), // rank 1
            List.of("ab", "c"), // rank 2
            List.of("Ġ", "a")); // rank 3

    static Map<String, Object> tiny() {
        Map<String, Object> vocab = new LinkedHashMap<>();
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(ByteLevel.charOf(b)), (long) b);
        }
        long id = 256;
        for (String t : List.of("bc", "ab", "abc", "Ġa", "xyz")) {
            vocab.put(t, id++);
        }
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("ignore_merges", false);
        model.put("vocab", vocab);
        model.put("merges", new ArrayList<>(MERGES));
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("added_tokens", new ArrayList<>());
        root.put("normalizer", null);
        root.put("pre_tokenizer", map("type", "ByteLevel", "add_prefix_space", false, "use_regex", true));
        root.put("decoder", map("type", "ByteLevel"));
        root.put("model", model);
        return root;
    }

    static Map<String, Object> map(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    static Map<String, Object> added(String content, long id, String... flags) {
        Map<String, Object> t = map("id", id, "content", content, "special", false);
        for (String f : flags) {
            t.put(f, true);
        }
        return t;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> model(Map<String, Object> root) {
        return (Map<String, Object>) root.get("model");
    }

    @SuppressWarnings("unchecked")
    static List<Object> addedTokens(Map<String, Object> root) {
        return (List<Object>) root.get("added_tokens");
    }

    Tokenizer load(Consumer<Map<String, Object>> edit) throws IOException {
        Map<String, Object> root = tiny();
        edit.accept(root);
        Path file = tmp.resolve("tokenizer.json");
        Files.writeString(file, Json.write(root));
        return Tokenizer.load(file);
    }

    InputException refused(Consumer<Map<String, Object>> edit) throws IOException {
        return assertThrows(InputException.class, () -> load(edit));
    }

    @Test
    void mergesApplyByRankNotByPosition() throws IOException {
        Tokenizer t = load(root -> {});
        // "abc": (b,c) has rank 0 and beats (a,b), so the result is a + bc, and "abc" is never reached
        assertArrayEquals(new int[] {'a', 256}, t.encode("abc"));
        assertArrayEquals(new int[] {257, 'd'}, t.encode("abd"));
        // " ab": (a,b) rank 1 before (Ġ,a) rank 3
        assertArrayEquals(new int[] {'a', 256, ' ', 257}, t.encode("abc ab"));
        assertArrayEquals(new int[] {259, 'd'}, t.encode(" ad"));
        assertEquals(261, t.vocabSize());
    }

    @Test
    void mergesAsStringsEqualMergesAsPairs() throws IOException {
        String text = "abc ab xyz abd  aab";
        int[] pairs = load(root -> {}).encode(text);
        int[] strings = load(root -> model(root)
                        .put(
                                "merges",
                                MERGES.stream()
                                        .map(p -> p.get(0) + " " + p.get(1))
                                        .toList()))
                .encode(text);
        assertArrayEquals(pairs, strings);
    }

    @Test
    void ignoreMergesTakesWholeVocabularyWords() throws IOException {
        assertArrayEquals(new int[] {'x', 'y', 'z'}, load(root -> {}).encode("xyz"));
        Tokenizer t = load(root -> model(root).put("ignore_merges", true));
        assertArrayEquals(new int[] {260}, t.encode("xyz"));
        assertArrayEquals(new int[] {258}, t.encode("abc"));
        assertArrayEquals(new int[] {257, 'd'}, t.encode("abd"));
    }

    @Test
    void addedTokensHonourLongestMatchAndFlags() throws IOException {
        Tokenizer t = load(root -> {
            List<Object> a = addedTokens(root);
            a.add(added("<m>", 300, "lstrip", "rstrip"));
            a.add(added("<m>>", 301));
            a.add(added("cat", 302, "single_word"));
            a.add(added("<k>", 303));
        });
        assertArrayEquals(new int[] {'a', 300, 'b'}, t.encode("a  <m>\t b"));
        assertArrayEquals(new int[] {301, 303}, t.encode("<m>><k>"));
        assertArrayEquals(new int[] {302, ' ', 302}, t.encode("cat cat"));
        assertArrayEquals(new int[] {'c', 'o', 'n', 'c', 'a', 't'}, t.encode("concat"));
        assertArrayEquals(new int[] {' ', 303, ' '}, t.encode(" <k> "));
        assertEquals("x<k>y", t.decode(t.encode("x<k>y")));
    }

    @Test
    void normalizedAddedTokensMatchAfterNormalization() throws IOException {
        Tokenizer t = load(root -> {
            root.put(
                    "normalizer",
                    map("type", "Sequence", "normalizers", List.of(map("type", "NFD"), map("type", "NFC"))));
            addedTokens(root).add(added("\u00e9", 300, "normalized"));
        });
        assertArrayEquals(new int[] {'a', 300, 'b'}, t.encode("ae\u0301b"));
        assertArrayEquals(new int[] {'a', 300, 'b'}, t.encode("a\u00e9b"));
    }

    @Test
    void stringSplitPatternIsLiteral() throws IOException {
        Tokenizer t = load(root -> root.put(
                "pre_tokenizer",
                map(
                        "type",
                        "Sequence",
                        "pretokenizers",
                        List.of(
                                map(
                                        "type",
                                        "Split",
                                        "pattern",
                                        map("String", "."),
                                        "behavior",
                                        "Isolated",
                                        "invert",
                                        false),
                                map("type", "ByteLevel", "add_prefix_space", false, "use_regex", false)))));
        // splits only at a literal '.' (not at any character), and with no word split a space merges into Ġa
        assertArrayEquals(new int[] {257, '.', 'c', ' ', 'x'}, t.encode("ab.c x"));
        assertArrayEquals(new int[] {'x', 259, 256}, t.encode("x abc"));
    }

    @Test
    void missingFileIsNamed() {
        Path missing = tmp.resolve("nope/tokenizer.json");
        InputException e = assertThrows(InputException.class, () -> Tokenizer.load(missing));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("no such file"), e.getMessage());
    }

    @Test
    void malformedJsonIsNamed() throws IOException {
        Path file = tmp.resolve("tokenizer.json");
        Files.writeString(file, "{\"model\": {\"type\": \"BPE\", ");
        InputException e = assertThrows(InputException.class, () -> Tokenizer.load(file));
        assertTrue(e.getMessage().startsWith(file + ": malformed JSON"), e.getMessage());
    }

    @Test
    void unsupportedPartsAreRefusedByName() throws IOException {
        assertMessage(refused(root -> model(root).put("type", "WordPiece")), "model.type is \"WordPiece\"");
        assertMessage(refused(root -> root.put("normalizer", map("type", "Lowercase"))), "\"Lowercase\"");
        assertMessage(
                refused(root ->
                        root.put("normalizer", map("type", "Sequence", "normalizers", List.of(map("type", "Strip"))))),
                "normalizer.normalizers[0].type \"Strip\"");
        assertMessage(refused(root -> root.put("pre_tokenizer", map("type", "Metaspace"))), "\"Metaspace\"");
        assertMessage(
                refused(root -> root.put(
                        "pre_tokenizer",
                        map(
                                "type",
                                "Sequence",
                                "pretokenizers",
                                List.of(
                                        map("type", "Split", "pattern", map("Regex", "a"), "behavior", "Removed"),
                                        map("type", "ByteLevel", "use_regex", false))))),
                "behavior \"Removed\"");
        assertMessage(refused(root -> root.put("decoder", map("type", "WordPiece"))), "decoder.type \"WordPiece\"");
        assertMessage(
                refused(root -> root.put("post_processor", map("type", "TemplateProcessing"))),
                "post_processor.type \"TemplateProcessing\"");
        assertMessage(refused(root -> model(root).put("byte_fallback", true)), "byte_fallback");
    }

    @Test
    void inconsistentVocabularyIsRefused() throws IOException {
        assertMessage(refused(root -> model(root).put("merges", List.of(List.of("q", "r")))), "model.merges[0] (q, r)");
        assertMessage(refused(root -> model(root).put("merges", List.of("abc"))), "model.merges[0] \"abc\"");
        assertMessage(
                refused(root -> {
                    @SuppressWarnings("unchecked")
                    Map<String, Object> vocab =
                            (Map<String, Object>) model(root).get("vocab");
                    vocab.remove("Ġ");
                }),
                "byte 32");
        assertMessage(refused(root -> root.remove("model")), "model is missing");
    }

    static void assertMessage(InputException e, String part) {
        assertTrue(e.getMessage().contains("tokenizer.json: "), e.getMessage());
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }
}
