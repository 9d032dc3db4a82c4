package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link JavaCholesky#invertLowerInPlace}: bit for bit the plain loop of the same order, and L·L⁻¹ ≈ I. */
class JavaCholeskyInverseTest {
    private static final Kernels[] BOTH = {ScalarKernels.INSTANCE, VectorKernels.INSTANCE};

    /**
     * A random lower-triangular L (diagonal in [1, 2], off-diagonal in ±1/k, so L = D + N with ‖D⁻¹N‖∞ &lt; 1
     * and ‖L⁻¹‖∞ stays small) in the lower triangle; the strict upper triangle holds NaN, which the inverse
     * must overwrite with zeros (it is the scratch A in real use).
     */
    private static float[] lower(int k) {
        SplittableRandom rnd = new SplittableRandom(31L * k + 7);
        float[] a = new float[k * k];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                a[i * k + j] = j > i
                        ? Float.NaN
                        : j == i ? (float) (1 + rnd.nextDouble()) : (float) ((2 * rnd.nextDouble() - 1) / k);
            }
        }
        return a;
    }

    /**
     * The order {@link JavaCholesky#invertLowerInPlace} promises, as a plain loop: X[i, j] (j &lt; i) is one FMA
     * chain from +0 over p = 0, 1, …, i − 1 of L[i, p]·X[p, j], times −1/L[i, i]; X[i, i] = 1/L[i, i].
     */
    static float[] reference(float[] l, int k) {
        float[] x = new float[k * k];
        for (int i = 0; i < k; i++) {
            float lii = l[i * k + i];
            float inv = -1f / lii;
            for (int j = 0; j < i; j++) {
                float s = 0f;
                for (int p = j; p < i; p++) { // X[p, j] = 0 for p < j: +0 + L·0 = +0 exactly, so start at j
                    s = Math.fma(l[i * k + p], x[p * k + j], s);
                }
                x[i * k + j] = s * inv;
            }
            x[i * k + i] = 1f / lii;
        }
        return x;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 15, 16, 17, 33, 127, 128, 129, 200, 300, 517, 1100})
    void inverseIsBitForBitThePlainLoopAndInvertsL(int k) {
        float[] l = lower(k);
        float[] want = reference(l, k);
        for (Kernels kernels : BOTH) {
            float[] a = l.clone();
            JavaCholesky.invertLowerInPlace(a, k, kernels);
            for (int e = 0; e < k * k; e++) {
                assertEquals(
                        Float.floatToRawIntBits(want[e]),
                        Float.floatToRawIntBits(a[e]),
                        kernels.name() + " k=" + k + " (" + e / k + ", " + e % k + "): " + want[e] + " vs " + a[e]);
            }
            // L·X = I: each element of X carries ≤ i·2⁻²⁴ relative error times ‖L⁻¹‖ (≤ 2 here, as ‖D⁻¹N‖∞ ≤ 1/2
            // and the diagonal ≥ 1), and the check sums ≤ k products of |L| ≤ 2 with them: ≤ ~4·k·6e-8, under
            // 3e-4 at k = 1100; a wrong term (a skipped or doubled p) is of order 1/k², far above that for k ≤ 64
            // and still ≥ 4e-6 ≫ the per-element rounding for the bit check above, which catches it regardless.
            double tol = 4.0 * k * 0x1p-24 + 1e-6;
            for (int i = 0; i < k; i++) {
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int p = j; p <= i; p++) {
                        s += (double) l[i * k + p] * a[p * k + j];
                    }
                    assertEquals(i == j ? 1.0 : 0.0, s, tol, kernels.name() + " k=" + k + " (" + i + ", " + j + ")");
                }
            }
        }
    }
}
