package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Kernels;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * forwardTapped's taps are the residual stream entering the named layers, and its logits those of forward: the same
 * fp32 operations in the same order, so those comparisons are exact. Through a KV cache the attention sums the same
 * keys in another blocking, so the cached taps get 1e-4·(1 + |x|), about 100× the fp32 spread of an O(10) sum.
 */
class ForwardTappedTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    @Test
    void tapsAreTheLayerInputsAndLogitsEqualForward() {
        int[] ids = {1158, 258, 1795, 1265, 387, 280, 560, 283, 12, 99};
        try (Qwen2Model m = Qwen2Model.load(FIXTURE, Kernels.byName("vector"))) {
            int[] taps = {2, 4, 5};
            Qwen2Model.Tapped t = m.forwardTapped(ids, null, taps);
            assertArrayEquals(m.forward(ids), t.logits());
            float[] x = m.embed(ids);
            for (int l = 0; l < m.numLayers(); l++) {
                for (int j = 0; j < taps.length; j++) {
                    if (taps[j] == l) {
                        assertArrayEquals(x, t.taps()[j], "entering layer " + l);
                    }
                }
                x = m.layer(l).forward(x, 1, ids.length, LayerObserver.NONE);
            }
            int h = m.config().hiddenSize();
            float[] f = t.features();
            assertEquals(ids.length * 3 * h, f.length);
            for (int j = 0; j < 3; j++) {
                assertArrayEquals(
                        Arrays.copyOfRange(t.taps()[j], 4 * h, 5 * h),
                        Arrays.copyOfRange(f, (4 * 3 + j) * h, (4 * 3 + j + 1) * h),
                        "row 4, tap " + j);
            }

            // Through a cache in two pieces: the second piece's taps are the full run's rows 6.. .
            KvCache cache = m.newCache(ids.length);
            m.forwardTapped(Arrays.copyOfRange(ids, 0, 6), cache, taps);
            Qwen2Model.Tapped rest = m.forwardTapped(Arrays.copyOfRange(ids, 6, ids.length), cache, taps);
            assertEquals(ids.length, cache.length());
            for (int j = 0; j < 3; j++) {
                float[] want = Arrays.copyOfRange(t.taps()[j], 6 * h, ids.length * h);
                float[] got = rest.taps()[j];
                for (int i = 0; i < want.length; i++) {
                    assertEquals(want[i], got[i], 1e-4 * (1 + Math.abs(want[i])), "cached tap " + j);
                }
            }
        }
    }
}
