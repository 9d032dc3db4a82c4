package dev.m2q.core.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * GPT-2's byte-to-unicode table: each of the 256 byte values stands for one printable character, so that a BPE
 * vocabulary of strings can cover arbitrary bytes. Printable Latin-1 bytes stand for themselves; the other 68
 * (controls, space, soft hyphen, ...) map in byte order to U+0100 onwards, so a space is 'Ġ' (U+0120) and a newline
 * 'Ċ' (U+010A).
 */
final class ByteLevel {
    /** [256]: byte value (0..255) to its stand-in character. */
    private static final char[] BYTE_TO_CHAR = new char[256];

    /** [0x144]: stand-in character to byte value, -1 where a character stands for no byte. */
    private static final int[] CHAR_TO_BYTE = new int[0x144];

    static {
        Arrays.fill(CHAR_TO_BYTE, -1);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + extra++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {}

    /** The stand-in string for the UTF-8 bytes of {@code text}: one character per byte. */
    static String encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        char[] out = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            out[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        }
        return new String(out);
    }

    /** The stand-in character for one byte value (0..255). */
    static char charOf(int b) {
        return BYTE_TO_CHAR[b];
    }

    /**
     * Appends the bytes a vocabulary token stands for. A token with a character outside the table (not produced
     * by byte-level BPE) contributes its own UTF-8 bytes, as Hugging Face's ByteLevel decoder does.
     */
    static void appendBytes(String token, ByteArrayOutputStream out) {
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            if (c >= CHAR_TO_BYTE.length || CHAR_TO_BYTE[c] < 0) {
                out.writeBytes(token.getBytes(StandardCharsets.UTF_8));
                return;
            }
        }
        for (int i = 0; i < token.length(); i++) {
            out.write(CHAR_TO_BYTE[token.charAt(i)]);
        }
    }
}
