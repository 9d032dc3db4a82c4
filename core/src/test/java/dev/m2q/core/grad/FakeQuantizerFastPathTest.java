package dev.m2q.core.grad;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The fp32 fast paths of {@link FakeQuantizer#forward} and {@link FakeQuantizer#backward} give the scalar twins'
 * bits exactly (compared as raw int bits, so −0 and +0 differ), on seeded random tensors salted with the cases
 * where a float shortcut could slip: w/s + V exactly at a half (round half to even), at and past the clamp
 * edges, zeros and −0 in w, all-zero groups (s = τ), α, β exactly 0 and 1 and outside [0, 1].
 */
class FakeQuantizerFastPathTest {
    private static final int ROWS = 24;
    private static final int COLS = 96;

    @ParameterizedTest
    @ValueSource(ints = {4, 12, 32, 96, -1})
    void fastPathsGiveTheTwinsBits(int groupSize) {
        SplittableRandom rnd = new SplittableRandom(1600 + groupSize);
        FakeQuantizer fq = new FakeQuantizer(groupSize);
        int g = groupSize == -1 ? COLS : groupSize;
        int groups = ROWS * COLS / g;
        Tensor.F32 w = Tensor.f32(ROWS, COLS);
        for (int i = 0; i < w.size(); i++) {
            w.data()[i] = switch (rnd.nextInt(12)) {
                case 0 -> 0f;
                case 1 -> -0f;
                default -> (float) (rnd.nextGaussian() * 0.05);
            };
        }
        // Row 0's first group all zero, row 1's first group all −0: s = τ, every code 0.
        for (int i = 0; i < g; i++) {
            w.data()[i] = 0f;
            w.data()[COLS + i] = -0f;
        }
        Tensor.F32 alpha = Tensor.f32(ROWS, COLS / g);
        Tensor.F32 beta = Tensor.f32(ROWS, COLS / g);
        for (int k = 0; k < groups; k++) {
            alpha.data()[k] = clipFactor(rnd);
            beta.data()[k] = clipFactor(rnd);
        }
        Tensor s = fq.scales(w, alpha, beta);
        Tensor.F32 v = Tensor.f32(ROWS, COLS);
        int ties = 0;
        int edges = 0;
        for (int i = 0; i < v.size(); i++) {
            float t = (float) (w.data()[i] / s.get(i / g));
            float target =
                    switch (rnd.nextInt(8)) {
                        case 0 -> (float) Math.floor(t) + 0.5f; // a tie
                        case 1 -> FakeQuantizer.MIN_CODE - 0.5f; // rounds to even −8: inside
                        case 2 -> FakeQuantizer.MAX_CODE + 0.5f; // rounds to even 8: clamped
                        case 3 -> FakeQuantizer.MIN_CODE - 1.5f + rnd.nextInt(2);
                        case 4 -> FakeQuantizer.MAX_CODE + 1f;
                        default -> Float.NaN;
                    };
            v.data()[i] = Float.isNaN(target) ? (float) (rnd.nextDouble() - 0.5) * 1.2f : target - t;
            float u = t + v.data()[i];
            if (u - (float) Math.floor(u) == 0.5f) {
                ties++;
            }
            if (Math.rint(u) == FakeQuantizer.MIN_CODE - 1 || Math.rint(u) == FakeQuantizer.MAX_CODE + 1) {
                edges++;
            }
        }
        // The salting must have landed: enough exact halves and just-outside codes to exercise both branches.
        assertTrue(ties > v.size() / 20, "only " + ties + " exact ties");
        assertTrue(edges > v.size() / 40, "only " + edges + " codes just past the clamp");

        Tensor.F32 fast = Tensor.f32(ROWS, COLS);
        Tensor.F32 twin = Tensor.f32(ROWS, COLS);
        fq.forward(w, v, alpha, beta, fast);
        fq.forwardTwin(w, v, alpha, beta, twin);
        assertArrayEquals(bits(twin), bits(fast), "ŵ");

        // A non-finite V makes t NaN or infinite: the twin's (int) cast takes NaN to code 0, the clamp takes ±∞
        // to the range's ends; the fast path must too.
        Tensor.F32 odd = (Tensor.F32) v.copy();
        float[] nonFinite = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (int i = 0; i < odd.size(); i += 5) {
            odd.data()[i] = nonFinite[rnd.nextInt(3)];
        }
        fq.forward(w, odd, alpha, beta, fast);
        fq.forwardTwin(w, odd, alpha, beta, twin);
        assertArrayEquals(bits(twin), bits(fast), "ŵ with non-finite V");

        Tensor.F32 dwq = Tensor.f32(ROWS, COLS);
        for (int i = 0; i < dwq.size(); i++) {
            dwq.data()[i] = rnd.nextInt(10) == 0 ? 0f : (float) rnd.nextGaussian();
        }
        Tensor.F32 dvFast = Tensor.f32(ROWS, COLS);
        for (int i = 0; i < dvFast.size(); i++) {
            dvFast.data()[i] = (float) rnd.nextGaussian() * 1e-3f; // the backward adds into what is there
        }
        Tensor dvTwin = dvFast.copy();
        Tensor.F32 daFast = Tensor.f32(ROWS, COLS / g);
        Tensor.F32 dbFast = Tensor.f32(ROWS, COLS / g);
        for (int k = 0; k < groups; k++) {
            daFast.data()[k] = (float) rnd.nextGaussian();
            dbFast.data()[k] = (float) rnd.nextGaussian();
        }
        Tensor daTwin = daFast.copy();
        Tensor dbTwin = dbFast.copy();
        fq.backward(w, v, alpha, beta, dwq, dvFast, daFast, dbFast);
        fq.backwardTwin(w, v, alpha, beta, dwq, dvTwin, daTwin, dbTwin);
        assertArrayEquals(bits(dvTwin), bits(dvFast), "dV");
        assertArrayEquals(bits(daTwin), bits(daFast), "dα");
        assertArrayEquals(bits(dbTwin), bits(dbFast), "dβ");

        // dα, dβ in fp64 (the fast path takes any precision there) show ds·∂s/∂α to the last double bit, which
        // the fp32 rounding above could hide: ds must be the twin's sequential double sum, term for term.
        Tensor.F64 da64Fast = daFast.toF64();
        Tensor.F64 db64Fast = dbFast.toF64();
        Tensor.F64 da64Twin = daFast.toF64();
        Tensor.F64 db64Twin = dbFast.toF64();
        fq.backward(w, v, alpha, beta, dwq, dvFast, da64Fast, db64Fast);
        fq.backwardTwin(w, v, alpha, beta, dwq, dvTwin, da64Twin, db64Twin);
        assertArrayEquals(bits(dvTwin), bits(dvFast), "dV, second pass");
        assertArrayEquals(bits64(da64Twin), bits64(da64Fast), "dα in fp64");
        assertArrayEquals(bits64(db64Twin), bits64(db64Fast), "dβ in fp64");
    }

    /** A clip factor: exactly 0 or 1 a quarter of the time each, sometimes past a bound, else inside. */
    private static float clipFactor(SplittableRandom rnd) {
        return switch (rnd.nextInt(8)) {
            case 0, 1 -> 0f;
            case 2, 3 -> 1f;
            case 4 -> (float) (1 + rnd.nextDouble() * 0.2);
            case 5 -> (float) (-rnd.nextDouble() * 0.2);
            default -> (float) rnd.nextDouble();
        };
    }

    private static long[] bits64(Tensor.F64 t) {
        long[] b = new long[t.size()];
        for (int i = 0; i < b.length; i++) {
            b[i] = Double.doubleToRawLongBits(t.data()[i]);
        }
        return b;
    }

    private static int[] bits(Tensor t) {
        int[] b = new int[t.size()];
        for (int i = 0; i < b.length; i++) {
            b[i] = Float.floatToRawIntBits((float) t.get(i));
        }
        return b;
    }
}
