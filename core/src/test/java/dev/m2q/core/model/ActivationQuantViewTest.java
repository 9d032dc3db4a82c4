package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link Qwen2Model#withActivationQuant}: the whole-model forwards of the view (fresh and through the KV cache) give
 * the bits of running each layer through {@link DecoderLayer#withActivationQuant}, and closing the view leaves the
 * model usable (the view does not own the checkpoint).
 */
class ActivationQuantViewTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    /** Rounds every linear input and key/value to a coarse grid: changes the logits visibly, deterministically. */
    static final ActivationQuant COARSE = new ActivationQuant() {
        @Override
        public void linearInput(int layer, List<String> modules, float[] x, int rows, int cols) {
            round(x, rows * cols);
        }

        @Override
        public void keysValues(int layer, float[] k, float[] v, int rows, int kvHeads, int headDim) {
            round(k, k.length);
            round(v, v.length);
        }

        private static void round(float[] a, int n) {
            for (int i = 0; i < n; i++) {
                a[i] = Math.round(a[i] * 4f) / 4f;
            }
        }
    };

    @Test
    void theViewIsTheLayersWithTheHook() {
        int[] ids = {1158, 258, 1795, 1265, 387, 280, 560, 283, 17, 42};
        try (Qwen2Model m = Qwen2Model.load(FIXTURE, Kernels.byName("vector"))) {
            float[] plain = m.forward(ids);
            float[] expected;
            float[] x = m.embed(ids);
            for (int l = 0; l < m.numLayers(); l++) {
                x = m.layer(l).withActivationQuant(COARSE).forward(x, 1, ids.length, LayerObserver.NONE);
            }
            expected = m.logits(x, ids.length);
            float[] viewed;
            float[] cached;
            try (Qwen2Model v = m.withActivationQuant(COARSE);
                    KvCache cache = v.newCache(ids.length)) {
                viewed = v.forward(ids);
                float[] head = v.forward(Arrays.copyOf(ids, 6), cache, false);
                float[] tail = v.forward(Arrays.copyOfRange(ids, 6, ids.length), cache, false);
                cached = Arrays.copyOf(head, ids.length * m.config().vocabSize());
                System.arraycopy(tail, 0, cached, head.length, tail.length);
            }
            assertArrayEquals(expected, viewed, 0f, "the view's forward is the hooked layers' forward, bit for bit");
            assertArrayEquals(expected, cached, 0f, "and so is its cached forward, in two pieces");
            assertTrue(!Arrays.equals(plain, viewed), "the hook changes the logits");
            assertArrayEquals(plain, m.forward(ids), 0f, "the model is untouched and open after the view closed");
        }
    }
}
