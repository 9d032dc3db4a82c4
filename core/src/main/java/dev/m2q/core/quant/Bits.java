package dev.m2q.core.quant;

/**
 * The code width of a symmetric quantized linear: 4 (the default, FORMATS.md) or 8 (docs/FORMATS-8BIT.md). Every
 * constant of the symmetric rules follows from the width b: codes in [0, 2^b − 1], zero point 2^(b−1), the RTN
 * scale 2·absmax/(2^b − 1), and 32/b codes per packed int32 word.
 *
 * @param value the width in bits, 4 or 8
 */
public record Bits(int value) {
    public static final Bits FOUR = new Bits(4);
    public static final Bits EIGHT = new Bits(8);

    public Bits {
        if (value != 4 && value != 8) {
            throw new IllegalArgumentException("bits " + value + " is not supported (4 or 8)");
        }
    }

    /** The width for {@code bits}, 4 or 8. */
    public static Bits of(int bits) {
        return bits == 4 ? FOUR : bits == 8 ? EIGHT : new Bits(bits);
    }

    /** The symmetric zero point 2^(b−1): 8 at 4 bits, 128 at 8 bits. */
    public int zero() {
        return 1 << (value - 1);
    }

    /** The largest code 2^b − 1: 15 at 4 bits, 255 at 8 bits. */
    public int maxCode() {
        return (1 << value) - 1;
    }

    /** Codes per int32 word, 32/b: 8 at 4 bits, 4 at 8 bits. */
    public int perWord() {
        return 32 / value;
    }

    /** The mask of one packed code, 2^b − 1. */
    public int mask() {
        return maxCode();
    }
}
