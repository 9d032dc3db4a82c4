package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** RTN on groups small enough to check by hand. Codes, scales and g_idx are compared exactly. */
class RtnTest {
    private static float half(float f) {
        return Float.float16ToFloat(Float.floatToFloat16(f));
    }

    @Test
    void scaleIsTwoAbsmaxOverFifteenRoundedToHalf() {
        assertEquals(half(2f * 0.3f / 15f), Rtn.scale(0.3f));
        assertEquals(1f, Rtn.scale(7.5f)); // 2·7.5/15 = 1, already a half value
        assertEquals(half(2f / 15f), Rtn.scale(0f), "all-zero group uses the range [−1, 1]");
        assertEquals(Float.float16ToFloat((short) 1), Rtn.scale(1e-12f), "fp16 underflow keeps a non-zero scale");
        assertThrows(IllegalArgumentException.class, () -> Rtn.scale(Float.NaN));
        assertThrows(IllegalArgumentException.class, () -> Rtn.scale(1e6f));
    }

    @Test
    void codesRoundHalfToEvenAndClamp() {
        // Scale 1 (absmax 7.5): w = ±7.5 sit exactly on a tie; half-to-even sends 7.5 → 8 (clamped to 15) and
        // −7.5 → −8 (code 0), 2.5 → 2 (code 10), 3.5 → 4 (code 12), −0.5 → −0 (code 8).
        float s = Rtn.scale(7.5f);
        assertEquals(1f, s);
        assertEquals(15, Rtn.code(7.5f, s));
        assertEquals(0, Rtn.code(-7.5f, s));
        assertEquals(10, Rtn.code(2.5f, s));
        assertEquals(12, Rtn.code(3.5f, s));
        assertEquals(8, Rtn.code(-0.5f, s));
        assertEquals(7, Rtn.code(-1.4f, s));
        assertEquals(15, Rtn.code(100f, s));
        assertEquals(0, Rtn.code(-100f, s));
    }

    @Test
    void handMadeGroups() {
        // W [2, 8], G = 4: row 0 = group {7.5, −7.5, 2.5, 0} then the all-zero group; row 1 = {1, 2, 3, 4} then
        // {−0.75, 0.75, 0.1, −0.2}.
        float[] w = {7.5f, -7.5f, 2.5f, 0f, 0f, 0f, 0f, 0f, 1f, 2f, 3f, 4f, -0.75f, 0.75f, 0.1f, -0.2f};
        QuantizedLinear q = Rtn.quantize(w, 2, 8, 4);
        float s10 = half(8f / 15f); // absmax 4
        float s11 = half(1.5f / 15f); // absmax 0.75
        assertArrayEquals(new float[] {1f, s10, half(2f / 15f), s11}, q.scales());
        assertArrayEquals(new int[] {0, 0, 0, 0, 1, 1, 1, 1}, q.gIdx());
        int[] expected = new int[16];
        int[][] byRow = {
            {15, 0, 10, 8, 8, 8, 8, 8},
            {
                Rtn.code(1f, s10),
                Rtn.code(2f, s10),
                Rtn.code(3f, s10),
                Rtn.code(4f, s10),
                Rtn.code(-0.75f, s11),
                Rtn.code(0.75f, s11),
                Rtn.code(0.1f, s11),
                Rtn.code(-0.2f, s11)
            }
        };
        for (int n = 0; n < 2; n++) {
            for (int k = 0; k < 8; k++) {
                expected[k * 2 + n] = byRow[n][k];
            }
        }
        assertArrayEquals(expected, q.codes());
        // Hand values for row 1: 1/0.5332 = 1.875 → 2, 2/s = 3.75 → 4, 3/s = 5.63 → 6, 4/s = 7.50… → 8 → 15.
        assertArrayEquals(new int[] {10, 12, 14, 15}, new int[] {byRow[1][0], byRow[1][1], byRow[1][2], byRow[1][3]});
        assertEquals(-8f, q.dequant(0, 1), "the tie −7.5 rounds to the even step −8, code 0");
        assertEquals(0f, q.dequant(0, 5));
    }

    @Test
    void dequantizeUsesTheHalfScaleExactly() {
        SplittableRandom rnd = new SplittableRandom(5);
        int n = 16;
        int k = 64;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.02);
        }
        QuantizedLinear q = Rtn.quantize(w, n, k, 32);
        float[] wq = q.dequantize();
        float[] fromFile = GptqPacking.scalesFromF16(GptqPacking.scalesF16(q.scales()));
        int[] codes = GptqPacking.unpackQweight(GptqPacking.packQweight(q.codes(), k, n), k, n);
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                int code = codes[c * n + r];
                assertTrue(code >= 0 && code <= 15);
                float engine = fromFile[(c / 32) * n + r] * (code - 8);
                assertEquals(Float.floatToRawIntBits(engine), Float.floatToRawIntBits(wq[r * k + c]));
                assertEquals(wq[r * k + c], q.dequant(r, c));
                // RTN's error is at most half a step, plus the clamp at the top (the fp16 scale may be a hair
                // below 2·absmax/15, so absmax itself can be up to 2⁻¹¹ relative past the last level).
                float s = q.scales()[(c / 32) * n + r];
                assertTrue(Math.abs(w[r * k + c] - wq[r * k + c]) <= 0.5f * s * 1.002f + 8 * s * 0x1p-10f);
            }
        }
    }

    @Test
    void rejectsBadInput() {
        assertThrows(IllegalArgumentException.class, () -> Rtn.quantize(new float[12], 2, 6, 4));
        assertThrows(IllegalArgumentException.class, () -> Rtn.quantize(new float[] {Float.NaN, 0, 0, 0}, 1, 4, 4));
        assertThrows(
                IllegalArgumentException.class,
                () -> new QuantizedLinear(1, 4, 4, new int[] {0, 1, 2, 16}, new float[] {1f}, new int[4]));
        assertThrows(
                IllegalArgumentException.class,
                () -> new QuantizedLinear(1, 4, 4, new int[4], new float[] {0.1f}, new int[4]));
        assertThrows(
                IllegalArgumentException.class,
                () -> new QuantizedLinear(1, 4, 4, new int[4], new float[] {1f}, new int[] {0, 0, 1, 0}));
    }
}
