package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.model.Rope;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link Kernels#rope} keeps each thread's angles of recent positions: whatever it holds, every row must be rotated
 * by exactly the angles {@link Rope#angles} gives for its position and table (an integer-keyed cache over values
 * computed the same way, so bit for bit).
 */
class RopeAnglesTest {
    /** The rotation written out with freshly computed angles. */
    private static float[] expected(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        int half = headDim / 2;
        float[] out = x.clone();
        float[] cos = new float[half];
        float[] sin = new float[half];
        for (int r = 0; r < rows; r++) {
            Rope.angles(invFreq, positions[r], cos, sin);
            for (int h = 0; h < heads; h++) {
                int o = (r * heads + h) * headDim;
                for (int i = 0; i < half; i++) {
                    float a = x[o + i];
                    float b = x[o + i + half];
                    out[o + i] = a * cos[i] - b * sin[i];
                    out[o + i + half] = b * cos[i] + a * sin[i];
                }
            }
        }
        return out;
    }

    private static float[] table(int half, double base) {
        float[] f = new float[half];
        for (int i = 0; i < half; i++) {
            f[i] = (float) (1 / Math.pow(base, 2.0 * i / (2 * half)));
        }
        return f;
    }

    @Test
    void everyRowTakesItsOwnPositionsAngles() {
        SplittableRandom rnd = new SplittableRandom(11);
        int heads = 4;
        int headDim = 64;
        float[] a = table(32, 10000);
        float[] b = table(32, 1e6);
        float[] aCopy = a.clone();
        float[] c = table(32, 500);
        float[] e = table(32, 2e4);
        float[] f = table(32, 3e5);
        int[][] steps = {
            {300}, // a decode step
            {300}, // the same position again: held
            {300 + 64}, // the same slot, another position
            {5, 6, 7, 8}, // a verify of 4 rows
            {5, 69, 133, 5}, // three positions in one slot within one call
            {4097, 4098}, // large angles
        };
        for (Kernels kernels : new Kernels[] {VectorKernels.INSTANCE, ScalarKernels.INSTANCE}) {
            // tables alternate (a copy of a equals a by value), more of them than a thread keeps
            for (float[] inv : new float[][] {a, b, aCopy, a, c, e, f, b, a, f, c}) {
                for (int[] positions : steps) {
                    int rows = positions.length;
                    float[] x = new float[rows * heads * headDim];
                    for (int i = 0; i < x.length; i++) {
                        x[i] = (float) rnd.nextGaussian();
                    }
                    float[] want = expected(x, rows, heads, headDim, inv, positions);
                    kernels.rope(x, rows, heads, headDim, inv, positions);
                    assertArrayEquals(want, x, kernels.name() + " at positions " + Arrays.toString(positions));
                }
            }
        }
    }

    /** A prefill: many rows split over threads, each worker with its own held angles. */
    @Test
    void aPrefillOverThreadsMatches() {
        SplittableRandom rnd = new SplittableRandom(12);
        int rows = 700;
        int heads = 8;
        int headDim = 16;
        float[] inv = table(8, 10000);
        int[] positions = new int[rows];
        for (int r = 0; r < rows; r++) {
            positions[r] = (r * 37) % 500;
        }
        for (int round = 0; round < 3; round++) {
            float[] x = new float[rows * heads * headDim];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            float[] want = expected(x, rows, heads, headDim, inv, positions);
            VectorKernels.INSTANCE.rope(x, rows, heads, headDim, inv, positions);
            assertArrayEquals(want, x, "round " + round);
        }
    }

    @Test
    void aTableOfTheWrongSizeIsRefused() {
        float[] x = new float[64];
        assertThrows(
                IllegalArgumentException.class,
                () -> VectorKernels.INSTANCE.rope(x, 1, 1, 64, new float[31], new int[] {0}));
    }
}
