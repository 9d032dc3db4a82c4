package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SamplerTest {
    @Test
    void greedyTakesTheLargestLogitAndTheLowestIdOnTies() {
        float[] logits = {0f, 2f, 1f, 2f};
        assertEquals(1, Sampler.argmax(logits));
        assertEquals(1, Sampler.choose(logits, 0, logits.length, 0, new SplittableRandom(1)));
        // a row of a larger array: indices are relative to its offset
        assertEquals(2, Sampler.argmax(new float[] {9f, 0f, 1f, 3f, 2f}, 1, 4));
    }

    @Test
    void samplingIsSeededAndFollowsTheTemperedSoftmax() {
        float[] logits = {0f, 1f, 2f, 0.5f};
        Random a = new Random(3);
        Random b = new Random(3);
        int[] counts = new int[4];
        for (int i = 0; i < 2000; i++) {
            int x = Sampler.choose(logits, 1.0, a);
            assertEquals(x, Sampler.choose(logits, 1.0, b));
            counts[x]++;
        }
        // softmax(0, 1, 2, .5) ≈ (.0784, .2131, .5793, .1292); 2000 seeded draws: each count within 5 binomial
        // standard deviations (a false failure has probability < 1e-6 per token; the seed makes it fixed anyway)
        double z = 1 + Math.E + Math.exp(2) + Math.exp(0.5);
        double[] p = {1 / z, Math.E / z, Math.exp(2) / z, Math.exp(0.5) / z};
        for (int k = 0; k < 4; k++) {
            double sd = Math.sqrt(2000 * p[k] * (1 - p[k]));
            assertEquals(2000 * p[k], counts[k], 5 * sd, "token " + k);
        }
    }

    @Test
    void softmaxDividesByTheTemperatureAndSumsToOne() {
        double[] p = Sampler.softmax(new float[] {7f, 0f, 1f, 3f}, 1, 3, 0.5);
        // exp(2·(l − 3)) over l = 0, 1, 3, normalized; the sum of three doubles rounds within a few ulps of 1
        double z = Math.exp(-6) + Math.exp(-4) + 1;
        assertEquals(Math.exp(-6) / z, p[0], 1e-15);
        assertEquals(Math.exp(-4) / z, p[1], 1e-15);
        assertEquals(1 / z, p[2], 1e-15);
    }

    @Test
    void aDrawNeverLandsOnAWeightOfZero() {
        // weights 0 at both ends: every uniform, including one in the rounding gap at the top, gives 1 or 2
        double[] w = {0, 0.25, 0.75, 0};
        SplittableRandom rng = new SplittableRandom(7);
        for (int i = 0; i < 1000; i++) {
            int x = Sampler.sample(w, rng);
            assertEquals(true, x == 1 || x == 2, "drew " + x);
        }
    }
}
