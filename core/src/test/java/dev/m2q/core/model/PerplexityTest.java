package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Kernels;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Perplexity's windowing rule and its log-softmax, on the bundled fixture. */
class PerplexityTest {
    @Test
    void windowsAreConsecutiveAndFresh() {
        try (Qwen2Model m = Qwen2Model.load(Path.of("..", "fixtures", "tiny-qwen2"), Kernels.byName("vector"))) {
            int[] ids = new SplittableRandom(3).ints(10, 0, 2048).toArray();
            // 10 tokens, seqlen 4: windows [0,4) [4,8) [8,10) → 3 + 3 + 1 predictions.
            Perplexity.Result r = Perplexity.evaluate(m, ids, 4);
            assertEquals(3, r.windows());
            assertEquals(7, r.predicted());
            // The same NLL summed by hand from three independent forwards (exact: identical computations).
            double nll = 0;
            int[][] windows = {{0, 4}, {4, 8}, {8, 10}};
            for (int[] w : windows) {
                int[] part = java.util.Arrays.copyOfRange(ids, w[0], w[1]);
                float[] logits = m.forward(part);
                for (int t = 0; t < part.length - 1; t++) {
                    nll -= Perplexity.logSoftmax(logits, t * 2048, 2048, part[t + 1]);
                }
            }
            assertEquals(nll, r.nll(), 0.0);
            // 9 tokens, seqlen 4: the last window holds one token and predicts nothing.
            Perplexity.Result s = Perplexity.evaluate(m, java.util.Arrays.copyOf(ids, 9), 4);
            assertEquals(2, s.windows());
            assertEquals(6, s.predicted());
        }
    }

    @Test
    void logSoftmaxIsNormalised() {
        float[] logits = {1000f, 1001f, 999f, -5f};
        double z = 0;
        for (int i = 0; i < 4; i++) {
            z += Math.exp(Perplexity.logSoftmax(logits, 0, 4, i));
        }
        // Σ p = 1 to double rounding; large logits must not overflow.
        assertEquals(1.0, z, 1e-12);
        assertEquals(
                -Math.log(1 + Math.exp(-1) + Math.exp(-2) + Math.exp(-1006)),
                Perplexity.logSoftmax(logits, 0, 4, 1),
                1e-12);
    }
}
