package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link GptqKernels#choleskyInverse} of the Java reference over both Java kernels, against a reference written
 * here in double from the definition (not from {@link JavaCholesky}).
 */
class JavaCholeskyTest {
    private static final GptqKernels[] BOTH = {
        new JavaGptqKernels(ScalarKernels.INSTANCE), new JavaGptqKernels(VectorKernels.INSTANCE)
    };

    @ParameterizedTest
    @CsvSource({"1, false", "5, false", "5, true", "130, false", "130, true", "300, true"})
    void choleskyInverseGivesTheInverseFactor(int k, boolean fp64) {
        SplittableRandom rnd = new SplittableRandom(k);
        double[] spd = spd(rnd, k);
        float shift = 0.05f;
        for (GptqKernels kern : BOTH) {
            float[] a = new float[k * k];
            float[] diag = new float[k];
            for (int i = 0; i < k; i++) {
                diag[i] = (float) spd[i * k + i];
                for (int j = 0; j < k; j++) {
                    a[i * k + j] = j > i ? (float) spd[i * k + j] : Float.NaN; // lower triangle: scratch
                }
            }
            assertTrue(kern.choleskyInverse(a, diag, shift, k, fp64));
            // X = L⁻¹ with L·Lᵀ = A + shift·I means X·(A + shift·I)·Xᵀ = I. A is built with eigenvalues in
            // [0.5, 2], so κ ≤ 4 and fp32 keeps I to ~k·2⁻²⁴·κ ≈ 1e-4 at k = 300; fp64 rounds X to fp32 once.
            double tol = fp64 ? 1e-5 : 2e-4;
            double[] xa = new double[k * k];
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    assertEquals(0f, j > i ? a[i * k + j] : 0f, "strict upper triangle zeroed");
                    double s = 0;
                    for (int p = 0; p <= i; p++) {
                        s += a[i * k + p]
                                * (spd[p * k + j] + (p == j ? (double) (diag[p] + shift) - spd[p * k + p] : 0));
                    }
                    xa[i * k + j] = s;
                }
            }
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    double s = 0;
                    for (int p = 0; p <= j; p++) {
                        s += xa[i * k + p] * a[j * k + p];
                    }
                    assertEquals(i == j ? 1 : 0, s, tol, kern.name() + " (" + i + ", " + j + ")");
                }
            }
        }
    }

    /**
     * The order {@link JavaCholesky#choleskyLower} promises, as plain loops over L in a k² array: for each block
     * J = [j0, j0 + BLOCK), P[i, j] = A[i, j] − s with s one FMA chain from +0 over p &lt; j0 of L[i, p]·L[j, p];
     * then Crout inside the block's own rows with {@code kernels.dot} over the block's earlier columns, and the rows
     * below as products with the block's inverse. Written from the
     * contract, not from the super-blocked code, which splits each chain in two products.
     */
    private static float[] lowerReference(float[] a, float[] diag, float shift, int k, Kernels kernels) {
        float[] l = new float[k * k];
        for (int j0 = 0; j0 < k; j0 += JavaCholesky.BLOCK) {
            int j1 = Math.min(k, j0 + JavaCholesky.BLOCK);
            for (int j = j0; j < j1; j++) {
                for (int i = j; i < k; i++) {
                    float s = 0f;
                    for (int p = 0; p < j0; p++) {
                        s = Math.fma(l[i * k + p], l[j * k + p], s);
                    }
                    l[i * k + j] = (i == j ? diag[j] + shift : a[j * k + i]) - s;
                }
            }
            for (int q = j0; q < j1; q++) {
                float ljj = (float) Math.sqrt(l[q * k + q] - kernels.dot(l, q * k + j0, l, q * k + j0, q - j0));
                l[q * k + q] = ljj;
                for (int i = q + 1; i < j1; i++) {
                    l[i * k + q] = (l[i * k + q] - kernels.dot(l, i * k + j0, l, q * k + j0, q - j0)) / ljj;
                }
            }
            // Rows below the block: one FMA chain from +0 over the block's columns of P[i, p]·X[q, p], X the
            // block's inverse in invertLowerInPlace's order (JavaCholeskyInverseTest.reference).
            int bw = j1 - j0;
            float[] block = new float[bw * bw];
            for (int q = 0; q < bw; q++) {
                for (int p = 0; p <= q; p++) {
                    block[q * bw + p] = l[(j0 + q) * k + j0 + p];
                }
            }
            float[] x = JavaCholeskyInverseTest.reference(block, bw);
            for (int i = j1; i < k; i++) {
                float[] row = new float[bw];
                for (int q = 0; q < bw; q++) {
                    float s = 0f;
                    for (int p = 0; p < bw; p++) {
                        s = Math.fma(l[i * k + j0 + p], x[q * bw + p], s);
                    }
                    row[q] = s;
                }
                System.arraycopy(row, 0, l, i * k + j0, bw);
            }
        }
        return l;
    }

    /**
     * The fp32 factor is bit for bit the plain loops of its order, on sizes that end inside a block, on a block
     * boundary and inside a later super-block (1100 = 2·512 + 76), with both Java kernels.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 127, 128, 515, 640, 1100})
    void theFactorIsBitForBitItsOrder(int k) {
        SplittableRandom rnd = new SplittableRandom(3L * k + 1);
        double[] spd = spd(rnd, k);
        float shift = 0.05f;
        float[] a = new float[k * k];
        float[] diag = new float[k];
        for (int i = 0; i < k; i++) {
            diag[i] = (float) spd[i * k + i];
            for (int j = i + 1; j < k; j++) {
                a[i * k + j] = (float) spd[i * k + j];
            }
        }
        for (Kernels kernels : new Kernels[] {ScalarKernels.INSTANCE, VectorKernels.INSTANCE}) {
            float[] want = lowerReference(a, diag, shift, k, kernels);
            float[] got = a.clone();
            assertTrue(JavaCholesky.choleskyLower(got, diag, shift, k, kernels));
            for (int i = 0; i < k; i++) {
                for (int j = 0; j <= i; j++) {
                    assertEquals(
                            Float.floatToRawIntBits(want[i * k + j]),
                            Float.floatToRawIntBits(got[i * k + j]),
                            kernels.name() + " k=" + k + " L(" + i + ", " + j + ")");
                }
                for (int j = i + 1; j < k; j++) {
                    assertEquals(Float.floatToRawIntBits(a[i * k + j]), Float.floatToRawIntBits(got[i * k + j]));
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aFailedCholeskyLeavesItsInputsForTheRetry(boolean fp64) {
        // [[1, 2], [2, 1]] has eigenvalues 3 and −1: no shift below 1 makes it positive definite.
        int k = 130;
        float[] a = new float[k * k];
        float[] diag = new float[k];
        for (int i = 0; i < k; i++) {
            diag[i] = 1f;
            if (i % 2 == 0) {
                a[i * k + i + 1] = 2f;
            }
        }
        for (GptqKernels kern : BOTH) {
            float[] copy = a.clone();
            float[] diagCopy = diag.clone();
            assertFalse(kern.choleskyInverse(copy, diagCopy, 0.5f, k, fp64));
            assertArrayEquals(diag, diagCopy);
            for (int i = 0; i < k; i++) {
                for (int j = i + 1; j < k; j++) {
                    assertEquals(a[i * k + j], copy[i * k + j], 0f, "upper (" + i + ", " + j + ")");
                }
            }
        }
    }

    /** Q·diag(λ)·Qᵀ with λ in [0.5, 2] and Q from Householder reflections: symmetric positive definite. */
    private static double[] spd(SplittableRandom rnd, int k) {
        double[] m = new double[k * k];
        for (int i = 0; i < k; i++) {
            m[i * k + i] = 0.5 + 1.5 * rnd.nextDouble();
        }
        for (int r = 0; r < 3; r++) {
            double[] v = new double[k];
            double norm = 0;
            for (int i = 0; i < k; i++) {
                v[i] = rnd.nextGaussian();
                norm += v[i] * v[i];
            }
            for (int i = 0; i < k; i++) {
                v[i] /= Math.sqrt(norm);
            }
            // M ← H·M·H with H = I − 2vvᵀ.
            double[] mv = new double[k];
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    mv[i] += m[i * k + j] * v[j];
                }
            }
            double vmv = 0;
            for (int i = 0; i < k; i++) {
                vmv += v[i] * mv[i];
            }
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    m[i * k + j] += -2 * v[i] * mv[j] - 2 * mv[i] * v[j] + 4 * vmv * v[i] * v[j];
                }
            }
        }
        return m;
    }
}
