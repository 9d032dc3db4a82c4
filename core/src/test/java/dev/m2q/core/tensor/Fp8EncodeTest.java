package dev.m2q.core.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * FP8 encoding, bit-exact, against an independent reference: the nearest of the format's values found by binary
 * search over the decoded code table (distances exact in double), ties to the even code, with E4M3 saturating at
 * ±448 and E5M2 overflowing to ±∞ (the rules stated in {@link Fp8}).
 */
class Fp8EncodeTest {
    /** The non-negative finite values of a format in increasing order, with their codes. */
    private record Table(float[] values, int[] codes) {
        /** The code nearest |x| (x finite), ties to even: the textbook definition, by search. */
        int nearest(float x) {
            double a = Math.abs((double) x);
            int lo = 0;
            int hi = values.length - 1;
            if (a >= values[hi]) {
                return codes[hi];
            }
            while (hi - lo > 1) {
                int mid = (lo + hi) >>> 1;
                if (values[mid] <= a) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            double below = a - values[lo];
            double above = values[hi] - a;
            if (below < above) {
                return codes[lo];
            }
            if (above < below) {
                return codes[hi];
            }
            return (codes[lo] & 1) == 0 ? codes[lo] : codes[hi];
        }
    }

    /** E4M3: codes 0x00..0x7E (0x7F is NaN). */
    private static Table e4m3() {
        List<Integer> codes = new ArrayList<>();
        for (int c = 0; c <= 0x7E; c++) {
            codes.add(c);
        }
        return table(codes, c -> Fp8.e4m3ToFloat((byte) c));
    }

    /**
     * E5M2: codes 0x00..0x7B, plus 0x7C (+∞) standing at 2^16, where the exponent would continue: IEEE rounds as if
     * the exponent were unbounded and overflows when the result is 2^16, so ties at 61440 go to the even code 0x7C.
     */
    private static Table e5m2() {
        List<Integer> codes = new ArrayList<>();
        for (int c = 0; c <= 0x7C; c++) {
            codes.add(c);
        }
        return table(codes, c -> c == 0x7C ? 65536f : Fp8.e5m2ToFloat((byte) c));
    }

    private static Table table(List<Integer> codes, java.util.function.IntFunction<Float> decode) {
        float[] v = new float[codes.size()];
        int[] c = new int[codes.size()];
        for (int i = 0; i < v.length; i++) {
            c[i] = codes.get(i);
            v[i] = decode.apply(c[i]);
            if (i > 0) {
                assertTrue(v[i] > v[i - 1], "codes increase with their value");
            }
        }
        return new Table(v, c);
    }

    private static int e4m3Reference(Table t, float x) {
        int sign = Float.floatToRawIntBits(x) < 0 ? 0x80 : 0;
        if (Float.isNaN(x)) {
            return sign | 0x7F;
        }
        return sign | (Math.abs(x) >= 448f ? 0x7E : t.nearest(x));
    }

    private static int e5m2Reference(Table t, float x) {
        int sign = Float.floatToRawIntBits(x) < 0 ? 0x80 : 0;
        return sign | (Float.isInfinite(x) ? 0x7C : t.nearest(x));
    }

    private static void check(Table e4, Table e5, float x) {
        for (float v : new float[] {x, -x}) {
            assertEquals(
                    e4m3Reference(e4, v), Fp8.floatToE4M3(v) & 0xFF, () -> "e4m3 of " + v + " " + Float.toHexString(v));
            assertEquals(
                    e5m2Reference(e5, v), Fp8.floatToE5M2(v) & 0xFF, () -> "e5m2 of " + v + " " + Float.toHexString(v));
        }
    }

    @Test
    void everyCodeRoundTrips() {
        for (int code = 0; code < 256; code++) {
            assertEquals(
                    code, Fp8.floatToE4M3(Fp8.e4m3ToFloat((byte) code)) & 0xFF, "e4m3 0x" + Integer.toHexString(code));
            assertEquals(
                    code, Fp8.floatToE5M2(Fp8.e5m2ToFloat((byte) code)) & 0xFF, "e5m2 0x" + Integer.toHexString(code));
        }
    }

    @Test
    void neighboursMidpointsAndTheirNeighboursRoundToNearestEven() {
        Table e4 = e4m3();
        Table e5 = e5m2();
        int ties = 0;
        for (Table t : List.of(e4, e5)) {
            for (int i = 0; i + 1 < t.values().length; i++) {
                float lo = t.values()[i];
                float hi = t.values()[i + 1];
                float mid = (lo + hi) / 2; // exact: one more mantissa bit than the fp8 values have
                assertEquals((double) lo + hi, 2.0 * mid, 0.0);
                for (float x : new float[] {lo, Math.nextUp(lo), mid, Math.nextDown(mid), Math.nextUp(mid), hi}) {
                    check(e4, e5, x);
                }
                ties++;
            }
        }
        assertEquals(126 + 124, ties);
        // Spot values whose answer is known by hand, so the reference itself is checked too.
        assertEquals(0x00, Fp8.floatToE4M3(0x1p-10f), "half the smallest subnormal ties to +0 (even)");
        assertEquals(0x01, Fp8.floatToE4M3(Math.nextUp(0x1p-10f)));
        assertEquals(0x02, Fp8.floatToE4M3(0x1.8p-9f), "1.5 subnormal steps tie to 2 (even)");
        assertEquals(0x08, Fp8.floatToE4M3(0x1.ep-7f), "rounds up out of the subnormals into the smallest normal");
        assertEquals(0x7E, Fp8.floatToE4M3(440f), "440 is the tie between 416·… 0x7D and 448: even is 0x7E");
        assertEquals(0x7C, Fp8.floatToE4M3(392f), "tie between 384 (0x7C) and 416 (0x7D) goes to 0x7C");
        assertEquals(0x7B, Fp8.floatToE5M2(Math.nextDown(61440f)));
        assertEquals(0x7C, Fp8.floatToE5M2(61440f), "the overflow midpoint rounds to +inf");
    }

    @Test
    void denseSweepOfEveryBinadeMatchesTheReference() {
        Table e4 = e4m3();
        Table e5 = e5m2();
        int end = Float.floatToRawIntBits(1e6f);
        long n = 0;
        // Every 61st float from +0 to 1e6: all float subnormals' scale up to far past both formats' overflow; the
        // stride is prime, so it samples every position within an fp8 interval.
        for (int bits = 0; bits <= end; bits += 61) {
            check(e4, e5, Float.intBitsToFloat(bits));
            n++;
        }
        assertTrue(n > 15_000_000, "swept " + n);
    }

    @Test
    void specialValues() {
        assertEquals(0x00, Fp8.floatToE4M3(0f));
        assertEquals(0x80, Fp8.floatToE4M3(-0f) & 0xFF);
        assertEquals(0x00, Fp8.floatToE5M2(0f));
        assertEquals(0x80, Fp8.floatToE5M2(-0f) & 0xFF);
        assertEquals(0x00, Fp8.floatToE4M3(Float.MIN_VALUE));
        assertEquals(0x80, Fp8.floatToE4M3(-Float.MIN_VALUE) & 0xFF, "underflow keeps the sign");
        for (float big :
                new float[] {448f, Math.nextUp(448f), 464f, 480f, 1e30f, Float.MAX_VALUE, Float.POSITIVE_INFINITY}) {
            assertEquals(0x7E, Fp8.floatToE4M3(big), "saturates: " + big);
            assertEquals(0xFE, Fp8.floatToE4M3(-big) & 0xFF, "saturates: " + -big);
        }
        assertEquals(0x7C, Fp8.floatToE5M2(Float.POSITIVE_INFINITY));
        assertEquals(0xFC, Fp8.floatToE5M2(Float.NEGATIVE_INFINITY) & 0xFF);
        assertEquals(0x7C, Fp8.floatToE5M2(Float.MAX_VALUE), "overflows to +inf");
        assertEquals(0x7F, Fp8.floatToE4M3(Float.NaN));
        assertEquals(0xFF, Fp8.floatToE4M3(Float.intBitsToFloat(0xFFC00000)) & 0xFF);
        assertEquals(0x7E, Fp8.floatToE5M2(Float.NaN), "the canonical quiet NaN");
        assertEquals(0x7E, Fp8.floatToE5M2(Float.intBitsToFloat(0x7F800001)), "a payload below the kept bits");
        assertTrue(Float.isNaN(Fp8.roundE4M3(Float.NaN)));
        assertEquals(448f, Fp8.roundE4M3(1e9f));
        assertEquals(-0.3125f, Fp8.roundE4M3(-0.31f));
    }
}
