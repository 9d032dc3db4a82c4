package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class ClipSearchTest {
    /**
     * The definition, written as plainly as possible: every one of the 101 factors (no skipping of repeated
     * scales), |w − ŵ|^2.4 summed in order, the first strict minimum kept.
     */
    private static float bruteForce(float[] w, int off, int count) {
        return bruteForce(w, off, count, 4);
    }

    /** The same at width {@code b}: codes clamp to [0, 2^b − 1] around the zero point 2^(b−1). */
    private static float bruteForce(float[] w, int off, int count, int b) {
        int max = (1 << b) - 1;
        int zero = 1 << (b - 1);
        float absmax = 0f;
        for (int j = 0; j < count; j++) {
            absmax = Math.max(absmax, Math.abs(w[off + j]));
        }
        float best = Float.NaN;
        double bestErr = Double.POSITIVE_INFINITY;
        for (int i = 0; i <= 100; i++) {
            float s = Rtn.scale(absmax * (float) (1.0 - 0.2 * i / 100), Bits.of(b));
            double err = 0;
            for (int j = 0; j < count; j++) {
                int q = Math.max(0, Math.min(max, (int) Math.rint(w[off + j] / s) + zero));
                err += Math.pow(Math.abs(w[off + j] - s * (q - zero)), 2.4);
            }
            if (err < bestErr) {
                bestErr = err;
                best = s;
            }
        }
        return best;
    }

    private static float absmax(float[] w, int off, int count) {
        float m = 0f;
        for (int j = 0; j < count; j++) {
            m = Math.max(m, Math.abs(w[off + j]));
        }
        return m;
    }

    @Test
    void equalsTheBruteForceSearchOnRandomGroups() {
        SplittableRandom rnd = new SplittableRandom(17);
        int shrunk = 0;
        for (int trial = 0; trial < 400; trial++) {
            int count = new int[] {8, 16, 32, 128}[trial % 4];
            float[] w = new float[count];
            for (int j = 0; j < count; j++) {
                w[j] = (float) (rnd.nextGaussian() * 0.02);
            }
            if (trial % 3 == 0) {
                w[rnd.nextInt(count)] = (float) (rnd.nextBoolean() ? 0.3 : -0.3); // one outlier
            }
            float want = bruteForce(w, 0, count);
            float got = ClipSearch.scale(w, 0, 1, count, absmax(w, 0, count));
            assertEquals(want, got, 0f, "trial " + trial);
            if (got < Rtn.scale(absmax(w, 0, count))) {
                shrunk++;
            }
        }
        // The search is not idle: Gaussian groups gain from clipping far more often than not.
        assertTrue(shrunk > 200, shrunk + " of 400 groups shrunk");
    }

    /**
     * At 8 bits the search runs over the same factors with the 8-bit scale 2·a/255 and codes [0, 255] around 128:
     * equal to the brute force bit for bit, and at least sometimes different from the 4-bit answer (the finer grid
     * moves the optimum), so a search that ignored the width would fail here.
     */
    @Test
    void equalsTheBruteForceSearchAtEightBits() {
        SplittableRandom rnd = new SplittableRandom(29);
        int shrunk = 0;
        for (int trial = 0; trial < 300; trial++) {
            int count = new int[] {8, 32, 128}[trial % 3];
            float[] w = new float[count];
            for (int j = 0; j < count; j++) {
                w[j] = (float) (rnd.nextGaussian() * 0.02);
            }
            if (trial % 3 == 0) {
                w[rnd.nextInt(count)] = (float) (rnd.nextBoolean() ? 0.3 : -0.3);
            }
            float a = absmax(w, 0, count);
            float got = ClipSearch.scale(w, 0, 1, count, a, Bits.EIGHT);
            assertEquals(bruteForce(w, 0, count, 8), got, 0f, "trial " + trial);
            assertTrue(
                    ClipSearch.error(w, 0, 1, count, got, Bits.EIGHT)
                            <= ClipSearch.error(w, 0, 1, count, Rtn.scale(a, Bits.EIGHT), Bits.EIGHT),
                    "trial " + trial);
            if (got < Rtn.scale(a, Bits.EIGHT)) {
                shrunk++;
            }
        }
        assertTrue(shrunk > 0, "the 8-bit search never shrank a group");
        float[] zeros = new float[32];
        assertEquals(Rtn.scale(0f, Bits.EIGHT), ClipSearch.scale(zeros, 0, 1, 32, 0f, Bits.EIGHT), 0f);
    }

    @Test
    void rtnWithTheSearchAtEightBitsUsesItsScales() {
        SplittableRandom rnd = new SplittableRandom(31);
        int n = 4;
        int k = 64;
        int g = 32;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.05);
        }
        QuantizedLinear q = Rtn.quantize(w, n, k, g, Bits.EIGHT, true);
        assertEquals(8, q.bits().value());
        for (int r = 0; r < n; r++) {
            for (int gi = 0; gi < k / g; gi++) {
                int off = r * k + gi * g;
                float s = bruteForce(w, off, g, 8);
                assertEquals(s, q.scales()[gi * n + r], 0f);
                for (int j = 0; j < g; j++) {
                    assertEquals(Rtn.code(w[off + j], s, Bits.EIGHT), q.codes()[(gi * g + j) * n + r]);
                }
            }
        }
    }

    @Test
    void neverWorseThanRtnAndAllZeroGroupsKeepRtnsScale() {
        SplittableRandom rnd = new SplittableRandom(5);
        for (int trial = 0; trial < 200; trial++) {
            float[] w = new float[64];
            for (int j = 0; j < w.length; j++) {
                w[j] = (float) (rnd.nextDouble() - 0.5) * (trial + 1) / 100f;
            }
            float a = absmax(w, 0, 64);
            float s = ClipSearch.scale(w, 0, 1, 64, a);
            assertTrue(ClipSearch.error(w, 0, 1, 64, s) <= ClipSearch.error(w, 0, 1, 64, Rtn.scale(a)));
        }
        float[] zeros = new float[32];
        assertEquals(Rtn.scale(0f), ClipSearch.scale(zeros, 0, 1, 32, 0f), 0f);
    }

    @Test
    void stridedGroupsEqualContiguousOnes() {
        // GPTQ searches a group down a column of W1 [K, N] (stride N): the same weights give the same scale.
        SplittableRandom rnd = new SplittableRandom(9);
        int n = 5;
        int g = 32;
        float[] w1 = new float[g * n];
        for (int i = 0; i < w1.length; i++) {
            w1[i] = (float) rnd.nextGaussian();
        }
        for (int c = 0; c < n; c++) {
            float[] col = new float[g];
            for (int j = 0; j < g; j++) {
                col[j] = w1[j * n + c];
            }
            assertEquals(
                    ClipSearch.scale(col, 0, 1, g, absmax(col, 0, g)),
                    ClipSearch.scale(w1, c, n, g, absmax(col, 0, g)),
                    0f);
        }
    }

    @Test
    void rtnWithTheSearchUsesItsScalesPerGroup() {
        SplittableRandom rnd = new SplittableRandom(3);
        int n = 6;
        int k = 64;
        int g = 16;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.05);
        }
        QuantizedLinear q = Rtn.quantize(w, n, k, g, true);
        int[] codes = new int[k * n];
        float[] scales = new float[(k / g) * n];
        for (int r = 0; r < n; r++) {
            for (int gi = 0; gi < k / g; gi++) {
                int off = r * k + gi * g;
                float s = bruteForce(w, off, g);
                scales[gi * n + r] = s;
                for (int j = 0; j < g; j++) {
                    codes[(gi * g + j) * n + r] = Rtn.code(w[off + j], s);
                }
            }
        }
        assertArrayEquals(scales, q.scales());
        assertArrayEquals(codes, q.codes());
        // Off, it is plain RTN.
        QuantizedLinear plain = Rtn.quantize(w, n, k, g, false);
        assertArrayEquals(Rtn.quantize(w, n, k, g).codes(), plain.codes());
    }
}
