package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.tensor.Fp8;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The 8-bit scale rules and fake quantization, and the scheme names users type. All bit-exact. */
class EightBitTest {
    @Test
    void scalesAreAmaxOver448And127CorrectlyRounded() {
        SplittableRandom r = new SplittableRandom(11);
        for (int i = 0; i < 100_000; i++) {
            float amax = (float) Math.scalb(r.nextDouble(0.5, 1), r.nextInt(-40, 40));
            // Recomputed in double and rounded once: for a float quotient this equals the correctly rounded fp32
            // division (53 ≥ 2·24 + 2 bits, so the double rounding is innocuous). Bit-exact.
            assertEquals((float) (amax / 448.0), EightBit.FP8.scale(amax), 0f);
            assertEquals((float) (amax / 127.0), EightBit.INT8.scale(amax), 0f);
        }
        assertEquals(1f / 448, EightBit.FP8.scale(0f), 0f, "an all-zero range scales as amax 1");
        assertThrows(IllegalArgumentException.class, () -> EightBit.FP8.scale(Float.NaN));
        assertThrows(IllegalArgumentException.class, () -> EightBit.INT8.scale(Float.POSITIVE_INFINITY));
    }

    @Test
    void fakeQuantRoundsToTheGridAndSaturates() {
        float s = 0.01f;
        SplittableRandom r = new SplittableRandom(3);
        for (int i = 0; i < 100_000; i++) {
            float x = (float) r.nextDouble(-6, 6);
            float y = x / s;
            // FP8: the tested e4m3 encoder (ties to even, ±448) on x / s, times s. Bit-exact.
            assertEquals(s * Fp8.e4m3ToFloat(Fp8.floatToE4M3(y)), EightBit.FP8.fakeQuant(x, s), 0f);
            // INT8: rint and the int8 range, computed here without Math.rint's help for the ties.
            double fl = Math.floor(y);
            double rounded = y - fl > 0.5 || (y - fl == 0.5 && ((long) fl & 1) != 0) ? fl + 1 : fl;
            double clamped = Math.max(-128, Math.min(127, rounded));
            assertEquals(s * (float) clamped, EightBit.INT8.fakeQuant(x, s), 0f, "x " + x);
        }
        assertEquals(448 * s, EightBit.FP8.fakeQuant(100f, s), 0f);
        assertEquals(-128 * s, EightBit.INT8.fakeQuant(-100f, s), 0f);
        assertEquals(127 * s, EightBit.INT8.fakeQuant(100f, s), 0f);
        assertEquals(2 * s, EightBit.INT8.fakeQuant(2.5f * s, s), 0f, "ties to even");
        assertTrue(EightBit.FP8.saturates(4.49f, s));
        assertFalse(EightBit.FP8.saturates(4.47f, s));
    }

    @Test
    void perTokenScalesComeFromEachRow() {
        float[] x = {1f, -2f, 0.5f, 0f, 0f, 0f, 3f, 0.001f, -3f};
        float[] want = x.clone();
        for (int r = 0; r < 3; r++) {
            float amax = 0;
            for (int c = 0; c < 3; c++) {
                amax = Math.max(amax, Math.abs(x[r * 3 + c]));
            }
            for (int c = 0; c < 3 && amax > 0; c++) {
                want[r * 3 + c] = EightBit.INT8.fakeQuant(x[r * 3 + c], amax / 127f);
            }
        }
        EightBit.INT8.fakeQuantPerToken(x, 3, 3);
        for (int i = 0; i < x.length; i++) {
            assertEquals(want[i], x[i], 0f, "element " + i);
        }
        assertEquals(0f, x[4], 0f, "an all-zero row stays zero");
        assertEquals(-3f, x[8], 1e-6f, "the row's absmax maps onto ±127 steps (within the scale's rounding)");
    }

    @Test
    void schemesAsUsersNameThem() {
        QuantScheme a = QuantScheme.of("w4a8-fp8", false, null, "fp8", null);
        assertEquals(EightBit.FP8, a.activations());
        assertFalse(a.staticActivations());
        assertEquals(QuantScheme.KvGranularity.TENSOR, a.kvCache());
        assertEquals("W4A8-FP8 + KV8", a.label());
        QuantScheme b = QuantScheme.of("w4a8-int8", true, 99.99, "fp8", "head");
        assertEquals("W4A8-INT8 static + KV8 per head", b.label());
        assertEquals("w4a8-int8", b.schemeName());
        assertEquals("w4a8-fp8", a.schemeName());
        assertEquals(99.99, b.actClipPercentile());
        QuantScheme c = QuantScheme.of("w4a16", false, null, null, null);
        assertNull(c.activations());
        assertEquals(QuantScheme.W4A16, c);
        assertFalse(c.eightBit());
        assertEquals("w4a16", c.schemeName());

        assertMessage(() -> QuantScheme.of("w4a16", true, null, null, null), "--act-static", "w4a8-fp8");
        assertMessage(() -> QuantScheme.of("w4a16", false, null, null, "head"), "--kv-granularity", "--kv-cache fp8");
        assertMessage(() -> QuantScheme.of("w4a8-fp8", false, 99.9, null, null), "--act-clip", "--act-static");
        assertMessage(() -> QuantScheme.of("w4a8-fp8", true, 0.0, null, null), "--act-clip", "(0, 100]");
        assertMessage(() -> QuantScheme.of("w8a8", false, null, null, null), "--scheme w8a8", "w4a8-int8");
        assertMessage(() -> QuantScheme.of("w4a16", false, null, "int8", null), "--kv-cache int8", "fp8");
        assertMessage(() -> QuantScheme.of("w4a16", false, null, "fp8", "channel"), "--kv-granularity channel");
    }

    private static void assertMessage(Runnable r, String... parts) {
        InputException e = assertThrows(InputException.class, r::run);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), e.getMessage());
        }
    }
}
