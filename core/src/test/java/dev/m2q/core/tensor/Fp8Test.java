package dev.m2q.core.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** All 256 codes of both FP8 flavours against the textbook formula, computed here in double. Bit-exact. */
class Fp8Test {
    /** (-1)^s · 2^(e - bias) · (1 + m / 2^mbits), or 2^(1 - bias) · m / 2^mbits when e = 0. */
    private static double reference(int code, int expBits, int mantBits, int bias) {
        int s = code >>> 7;
        int e = (code >>> mantBits) & ((1 << expBits) - 1);
        int m = code & ((1 << mantBits) - 1);
        double mag = e == 0
                ? Math.pow(2, 1 - bias) * m / (1 << mantBits)
                : Math.pow(2, e - bias) * (1 + (double) m / (1 << mantBits));
        return s == 1 ? -mag : mag;
    }

    @Test
    void e4m3AllCodes() {
        int nans = 0;
        for (int code = 0; code < 256; code++) {
            float got = Fp8.e4m3ToFloat((byte) code);
            if ((code & 0x7F) == 0x7F) {
                assertTrue(Float.isNaN(got), "code " + code);
                nans++;
                continue;
            }
            double want = reference(code, 4, 3, 7);
            assertEquals(
                    Double.doubleToRawLongBits(want),
                    Double.doubleToRawLongBits(got),
                    "code 0x" + Integer.toHexString(code));
            assertTrue(Float.isFinite(got), "e4m3fn has no infinities");
        }
        assertEquals(2, nans);
        assertEquals(448f, Fp8.e4m3ToFloat((byte) 0x7E));
        assertEquals(-448f, Fp8.e4m3ToFloat((byte) 0xFE));
        assertEquals(Fp8.E4M3_MAX, Fp8.e4m3ToFloat((byte) 0x7E));
        assertEquals(0x1p-9f, Fp8.e4m3ToFloat((byte) 0x01), "smallest subnormal");
        assertEquals(0x1p-6f, Fp8.e4m3ToFloat((byte) 0x08), "smallest normal");
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(Fp8.e4m3ToFloat((byte) 0x80)));
    }

    @Test
    void e5m2AllCodes() {
        for (int code = 0; code < 256; code++) {
            float got = Fp8.e5m2ToFloat((byte) code);
            int e = (code >>> 2) & 0x1F;
            int m = code & 3;
            if (e == 31) {
                if (m == 0) {
                    assertEquals(code >= 128 ? Float.NEGATIVE_INFINITY : Float.POSITIVE_INFINITY, got);
                } else {
                    assertTrue(Float.isNaN(got), "code " + code);
                }
                continue;
            }
            double want = reference(code, 5, 2, 15);
            assertEquals(
                    Double.doubleToRawLongBits(want),
                    Double.doubleToRawLongBits(got),
                    "code 0x" + Integer.toHexString(code));
        }
        assertEquals(57344f, Fp8.e5m2ToFloat((byte) 0x7B));
        assertEquals(Fp8.E5M2_MAX, Fp8.e5m2ToFloat((byte) 0x7B));
        assertEquals(0x1p-16f, Fp8.e5m2ToFloat((byte) 0x01), "smallest subnormal");
    }
}
