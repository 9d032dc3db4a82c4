package dev.m2q.core.tensor;

/** bfloat16 and IEEE half conversions. */
public final class Bf16 {
    private Bf16() {}

    /** The float whose upper 16 bits are {@code bits}: exact. */
    public static float toFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** Round to nearest, ties to even, as torch does; NaN stays a quiet NaN. */
    public static short fromFloat(float f) {
        int x = Float.floatToRawIntBits(f);
        if ((x & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((x >>> 16) | 0x0040);
        }
        int lsb = (x >>> 16) & 1;
        return (short) ((x + 0x7FFF + lsb) >>> 16);
    }

    /** Rounds a float to the nearest bfloat16 value and back. */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }

    /** IEEE binary16 to float: exact. */
    public static float halfToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** float to IEEE binary16, round to nearest even. */
    public static short floatToHalf(float f) {
        return Float.floatToFloat16(f);
    }
}
