package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The layer operations and the absmax reduction of {@link Kernels}, in both Java kernels,
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
            if (cols > 1) {
                poisoned[3 + 1] = Float.NaN; // in the first row: the rows after it must not replace it
            }
            float[] out2 = new float[cols];
            kern.absMaxColumns(poisoned, 3, rows, cols, out2, 0);
            assertTrue(Float.isNaN(out2[0]), "a NaN in column 0 must make its absmax NaN");
            for (int c = 1; c < cols; c++) {
                if (c == 1) {
                    assertTrue(Float.isNaN(out2[1]), "a NaN in column 1's first row must make its absmax NaN");
                } else {
                    assertEquals(absMax(x, 3, rows, cols, c), out2[c], 0f, "column " + c);
                }
            }
        }
    }

    /** Column c's absmax over the rows, from 0. */
    private static float absMax(float[] x, int off, int rows, int cols, int c) {
        float m = 0f;
        for (int r = 0; r < rows; r++) {
            m = Math.max(m, Math.abs(x[off + r * cols + c]));
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
