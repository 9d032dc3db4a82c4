package dev.m2q.core.tokenizer;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Reads a Hugging Face {@code tokenizer.json} into a {@link Tokenizer}, accepting exactly the byte-level BPE subset
 * m2q implements and refusing everything else by name, so that an unsupported tokenizer fails at load time instead
 * of producing wrong ids.
 */
final class TokenizerFile {
    private final Path file;

    private TokenizerFile(Path file) {
        this.file = file;
    }

    static Tokenizer read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new InputException(file + ": no such file (expected the model's tokenizer.json)", e);
        } catch (CharacterCodingException e) {
            throw new InputException(file + ": not UTF-8 text", e);
        } catch (IOException | UncheckedIOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        }
        Map<String, Object> root;
        try {
            root = Json.parseObject(text);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
        return new TokenizerFile(file).build(root);
    }

    private Tokenizer build(Map<String, Object> root) {
        Map<String, Object> model = object(root, "model", "model");
        String type = model.containsKey("type") ? string(model, "type", "model.type") : "BPE";
        if (!type.equals("BPE")) {
            throw fail("model.type is \"" + type + "\"; only byte-level BPE tokenizers (as in Qwen2) are supported");
        }
        refuseIf(model.get("dropout") != null, "model.dropout is set; BPE dropout is not deterministic");
        refuseIf(bool(model, "byte_fallback", false), "model.byte_fallback is true; it is not supported");
        refuseIf(
                !optionalString(model, "continuing_subword_prefix").isEmpty(),
                "model.continuing_subword_prefix is set");
        refuseIf(!optionalString(model, "end_of_word_suffix").isEmpty(), "model.end_of_word_suffix is set");

        Map<String, Integer> vocab = vocab(object(model, "vocab", "model.vocab"));
        for (int b = 0; b < 256; b++) {
            if (!vocab.containsKey(String.valueOf(ByteLevel.charOf(b)))) {
                throw fail(
                        "model.vocab lacks the byte-level token for byte " + b + "; not a byte-level BPE vocabulary");
            }
        }
        Map<Long, Bpe.Merge> merges = merges(model.get("merges"), vocab);
        Bpe bpe = new Bpe(vocab, merges, bool(model, "ignore_merges", false));

        List<AddedVocabulary.AddedToken> added = addedTokens(root.get("added_tokens"));
        UnaryOperator<String> normalizer = normalizer(root.get("normalizer"), "normalizer");
        PreTokenizer preTokenizer = preTokenizer(root.get("pre_tokenizer"));
        checkDecoder(root.get("decoder"));
        checkPostProcessor(root.get("post_processor"));
        return new Tokenizer(vocab, bpe, added, normalizer, preTokenizer);
    }

    private Map<String, Integer> vocab(Map<String, Object> json) {
        Map<String, Integer> vocab = new HashMap<>(json.size() * 2);
        for (Map.Entry<String, Object> e : json.entrySet()) {
            if (!(e.getValue() instanceof Long id) || id < 0 || id > Integer.MAX_VALUE) {
                throw fail("model.vocab[\"" + e.getKey() + "\"] is not a non-negative integer id");
            }
            vocab.put(e.getKey(), id.intValue());
        }
        return vocab;
    }

    /** Merges as "a b" strings (older files) or ["a", "b"] pairs (newer files); the rank is the index. */
    private Map<Long, Bpe.Merge> merges(Object json, Map<String, Integer> vocab) {
        if (!(json instanceof List<?> list)) {
            throw fail("model.merges is missing or not an array");
        }
        Map<Long, Bpe.Merge> merges = new HashMap<>(list.size() * 2);
        for (int rank = 0; rank < list.size(); rank++) {
            Object m = list.get(rank);
            String left;
            String right;
            if (m instanceof String s) {
                int space = s.indexOf(' ', 1);
                if (space < 0 || space != s.lastIndexOf(' ')) {
                    throw fail("model.merges[" + rank + "] \"" + s + "\" is not two tokens separated by one space");
                }
                left = s.substring(0, space);
                right = s.substring(space + 1);
            } else if (m instanceof List<?> p
                    && p.size() == 2
                    && p.get(0) instanceof String a
                    && p.get(1) instanceof String b) {
                left = a;
                right = b;
            } else {
                throw fail("model.merges[" + rank + "] is neither \"a b\" nor [\"a\", \"b\"]");
            }
            Integer l = vocab.get(left);
            Integer r = vocab.get(right);
            Integer merged = vocab.get(left + right);
            if (l == null || r == null || merged == null) {
                throw fail("model.merges[" + rank + "] (" + left + ", " + right
                        + ") uses a token missing from model.vocab");
            }
            merges.putIfAbsent(Bpe.pair(l, r), new Bpe.Merge(rank, merged));
        }
        return merges;
    }

    private List<AddedVocabulary.AddedToken> addedTokens(Object json) {
        List<AddedVocabulary.AddedToken> out = new ArrayList<>();
        if (json == null) {
            return out;
        }
        if (!(json instanceof List<?> list)) {
            throw fail("added_tokens is not an array");
        }
        for (int i = 0; i < list.size(); i++) {
            String where = "added_tokens[" + i + "]";
            if (!(list.get(i) instanceof Map<?, ?> raw)) {
                throw fail(where + " is not an object");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> t = (Map<String, Object>) raw;
            if (!(t.get("id") instanceof Long id) || id < 0 || id > Integer.MAX_VALUE) {
                throw fail(where + ".id is not a non-negative integer");
            }
            String content = string(t, "content", where + ".content");
            if (content.isEmpty()) {
                throw fail(where + ".content is empty");
            }
            out.add(new AddedVocabulary.AddedToken(
                    content,
                    id.intValue(),
                    bool(t, "special", false),
                    bool(t, "lstrip", false),
                    bool(t, "rstrip", false),
                    bool(t, "single_word", false),
                    bool(t, "normalized", false)));
        }
        return out;
    }

    private UnaryOperator<String> normalizer(Object json, String where) {
        if (json == null) {
            return UnaryOperator.identity();
        }
        Map<String, Object> n = asObject(json, where);
        String type = string(n, "type", where + ".type");
        Normalizer.Form form =
                switch (type) {
                    case "NFC" -> Normalizer.Form.NFC;
                    case "NFD" -> Normalizer.Form.NFD;
                    case "NFKC" -> Normalizer.Form.NFKC;
                    case "NFKD" -> Normalizer.Form.NFKD;
                    case "Sequence" -> null;
                    default ->
                        throw fail(where + ".type \"" + type + "\" is not supported (NFC, NFD, NFKC, NFKD, Sequence)");
                };
        if (form != null) {
            return s -> Normalizer.normalize(s, form);
        }
        List<?> steps = list(n, "normalizers", where + ".normalizers");
        UnaryOperator<String> chain = UnaryOperator.identity();
        for (int i = 0; i < steps.size(); i++) {
            UnaryOperator<String> first = chain;
            UnaryOperator<String> step = normalizer(steps.get(i), where + ".normalizers[" + i + "]");
            chain = s -> step.apply(first.apply(s));
        }
        return chain;
    }

    /** A Sequence of Isolated Splits ending in ByteLevel, or a lone ByteLevel. */
    private PreTokenizer preTokenizer(Object json) {
        if (json == null) {
            throw fail("pre_tokenizer is null; a byte-level BPE tokenizer needs a ByteLevel pre-tokenizer");
        }
        Map<String, Object> p = asObject(json, "pre_tokenizer");
        List<Map<String, Object>> steps = new ArrayList<>();
        List<String> where = new ArrayList<>();
        if (string(p, "type", "pre_tokenizer.type").equals("Sequence")) {
            List<?> list = list(p, "pretokenizers", "pre_tokenizer.pretokenizers");
            for (int i = 0; i < list.size(); i++) {
                String w = "pre_tokenizer.pretokenizers[" + i + "]";
                steps.add(asObject(list.get(i), w));
                where.add(w);
            }
        } else {
            steps.add(p);
            where.add("pre_tokenizer");
        }
        List<String> patterns = new ArrayList<>();
        for (int i = 0; i < steps.size(); i++) {
            Map<String, Object> step = steps.get(i);
            String w = where.get(i);
            String type = string(step, "type", w + ".type");
            boolean last = i == steps.size() - 1;
            switch (type) {
                case "Split" -> {
                    refuseIf(last, w + " is a Split after the last ByteLevel; ByteLevel must come last");
                    patterns.add(splitPattern(step, w));
                }
                case "ByteLevel" -> {
                    refuseIf(!last, w + " is a ByteLevel that is not the last pre-tokenizer");
                    refuseIf(
                            bool(step, "add_prefix_space", false),
                            w + ".add_prefix_space is true; it is not supported");
                    if (bool(step, "use_regex", true)) {
                        patterns.add(PreTokenizer.GPT2_PATTERN);
                    }
                }
                default -> throw fail(w + ".type \"" + type + "\" is not supported (Sequence, Split, ByteLevel)");
            }
        }
        return new PreTokenizer(patterns);
    }

    private String splitPattern(Map<String, Object> split, String where) {
        String behavior = string(split, "behavior", where + ".behavior");
        refuseIf(!behavior.equals("Isolated"), where + ".behavior \"" + behavior + "\" is not supported (Isolated)");
        refuseIf(bool(split, "invert", false), where + ".invert is true; it is not supported");
        Map<String, Object> pattern = object(split, "pattern", where + ".pattern");
        String regex;
        if (pattern.get("Regex") instanceof String r) {
            regex = r;
        } else if (pattern.get("String") instanceof String s) {
            regex = Pattern.quote(s);
        } else {
            throw fail(where + ".pattern has neither a Regex nor a String");
        }
        try {
            PreTokenizer.compile(regex);
        } catch (PatternSyntaxException e) {
            throw fail(where + ".pattern does not compile: " + e.getDescription());
        }
        return regex;
    }

    private void checkDecoder(Object json) {
        if (json != null) {
            String type = string(asObject(json, "decoder"), "type", "decoder.type");
            refuseIf(!type.equals("ByteLevel"), "decoder.type \"" + type + "\" is not supported (ByteLevel)");
        }
    }

    private void checkPostProcessor(Object json) {
        if (json != null) {
            String type = string(asObject(json, "post_processor"), "type", "post_processor.type");
            refuseIf(
                    !type.equals("ByteLevel"),
                    "post_processor.type \"" + type + "\" is not supported (ByteLevel; m2q adds no tokens itself)");
        }
    }

    private Map<String, Object> object(Map<String, Object> map, String key, String where) {
        return asObject(map.get(key), where);
    }

    @SuppressWarnings("unchecked")
    private Map<String, Object> asObject(Object v, String where) {
        if (!(v instanceof Map<?, ?> m)) {
            throw fail(where + " is missing or not an object");
        }
        return (Map<String, Object>) m;
    }

    private List<?> list(Map<String, Object> map, String key, String where) {
        if (!(map.get(key) instanceof List<?> l)) {
            throw fail(where + " is missing or not an array");
        }
        return l;
    }

    private String string(Map<String, Object> map, String key, String where) {
        if (!(map.get(key) instanceof String s)) {
            throw fail(where + " is missing or not a string");
        }
        return s;
    }

    private String optionalString(Map<String, Object> map, String key) {
        Object v = map.get(key);
        if (v == null) {
            return "";
        }
        if (!(v instanceof String s)) {
            throw fail("model." + key + " is not a string");
        }
        return s;
    }

    private boolean bool(Map<String, Object> map, String key, boolean otherwise) {
        Object v = map.get(key);
        if (v == null) {
            return otherwise;
        }
        if (!(v instanceof Boolean b)) {
            throw fail(key + " is not true or false");
        }
        return b;
    }

    private void refuseIf(boolean condition, String what) {
        if (condition) {
            throw fail(what);
        }
    }

    private InputException fail(String what) {
        return new InputException(file + ": " + what);
    }
}
