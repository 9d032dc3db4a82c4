package dev.m2q.core.tensor;

/**
 * The two 8-bit float formats of safetensors ({@code F8_E4M3}, {@code F8_E5M2}) decoded to float; every code is
 * exactly representable as a float, so decoding is exact.
 *
 * <ul>
 *   <li>E4M3 is OCP "e4m3fn" (torch.float8_e4m3fn): sign, 4 exponent bits with bias 7, 3 mantissa bits; no
 *       infinities, only 0x7F and 0xFF are NaN, so the largest finite value is 1.75 · 2^8 = 448.
 *   <li>E5M2 is IEEE-like (torch.float8_e5m2): bias 15, 2 mantissa bits, infinities and NaNs like binary16 — it
 *       is the upper byte of a binary16.
 * </ul>
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
            E5M2[code] = Float.float16ToFloat((short) (code << 8));
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

    private static float decodeE4M3(int code) {
        int exponent = (code >>> 3) & 0xF;
        int mantissa = code & 0x7;
        if (exponent == 0xF && mantissa == 0x7) {
            return Float.NaN;
        }
        float magnitude = exponent == 0
                ? mantissa * 0x1p-9f
                : Float.intBitsToFloat(((exponent - 7 + 127) << 23) | (mantissa << 20));
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }
}
