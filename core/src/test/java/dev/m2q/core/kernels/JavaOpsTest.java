package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The layer operations, the absmax reduction and the Cholesky inverse of {@link Kernels}, in both Java kernels,
 * against references written here in double from the definitions (not from {@link JavaOps}).
 */
class JavaOpsTest {
    private static final Kernels[] BOTH = {ScalarKernels.INSTANCE, VectorKernels.INSTANCE};

    @ParameterizedTest
    @CsvSource({"1, 4, 1, 1, 1, 8", "2, 5, 3, 4, 2, 16", "1, 7, 0, 4, 4, 8", "3, 9, 0, 6, 2, 32", "1, 3, 11, 2, 1, 64"})
    void attentionMatchesTheSoftmaxDefinition(int nSeq, int seqLen, int startPos, int heads, int kvHeads, int d) {
        SplittableRandom rnd = new SplittableRandom(nSeq * 131L + seqLen * 17L + startPos + heads + d);
        int total = startPos + seqLen;
        float[] q = randoms(rnd, nSeq * seqLen * heads * d);
        float[] k = randoms(rnd, nSeq * total * kvHeads * d);
        float[] v = randoms(rnd, nSeq * total * kvHeads * d);
        double[] ref = new double[q.length];
        int group = heads / kvHeads;
        for (int s = 0; s < nSeq; s++) {
            for (int t = 0; t < seqLen; t++) {
                for (int h = 0; h < heads; h++) {
                    int qo = ((s * seqLen + t) * heads + h) * d;
                    int visible = startPos + t + 1;
                    double[] p = new double[visible];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < visible; j++) {
                        int ko = ((s * total + j) * kvHeads + h / group) * d;
                        double dot = 0;
                        for (int e = 0; e < d; e++) {
                            dot += (double) q[qo + e] * k[ko + e];
                        }
                        p[j] = dot / Math.sqrt(d);
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < visible; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    for (int j = 0; j < visible; j++) {
                        int vo = ((s * total + j) * kvHeads + h / group) * d;
                        for (int e = 0; e < d; e++) {
                            ref[qo + e] += p[j] / sum * v[vo + e];
                        }
                    }
                }
            }
        }
        for (Kernels kern : BOTH) {
            float[] out = new float[q.length];
            Arrays.fill(out, Float.NaN); // every element must be written
            kern.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, out);
            for (int i = 0; i < out.length; i++) {
                // fp32 scores and a weighted sum of at most 14 unit-scale values: a few ulps of |v|, far below
                // 1e-5; a wrong key row, head or mask moves an output by about a tenth or more.
                assertEquals(ref[i], out[i], 1e-5, kern.name() + " element " + i);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {8, 64, 130})
    void rmsNormRopeAndSwigluMatchTheirDefinitions(int dim) {
        SplittableRandom rnd = new SplittableRandom(dim);
        int rows = 5;
        float[] x = randoms(rnd, rows * dim);
        float[] weight = randoms(rnd, dim);
        float[] invFreq = new float[dim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(10000, -2.0 * i / dim);
        }
        int[] positions = {0, 1, 7, 300, 4095};
        float[] gate = randoms(rnd, rows * dim);
        float[] up = randoms(rnd, rows * dim);
        for (Kernels kern : BOTH) {
            float[] out = new float[x.length];
            kern.rmsNorm(x, rows, dim, weight, 1e-6f, out);
            float[] r = x.clone();
            kern.rope(r, rows, 1, dim, invFreq, positions);
            float[] g = gate.clone();
            kern.swiglu(g, up, g.length);
            for (int t = 0; t < rows; t++) {
                double ss = 0;
                for (int i = 0; i < dim; i++) {
                    ss += (double) x[t * dim + i] * x[t * dim + i];
                }
                double inv = 1 / Math.sqrt(ss / dim + 1e-6);
                for (int i = 0; i < dim; i++) {
                    int e = t * dim + i;
                    // fp32 products of an fp32-rounded inverse norm: within 4 ulps of the double value.
                    assertEquals(weight[i] * x[e] * inv, out[e], 4 * Math.ulp(out[e]) + 1e-30, "rmsnorm " + e);
                    double angle = (double) (float) (positions[t] * invFreq[i % (dim / 2)]);
                    int pair = i < dim / 2 ? e + dim / 2 : e - dim / 2;
                    double sign = i < dim / 2 ? -1 : 1;
                    double rot = x[e] * Math.cos(angle) + sign * x[pair] * Math.sin(angle);
                    // two fp32 products and a sum of unit-scale values: 1e-6 absolute.
                    assertEquals(rot, r[e], 1e-6, "rope " + e);
                }
            }
            for (int i = 0; i < g.length; i++) {
                double silu = gate[i] / (1 + Math.exp(-gate[i]));
                assertEquals(silu * up[i], g[i], 1e-6, "swiglu " + i);
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 1", "3, 17", "128, 40", "7, 300"})
    void absMaxIsExactRunningAndPropagatesNaN(int rows, int cols) {
        SplittableRandom rnd = new SplittableRandom(rows + cols);
        float[] x = randoms(rnd, 3 + rows * cols);
        float[] start = randoms(rnd, cols + 2);
        for (Kernels kern : BOTH) {
            float[] out = start.clone();
            kern.absMaxColumns(x, 3, rows, cols, out, 2);
            assertEquals(start[0], out[0]);
            assertEquals(start[1], out[1]);
            for (int c = 0; c < cols; c++) {
                float m = start[c + 2];
                for (int r = 0; r < rows; r++) {
                    m = Math.max(m, Math.abs(x[3 + r * cols + c]));
                }
                assertEquals(m, out[c + 2], 0f, "column " + c); // max is exact: bit for bit
            }
            float[] poisoned = x.clone();
            poisoned[3 + (rows - 1) * cols] = Float.NaN;
            float[] out2 = new float[cols];
            kern.absMaxColumns(poisoned, 3, rows, cols, out2, 0);
            assertTrue(Float.isNaN(out2[0]), "a NaN in column 0 must make its absmax NaN");
        }
    }

    @ParameterizedTest
    @CsvSource({"1, false", "5, false", "5, true", "130, false", "130, true", "300, true"})
    void choleskyInverseGivesTheInverseFactor(int k, boolean fp64) {
        SplittableRandom rnd = new SplittableRandom(k);
        double[] spd = spd(rnd, k);
        float shift = 0.05f;
        for (Kernels kern : BOTH) {
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
        for (Kernels kern : BOTH) {
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

    private static float[] randoms(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }
}
