package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@link Gptq#transpose} by tiles and threads: exactly the element-by-element transpose (it only moves values). */
class GptqTransposeTest {
    @ParameterizedTest
    @CsvSource({"1, 1", "1, 300", "300, 1", "64, 64", "65, 63", "130, 200", "1000, 777"})
    void tiledTransposeMovesEveryValueToItsPlace(int n, int k) {
        SplittableRandom rnd = new SplittableRandom(17L * n + k);
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        float[] want = new float[k * n];
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                want[c * n + r] = w[r * k + c];
            }
        }
        assertArrayEquals(want, Gptq.transpose(w, n, k));
    }
}
