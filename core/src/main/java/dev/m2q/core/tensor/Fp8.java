package dev.m2q.core.tensor;

/**
 * The two 8-bit float formats of safetensors ({@code F8_E4M3}, {@code F8_E5M2}): decoding (exact: every code is a
 * float) and encoding, both bit-exact.
 *
 * <ul>
 *   <li>E4M3 is OCP "e4m3fn" (torch.float8_e4m3fn): sign, 4 exponent bits with bias 7, 3 mantissa bits; no
 *       infinities, only 0x7F and 0xFF are NaN, so the largest finite value is 1.75 · 2^8 = 448. Encoding rounds to
 *       nearest, ties to even, and <b>saturates</b>: every magnitude ≥ 448, infinities included, becomes ±448
 *       (what the engines' scaled FP8 conversions do — they clamp to ±448 before the cast — and CUDA's
 *       {@code __NV_SATFINITE}). A plain torch cast would give NaN beyond 464 instead.
 *   <li>E5M2 is IEEE-like (torch.float8_e5m2): bias 15, 2 mantissa bits, infinities and NaNs like binary16 — it
 *       is the upper byte of a binary16. Encoding follows IEEE 754 round-to-nearest-even <b>with overflow to
 *       infinity</b> (as a torch cast does): magnitudes ≥ 61440, the midpoint between 57344 and 2^16, become ±∞;
 *       ±∞ stay ±∞. The format has infinities, so saturating would hide an overflow.
 * </ul>
 *
 * Both keep the sign of zero and of NaN; E5M2 also keeps the two payload bits of a NaN (forcing the quiet bit when
 * both are zero), so decoding then encoding gives back every one of the 256 codes of either format.
 */
public final class Fp8 {
    /** Largest finite E4M3 value. */
    public static final float E4M3_MAX = 448f;

    /** Largest finite E5M2 value. */
    public static final float E5M2_MAX = 57344f;

    private static final float[] E4M3 = new float[256];
    private static final float[] E5M2 = new float[256];

    static {
        for (int code = 0; code < 256; code++) {
            E4M3[code] = decodeE4M3(code);
            E5M2[code] = decodeE5M2(code);
        }
    }

    private Fp8() {}

    /** Decodes one OCP e4m3fn code (two's complement byte as stored). */
    public static float e4m3ToFloat(byte code) {
        return E4M3[code & 0xFF];
    }

    /** Decodes one e5m2 code (two's complement byte as stored). */
    public static float e5m2ToFloat(byte code) {
        return E5M2[code & 0xFF];
    }

    /** The e4m3fn code nearest {@code f}, ties to even, saturating at ±448; NaN gives 0x7F or 0xFF (its sign). */
    public static byte floatToE4M3(float f) {
        int sign = (Float.floatToRawIntBits(f) >>> 24) & 0x80;
        if (Float.isNaN(f)) {
            return (byte) (sign | 0x7F);
        }
        float a = Math.abs(f);
        if (a >= E4M3_MAX) {
            return (byte) (sign | 0x7E);
        }
        // Below 448 the nearest code is at most 0x7E (448 itself), so rounding never reaches the NaN code.
        return (byte) (sign | roundMagnitude(a, 3, 7));
    }

    /** The e5m2 code nearest {@code f}, ties to even; overflow (≥ 61440) and ±∞ give ±∞, NaN stays NaN. */
    public static byte floatToE5M2(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 24) & 0x80;
        if (Float.isNaN(f)) {
            int payload = (bits >>> 21) & 0x3;
            return (byte) (sign | 0x7C | (payload == 0 ? 0x2 : payload));
        }
        float a = Math.abs(f);
        if (a == Float.POSITIVE_INFINITY) {
            return (byte) (sign | 0x7C);
        }
        return (byte) (sign | Math.min(0x7C, roundMagnitude(a, 2, 15)));
    }

    /** {@code f} rounded to the nearest e4m3fn value (ties to even, saturating at ±448): decode(encode(f)). */
    public static float roundE4M3(float f) {
        return E4M3[floatToE4M3(f) & 0xFF];
    }

    /**
     * The code, without its sign, of the value nearest {@code a} (finite, ≥ 0) in a format with {@code mantBits}
     * mantissa bits and exponent bias {@code bias}, ties to even, with an unbounded exponent: codes are (biased
     * exponent, mantissa) side by side, so a carry out of the mantissa steps the exponent; the caller handles
     * overflow.
     */
    private static int roundMagnitude(float a, int mantBits, int bias) {
        int bits = Float.floatToRawIntBits(a);
        int exp = (bits >>> 23) - 127;
        int minNormalExp = 1 - bias;
        if (exp < minNormalExp) {
            // Subnormal range: multiples of 2^(minNormalExp − mantBits). The scaled value is exact in double and
            // rint rounds half to even; 2^mantBits, the largest result, is the smallest normal's code.
            return (int) Math.rint(a * Math.scalb(1.0, mantBits - minNormalExp));
        }
        int shift = 23 - mantBits;
        int mantissa = bits & 0x7FFFFF;
        int code = ((exp + bias) << mantBits) | (mantissa >>> shift);
        int rest = mantissa & ((1 << shift) - 1);
        int half = 1 << (shift - 1);
        if (rest > half || (rest == half && (code & 1) != 0)) {
            code++;
        }
        return code;
    }

    /** The upper byte of a binary16; a NaN keeps its two payload bits as the top of the float's mantissa. */
    private static float decodeE5M2(int code) {
        if ((code & 0x7C) == 0x7C && (code & 0x3) != 0) {
            return Float.intBitsToFloat(((code & 0x80) << 24) | 0x7F800000 | ((code & 0x3) << 21));
        }
        return Float.float16ToFloat((short) (code << 8));
    }

    private static float decodeE4M3(int code) {
        int exponent = (code >>> 3) & 0xF;
        int mantissa = code & 0x7;
        if (exponent == 0xF && mantissa == 0x7) {
            return Float.intBitsToFloat((code & 0x80) != 0 ? 0xFFC00000 : 0x7FC00000);
        }
        float magnitude = exponent == 0
                ? mantissa * 0x1p-9f
                : Float.intBitsToFloat(((exponent - 7 + 127) << 23) | (mantissa << 20));
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }
}
