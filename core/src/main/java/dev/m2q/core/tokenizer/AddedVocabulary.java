package dev.m2q.core.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code added_tokens} of a tokenizer.json: strings cut out of the input before normalization and BPE and
 * mapped straight to their ids. At each position the longest token that matches wins, scanning left to right (the
 * leftmost-longest rule of Hugging Face's matcher).
 */
final class AddedVocabulary {
    /** One entry of {@code added_tokens}; the flags have Hugging Face's meaning. */
    record AddedToken(
            String content,
            int id,
            boolean special,
            boolean lstrip,
            boolean rstrip,
            boolean singleWord,
            boolean normalized) {}

    /** A part of the input: either plain text for the model, or one added token. */
    sealed interface Piece permits Text, Token {}

    /** Plain text, never empty. */
    record Text(String text) implements Piece {}

    /** An added token's id. */
    record Token(int id) implements Piece {}

    /** Candidates by first character, longest first. */
    private final Map<Character, List<AddedToken>> byFirstChar = new HashMap<>();

    /** @param tokens the added tokens this pass matches (those with the wanted {@code normalized} flag) */
    AddedVocabulary(List<AddedToken> tokens) {
        for (AddedToken t : tokens) {
            if (!t.content().isEmpty()) {
                byFirstChar
                        .computeIfAbsent(t.content().charAt(0), c -> new ArrayList<>())
                        .add(t);
            }
        }
        for (List<AddedToken> list : byFirstChar.values()) {
            list.sort(Comparator.comparingInt((AddedToken t) -> t.content().length())
                    .reversed());
        }
    }

    /** Splits {@code text} into plain text and added tokens, in order. */
    List<Piece> split(String text) {
        List<Piece> out = new ArrayList<>();
        if (byFirstChar.isEmpty()) {
            if (!text.isEmpty()) {
                out.add(new Text(text));
            }
            return out;
        }
        int textStart = 0;
        int i = 0;
        while (i < text.length()) {
            AddedToken match = longestAt(text, i);
            if (match == null) {
                i++;
                continue;
            }
            int start = i;
            int end = i + match.content().length();
            if (match.lstrip()) {
                while (start > textStart && isWhitespace(text.charAt(start - 1))) {
                    start--;
                }
            }
            if (match.rstrip()) {
                while (end < text.length() && isWhitespace(text.charAt(end))) {
                    end++;
                }
            }
            if (start > textStart) {
                out.add(new Text(text.substring(textStart, start)));
            }
            out.add(new Token(match.id()));
            textStart = end;
            i = end;
        }
        if (textStart < text.length()) {
            out.add(new Text(text.substring(textStart)));
        }
        return out;
    }

    private AddedToken longestAt(String text, int i) {
        List<AddedToken> candidates = byFirstChar.get(text.charAt(i));
        if (candidates == null) {
            return null;
        }
        for (AddedToken t : candidates) {
            int end = i + t.content().length();
            if (text.startsWith(t.content(), i) && (!t.singleWord() || isWholeWord(text, i, end))) {
                return t;
            }
        }
        return null;
    }

    private static boolean isWholeWord(String text, int start, int end) {
        boolean before = start > 0 && isWordChar(text.codePointBefore(start));
        boolean after = end < text.length() && isWordChar(text.codePointAt(end));
        return !before && !after;
    }

    /** Unicode White_Space, which includes the no-break spaces that {@link Character#isWhitespace} leaves out. */
    private static boolean isWhitespace(char c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == '\u0085';
    }

    private static boolean isWordChar(int cp) {
        return Character.isLetterOrDigit(cp) || cp == '_';
    }
}
