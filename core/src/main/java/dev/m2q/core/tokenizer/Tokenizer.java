package dev.m2q.core.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.function.UnaryOperator;

/**
 * A Hugging Face byte-level BPE tokenizer (the kind Qwen2, Qwen2.5 and Qwen3 ship), read from its
 * {@code tokenizer.json}. Encoding runs the same stages as Hugging Face:
 *
 * <ol>
 *   <li>cut the {@code added_tokens} out of the raw text (leftmost, longest first; special or not, they are always
 *       recognized) and map each to its id;
 *   <li>normalize the text between them (NFC for Qwen), then cut out added tokens marked {@code normalized};
 *   <li>pre-tokenize: regex splits (Qwen's pattern separates words, single digits, punctuation runs and
 *       whitespace), then each piece to its byte-level form (one character per UTF-8 byte);
 *   <li>BPE each pre-token by merge rank.
 * </ol>
 *
 * <p>Instances are immutable apart from an internal cache and safe to share between threads.
 */
public final class Tokenizer {
    private final Map<String, Integer> vocab;
    /** [vocabSize()]: token string by id; added tokens by their content; null for unused ids. */
    private final String[] tokens;

    private final Map<String, Integer> addedIds = new HashMap<>();
    private final Set<Integer> addedIdSet;
    private final Set<String> special = new LinkedHashSet<>();
    private final AddedVocabulary rawAdded;
    private final AddedVocabulary normalizedAdded;
    private final UnaryOperator<String> normalizer;
    private final PreTokenizer preTokenizer;
    private final Bpe bpe;

    Tokenizer(
            Map<String, Integer> vocab,
            Bpe bpe,
            List<AddedVocabulary.AddedToken> added,
            UnaryOperator<String> normalizer,
            PreTokenizer preTokenizer) {
        this.vocab = vocab;
        this.bpe = bpe;
        this.normalizer = normalizer;
        this.preTokenizer = preTokenizer;
        int maxId = -1;
        for (int id : vocab.values()) {
            maxId = Math.max(maxId, id);
        }
        for (AddedVocabulary.AddedToken t : added) {
            maxId = Math.max(maxId, t.id());
        }
        this.tokens = new String[maxId + 1];
        vocab.forEach((token, id) -> tokens[id] = token);
        for (AddedVocabulary.AddedToken t : added) {
            tokens[t.id()] = t.content();
            addedIds.put(t.content(), t.id());
            if (t.special()) {
                special.add(t.content());
            }
        }
        this.addedIdSet = Set.copyOf(addedIds.values());
        this.rawAdded =
                new AddedVocabulary(added.stream().filter(t -> !t.normalized()).toList());
        this.normalizedAdded = new AddedVocabulary(
                added.stream().filter(AddedVocabulary.AddedToken::normalized).toList());
    }

    /**
     * Reads a {@code tokenizer.json}.
     *
     * @throws dev.m2q.core.InputException naming the file and the problem when it is missing, is not JSON, or
     *     describes a tokenizer other than byte-level BPE
     */
    public static Tokenizer load(Path tokenizerJson) {
        return TokenizerFile.read(tokenizerJson);
    }

    /** Token ids of {@code text}; adds no BOS/EOS of its own. */
    public int[] encode(String text) {
        IntList out = new IntList(Math.max(16, text.length() / 3));
        for (AddedVocabulary.Piece raw : rawAdded.split(text)) {
            switch (raw) {
                case AddedVocabulary.Token t -> out.add(t.id());
                case AddedVocabulary.Text t -> {
                    for (AddedVocabulary.Piece p : normalizedAdded.split(normalizer.apply(t.text()))) {
                        switch (p) {
                            case AddedVocabulary.Token n -> out.add(n.id());
                            case AddedVocabulary.Text n ->
                                preTokenizer.split(n.text(), word -> out.addAll(bpe.encode(word)));
                        }
                    }
                }
            }
        }
        return out.toArray();
    }

    /**
     * The text of {@code ids}: vocabulary tokens turned back into bytes and decoded as UTF-8, with each malformed
     * byte sequence (say, a character cut between two tokens) becoming U+FFFD, as Hugging Face's lossy decode does;
     * added and special tokens appear as their content.
     *
     * @throws IllegalArgumentException for an id no token has
     */
    public String decode(int[] ids) {
        StringBuilder text = new StringBuilder();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int id : ids) {
            String token = token(id);
            if (addedIdSet.contains(id)) {
                text.append(bytes.toString(StandardCharsets.UTF_8)).append(token);
                bytes.reset();
            } else {
                ByteLevel.appendBytes(token, bytes);
            }
        }
        return text.append(bytes.toString(StandardCharsets.UTF_8)).toString();
    }

    /** One more than the largest id of the vocabulary and the added tokens. */
    public int vocabSize() {
        return tokens.length;
    }

    /** The id of an added token (by its content) or of a vocabulary token (in byte-level form, so " a" is "Ġa"). */
    public OptionalInt tokenId(String token) {
        Integer id = addedIds.get(token);
        if (id == null) {
            id = vocab.get(token);
        }
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * The token with this id: an added token's content, or a vocabulary token in byte-level form.
     *
     * @throws IllegalArgumentException for an id no token has
     */
    public String token(int id) {
        if (id < 0 || id >= tokens.length || tokens[id] == null) {
            throw new IllegalArgumentException("no token has id " + id + " (vocabulary size " + tokens.length + ")");
        }
        return tokens[id];
    }

    /** The contents of the added tokens marked special, such as {@code <|im_start|>}, in file order. */
    public Set<String> specialTokens() {
        return Collections.unmodifiableSet(special);
    }

    /** A growable int array, to avoid boxing while collecting ids. */
    private static final class IntList {
        private int[] a;
        private int size;

        IntList(int capacity) {
            a = new int[capacity];
        }

        void add(int v) {
            if (size == a.length) {
                a = Arrays.copyOf(a, a.length * 2);
            }
            a[size++] = v;
        }

        void addAll(int[] vs) {
            if (size + vs.length > a.length) {
                a = Arrays.copyOf(a, Math.max(a.length * 2, size + vs.length));
            }
            System.arraycopy(vs, 0, a, size, vs.length);
            size += vs.length;
        }

        int[] toArray() {
            return Arrays.copyOf(a, size);
        }
    }
}
