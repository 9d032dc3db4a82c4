package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.m2q.core.grad.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * SignSGD's fp32 fast path gives the scalar twin's bits exactly (raw int bits, so −0 and +0 differ), on seeded
 * random parameters salted with values at and past the clamp bounds 0 and 1, −0, and zero gradients.
 */
class SignSgdFastPathTest {
    /** A whole number of vectors per row, and 7 × 13, whose ranges end in the scalar tail. */
    @ParameterizedTest
    @CsvSource({"32, 48", "7, 13"})
    void fastPathGivesTheTwinsBits(int rows, int cols) {
        SplittableRandom rnd = new SplittableRandom(16L * rows + cols);
        Tensor.F32 p = Tensor.f32(rows, cols);
        Tensor.F32 g = Tensor.f32(rows, cols);
        for (int i = 0; i < p.size(); i++) {
            p.data()[i] = switch (rnd.nextInt(8)) {
                case 0 -> 0f;
                case 1 -> -0f;
                case 2 -> 1f;
                case 3 -> (float) (rnd.nextDouble() * 1e-3); // within one rate of 0
                case 4 -> (float) (1 - rnd.nextDouble() * 1e-3); // within one rate of 1
                default -> (float) (rnd.nextDouble() * 1.4 - 0.2);
            };
            g.data()[i] = switch (rnd.nextInt(6)) {
                case 0 -> 0f;
                case 1 -> -0f;
                default -> (float) rnd.nextGaussian();
            };
        }
        double[][] cases = {
            {5e-3 * 0.75, 0, 1}, // α, β: rate past the bounds for the salted values
            {1e-2 / 3, Double.NEGATIVE_INFINITY, Double.POSITIVE_INFINITY}, // V: unbounded, an inexact rate
        };
        for (double[] c : cases) {
            Tensor.F32 fast = (Tensor.F32) p.copy();
            Tensor twin = p.copy();
            SignSgd.descend(fast, g, c[0], c[1], c[2]);
            SignSgd.descendTwin(twin, g, c[0], c[1], c[2]);
            assertArrayEquals(bits(twin), bits(fast));
        }
    }

    private static int[] bits(Tensor t) {
        int[] b = new int[t.size()];
        for (int i = 0; i < b.length; i++) {
            b[i] = Float.floatToRawIntBits((float) t.get(i));
        }
        return b;
    }
}
