package dev.m2q.core.quant;

import java.util.Arrays;

/**
 * The GPTQ tensor layout of FORMATS.md §2, bit-exact. Words are signed int32 holding raw bits; nibble j of a
 * word is {@code (word >>> 4j) & 0xF}, element 0 in the lowest nibble.
 *
 * <ul>
 *   <li>{@code qweight} [K/8, N]: qweight[r, n] = Σ_{j=0..7} q[8r+j, n] << 4j (8 consecutive input channels).
 *   <li>{@code qzeros} [groups, N/8]: qzeros[g, c] = Σ_j z'[g, 8c+j] << 4j (8 consecutive output channels),
 *       where z' = zero − 1 (the v1 "gptq" convention), so symmetric 4-bit stores 7 in every nibble.
 *   <li>{@code scales} [groups, N] F16; {@code g_idx} [K] I32.
 * </ul>
 */
public final class GptqPacking {
    /** Every qzeros word of symmetric 4-bit GPTQ: eight nibbles of 8 − 1 = 7. */
    public static final int SYMMETRIC_ZEROS_WORD = 0x77777777;

    private static final int PER_WORD = 8;

    private GptqPacking() {}

    /** codes [K, N] row-major, each in [0, 15] → qweight [K/8, N]. */
    public static int[] packQweight(int[] codes, int k, int n) {
        requireMultipleOf8("K (in_features)", k);
        requireLength("codes", codes.length, (long) k * n);
        int[] packed = new int[k / PER_WORD * n];
        for (int r = 0; r < k / PER_WORD; r++) {
            for (int j = 0; j < PER_WORD; j++) {
                int src = (PER_WORD * r + j) * n;
                for (int c = 0; c < n; c++) {
                    packed[r * n + c] |= nibble(codes[src + c], "code", PER_WORD * r + j, c) << (4 * j);
                }
            }
        }
        return packed;
    }

    /** qweight [K/8, N] → codes [K, N]. */
    public static int[] unpackQweight(int[] qweight, int k, int n) {
        requireMultipleOf8("K (in_features)", k);
        requireLength("qweight", qweight.length, (long) k / PER_WORD * n);
        int[] codes = new int[k * n];
        for (int r = 0; r < k / PER_WORD; r++) {
            for (int j = 0; j < PER_WORD; j++) {
                int dst = (PER_WORD * r + j) * n;
                for (int c = 0; c < n; c++) {
                    codes[dst + c] = (qweight[r * n + c] >>> (4 * j)) & 0xF;
                }
            }
        }
        return codes;
    }

    /** z' = zero − 1, [groups, N] row-major, each in [0, 15] → qzeros [groups, N/8]. */
    public static int[] packQzeros(int[] zerosMinusOne, int groups, int n) {
        requireMultipleOf8("N (out_features)", n);
        requireLength("zeros", zerosMinusOne.length, (long) groups * n);
        int[] packed = new int[groups * (n / PER_WORD)];
        for (int g = 0; g < groups; g++) {
            for (int c = 0; c < n / PER_WORD; c++) {
                int word = 0;
                for (int j = 0; j < PER_WORD; j++) {
                    int col = PER_WORD * c + j;
                    word |= nibble(zerosMinusOne[g * n + col], "zero", g, col) << (4 * j);
                }
                packed[g * (n / PER_WORD) + c] = word;
            }
        }
        return packed;
    }

    /** qzeros [groups, N/8] → z' = zero − 1, [groups, N]. */
    public static int[] unpackQzeros(int[] qzeros, int groups, int n) {
        requireMultipleOf8("N (out_features)", n);
        requireLength("qzeros", qzeros.length, (long) groups * (n / PER_WORD));
        int[] zeros = new int[groups * n];
        for (int g = 0; g < groups; g++) {
            for (int c = 0; c < n / PER_WORD; c++) {
                int word = qzeros[g * (n / PER_WORD) + c];
                for (int j = 0; j < PER_WORD; j++) {
                    zeros[g * n + PER_WORD * c + j] = (word >>> (4 * j)) & 0xF;
                }
            }
        }
        return zeros;
    }

    /** qzeros [groups, N/8] for symmetric 4-bit: every word {@link #SYMMETRIC_ZEROS_WORD}. */
    public static int[] symmetricQzeros(int groups, int n) {
        requireMultipleOf8("N (out_features)", n);
        int[] packed = new int[groups * (n / PER_WORD)];
        Arrays.fill(packed, SYMMETRIC_ZEROS_WORD);
        return packed;
    }

    /** Scales as IEEE fp16 bits; exact, since {@link QuantizedLinear} scales are fp16 values. */
    public static short[] scalesF16(float[] scales) {
        short[] bits = new short[scales.length];
        for (int i = 0; i < scales.length; i++) {
            bits[i] = Float.floatToFloat16(scales[i]);
            if (Float.float16ToFloat(bits[i]) != scales[i]) {
                throw new IllegalArgumentException(
                        "scale " + scales[i] + " at index " + i + " is not exactly representable in fp16");
            }
        }
        return bits;
    }

    /** fp16 bits → float, exact. */
    public static float[] scalesFromF16(short[] bits) {
        float[] scales = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            scales[i] = Float.float16ToFloat(bits[i]);
        }
        return scales;
    }

    /** g_idx [K] = k / G: the layout without act-order, or with act-order and static groups. */
    public static int[] gIdxSequential(int k, int groupSize) {
        if (groupSize <= 0 || k % groupSize != 0) {
            throw new IllegalArgumentException("K " + k + " is not a multiple of the group size " + groupSize);
        }
        int[] g = new int[k];
        for (int i = 0; i < k; i++) {
            g[i] = i / groupSize;
        }
        return g;
    }

    /**
     * codes [K, N] at {@code bits} → qweight [K/(32/b), N]: 32/b consecutive input channels per word, element j at
     * bit b·j (at 8 bits four codes per word, one per byte, element 0 in the lowest byte; docs/FORMATS-8BIT.md).
     * At 4 bits it is {@link #packQweight(int[], int, int)}.
     */
    public static int[] packQweight(int[] codes, int k, int n, Bits bits) {
        int per = bits.perWord();
        int b = bits.value();
        requireMultiple("K (in_features)", k, bits);
        requireLength("codes", codes.length, (long) k * n);
        int[] packed = new int[k / per * n];
        for (int r = 0; r < k / per; r++) {
            for (int j = 0; j < per; j++) {
                int src = (per * r + j) * n;
                for (int c = 0; c < n; c++) {
                    packed[r * n + c] |= field(codes[src + c], "code", per * r + j, c, bits) << (b * j);
                }
            }
        }
        return packed;
    }

    /** qweight [K/(32/b), N] → codes [K, N] at {@code bits}. */
    public static int[] unpackQweight(int[] qweight, int k, int n, Bits bits) {
        int per = bits.perWord();
        int b = bits.value();
        int mask = bits.mask();
        requireMultiple("K (in_features)", k, bits);
        requireLength("qweight", qweight.length, (long) k / per * n);
        int[] codes = new int[k * n];
        for (int r = 0; r < k / per; r++) {
            for (int j = 0; j < per; j++) {
                int dst = (per * r + j) * n;
                for (int c = 0; c < n; c++) {
                    codes[dst + c] = (qweight[r * n + c] >>> (b * j)) & mask;
                }
            }
        }
        return codes;
    }

    /** z' = zero − 1, [groups, N], each in [0, 2^b − 1] → qzeros [groups, N/(32/b)] at {@code bits}. */
    public static int[] packQzeros(int[] zerosMinusOne, int groups, int n, Bits bits) {
        int per = bits.perWord();
        int b = bits.value();
        requireMultiple("N (out_features)", n, bits);
        requireLength("zeros", zerosMinusOne.length, (long) groups * n);
        int[] packed = new int[groups * (n / per)];
        for (int g = 0; g < groups; g++) {
            for (int c = 0; c < n / per; c++) {
                int word = 0;
                for (int j = 0; j < per; j++) {
                    int col = per * c + j;
                    word |= field(zerosMinusOne[g * n + col], "zero", g, col, bits) << (b * j);
                }
                packed[g * (n / per) + c] = word;
            }
        }
        return packed;
    }

    /** qzeros [groups, N/(32/b)] → z' = zero − 1, [groups, N] at {@code bits}. */
    public static int[] unpackQzeros(int[] qzeros, int groups, int n, Bits bits) {
        int per = bits.perWord();
        int b = bits.value();
        int mask = bits.mask();
        requireMultiple("N (out_features)", n, bits);
        requireLength("qzeros", qzeros.length, (long) groups * (n / per));
        int[] zeros = new int[groups * n];
        for (int g = 0; g < groups; g++) {
            for (int c = 0; c < n / per; c++) {
                int word = qzeros[g * (n / per) + c];
                for (int j = 0; j < per; j++) {
                    zeros[g * n + per * c + j] = (word >>> (b * j)) & mask;
                }
            }
        }
        return zeros;
    }

    /**
     * The qzeros word of symmetric GPTQ at {@code bits}: every field zero − 1 (0x77777777 at 4 bits, four bytes of
     * 128 − 1 = 0x7F, i.e. 0x7F7F7F7F, at 8 bits).
     */
    public static int symmetricZerosWord(Bits bits) {
        int word = 0;
        for (int j = 0; j < bits.perWord(); j++) {
            word |= (bits.zero() - 1) << (bits.value() * j);
        }
        return word;
    }

    /** qzeros [groups, N/(32/b)] for symmetric GPTQ at {@code bits}: every word {@link #symmetricZerosWord}. */
    public static int[] symmetricQzeros(int groups, int n, Bits bits) {
        requireMultiple("N (out_features)", n, bits);
        int[] packed = new int[groups * (n / bits.perWord())];
        Arrays.fill(packed, symmetricZerosWord(bits));
        return packed;
    }

    private static int field(int v, String what, int row, int col, Bits bits) {
        if (v < 0 || v > bits.maxCode()) {
            throw new IllegalArgumentException(
                    what + " " + v + " at [" + row + ", " + col + "] not in [0, " + bits.maxCode() + "]");
        }
        return v;
    }

    private static void requireMultiple(String what, int v, Bits bits) {
        int per = bits.perWord();
        if (v <= 0 || v % per != 0) {
            throw new IllegalArgumentException(what + " = " + v + " is not a positive multiple of " + per
                    + "; GPTQ packs " + per + " " + bits.value() + "-bit values per int32");
        }
    }

    private static int nibble(int v, String what, int row, int col) {
        if (v < 0 || v > 0xF) {
            throw new IllegalArgumentException(what + " " + v + " at [" + row + ", " + col + "] not in [0, 15]");
        }
        return v;
    }

    private static void requireMultipleOf8(String what, int v) {
        if (v <= 0 || v % PER_WORD != 0) {
            throw new IllegalArgumentException(
                    what + " = " + v + " is not a positive multiple of 8; GPTQ packs 8 four-bit values per int32");
        }
    }

    private static void requireLength(String what, int actual, long expected) {
        if (actual != expected) {
            throw new IllegalArgumentException(what + " has " + actual + " values, expected " + expected);
        }
    }
}
