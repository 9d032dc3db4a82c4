package dev.m2q.core.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Cuts normalized text into pre-tokens, each of which BPE encodes on its own: a chain of "Isolated" regex splits
 * (every match becomes a piece, and so does the text between matches, so no character is lost), followed by
 * Hugging Face's ByteLevel step, which turns each piece into its byte-level form.
 *
 * <p>Hugging Face evaluates the patterns with Oniguruma: {@code \s} is Unicode whitespace, {@code \p{L}} and
 * {@code \p{N}} are Unicode categories, and matching runs over code points. Java gets the same by compiling with
 * {@link Pattern#UNICODE_CHARACTER_CLASS} (without it {@code \s} would be ASCII-only and a no-break space or an
 * ideographic space would fall into the wrong branch); Java regex already treats a surrogate pair as one
 * character.
 */
final class PreTokenizer {
    /** The pattern GPT-2 splits with; ByteLevel applies it when its {@code use_regex} is true. */
    static final String GPT2_PATTERN =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    private final List<Pattern> splits;

    /** @param patterns the regex splits, applied in order, each to every piece the previous one produced */
    PreTokenizer(List<String> patterns) {
        this.splits = patterns.stream().map(PreTokenizer::compile).toList();
    }

    static Pattern compile(String regex) {
        return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
    }

    /** Calls {@code sink} with the byte-level form of each pre-token of {@code text}, in order. */
    void split(String text, Consumer<String> sink) {
        List<String> pieces = List.of(text);
        for (Pattern p : splits) {
            List<String> next = new ArrayList<>();
            for (String piece : pieces) {
                isolate(p, piece, next);
            }
            pieces = next;
        }
        for (String piece : pieces) {
            sink.accept(ByteLevel.encode(piece));
        }
    }

    /** Hugging Face's "Isolated" behaviour: matches and the gaps between them, empty ones dropped. */
    private static void isolate(Pattern p, String text, List<String> out) {
        Matcher m = p.matcher(text);
        int last = 0;
        while (m.find()) {
            if (m.start() == m.end()) {
                continue;
            }
            if (m.start() > last) {
                out.add(text.substring(last, m.start()));
            }
            out.add(text.substring(m.start(), m.end()));
            last = m.end();
        }
        if (last < text.length()) {
            out.add(text.substring(last));
        }
    }
}
