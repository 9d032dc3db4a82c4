package dev.m2q.kernels;

import static dev.m2q.kernels.GpuTesting.TWIN;
import static dev.m2q.kernels.GpuTesting.assertBits;
import static dev.m2q.kernels.GpuTesting.assertWithin;
import static dev.m2q.kernels.GpuTesting.poisoned;
import static dev.m2q.kernels.GpuTesting.uniform;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The decoder layer's operations on the device against their Java twins: rmsNorm, rope, attention, swiglu and
 * the column absmax, on ragged shapes, with NaN-poisoned outputs.
 */
@Tag("gpu")
class CudaLayerGpuTest {
    /**
     * The same fp32 operations as the twin; only inv_r can differ, by one ulp (2⁻²³ relative), when the double
     * sums of squares (the twin's left to right, the device's tree) round to different fp32 means. Through the two
     * rounded products that moves an output by at most 2⁻²³ + 4·2⁻²⁴ = 3·2⁻²³ relative, so the bound is
     * 2⁻²¹·|out| (a ~1e-8 chance per row; every other output is the twin's bits). Also in place (out = x).
     */
    @Test
    void rmsNormWithinTwoUlpsOfTheTwin() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(21);
        for (int[] s : new int[][] {{1, 64}, {7, 1000}, {300, 4097}}) {
            int rows = s[0];
            int dim = s[1];
            float[] x = uniform(r, rows * dim, -3, 3);
            float[] w = uniform(r, dim, 0.5, 1.5);
            float[] want = new float[rows * dim];
            TWIN.rmsNorm(x, rows, dim, w, 1e-6f, want);
            double[] wantD = new double[want.length];
            double[] tol = new double[want.length];
            for (int i = 0; i < want.length; i++) {
                wantD[i] = want[i];
                tol[i] = 0x1p-21 * Math.abs(want[i]);
            }
            float[] out = poisoned(rows * dim);
            cuda.rmsNorm(x, rows, dim, w, 1e-6f, out);
            assertWithin(out, wantD, tol, "rmsNorm [" + rows + ", " + dim + "]");
            float[] inPlace = x.clone();
            cuda.rmsNorm(inPlace, rows, dim, w, 1e-6f, inPlace);
            assertWithin(inPlace, wantD, tol, "rmsNorm in place [" + rows + ", " + dim + "]");
        }
    }

    /**
     * rope: the twin's fp32 operations exactly (angle, then a·c − b·s and b·c + a·s, each product and sum rounded
     * separately); cos and sin of the angle come from CUDA's double functions instead of Java's, which can round
     * to another fp32 value by one ulp (at most 2⁻²⁴ absolute, |c|, |s| ≤ 1). That moves a product by ≤ 2⁻²⁴·|a|,
     * each product's rounding by ≤ 2⁻²³·|a|, the sum's by ≤ 2⁻²³·(|a| + |b|): in all ≤ 1.25·2⁻²²·(|a| + |b|), so
     * the bound is 2⁻²¹·(|a| + |b|). Positions up to 131071 make the angles large.
     */
    @Test
    void ropeWithinAnUlpOfCosAndSin() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(22);
        for (int[] s : new int[][] {{5, 3, 64}, {33, 4, 128}, {1, 2, 16}}) {
            int rows = s[0];
            int heads = s[1];
            int headDim = s[2];
            int half = headDim / 2;
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = (float) (1.0 / Math.pow(10000.0, (2.0 * i) / headDim));
            }
            int[] positions = r.ints(rows, 0, 131072).toArray();
            float[] x = uniform(r, rows * heads * headDim, -2, 2);
            float[] want = x.clone();
            TWIN.rope(want, rows, heads, headDim, invFreq, positions);
            double[] wantD = new double[want.length];
            double[] tol = new double[want.length];
            for (int row = 0; row < rows; row++) {
                for (int h = 0; h < heads; h++) {
                    int o = (row * heads + h) * headDim;
                    for (int i = 0; i < half; i++) {
                        double t = 0x1p-21 * (Math.abs(x[o + i]) + Math.abs(x[o + i + half]));
                        tol[o + i] = t;
                        tol[o + i + half] = t;
                    }
                }
            }
            for (int i = 0; i < want.length; i++) {
                wantD[i] = want[i];
            }
            float[] y = x.clone();
            cuda.rope(y, rows, heads, headDim, invFreq, positions);
            assertWithin(y, wantD, tol, "rope [" + rows + ", " + heads + ", " + headDim + "]");
        }
    }

    /** The attention of the SPI in double: the reference both implementations are held to. */
    static double[] attentionExact(
            float[] q, float[] k, float[] v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int d) {
        int total = startPos + seqLen;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        double[] out = new double[nSeq * seqLen * qDim];
        double scale = 1.0 / Math.sqrt(d);
        for (int s = 0; s < nSeq; s++) {
            for (int t = 0; t < seqLen; t++) {
                for (int h = 0; h < heads; h++) {
                    int kvh = h / (heads / kvHeads);
                    int qo = (s * seqLen + t) * qDim + h * d;
                    int visible = startPos + t + 1;
                    double[] sc = new double[visible];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < visible; j++) {
                        int ko = (s * total + j) * kvDim + kvh * d;
                        double dot = 0;
                        for (int i = 0; i < d; i++) {
                            dot += (double) q[qo + i] * k[ko + i];
                        }
                        sc[j] = dot * scale;
                        max = Math.max(max, sc[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < visible; j++) {
                        sc[j] = Math.exp(sc[j] - max);
                        sum += sc[j];
                    }
                    for (int j = 0; j < visible; j++) {
                        int vo = (s * total + j) * kvDim + kvh * d;
                        for (int i = 0; i < d; i++) {
                            out[qo + i] += sc[j] / sum * v[vo + i];
                        }
                    }
                }
            }
        }
        return out;
    }

    /**
     * Causal GQA, for the calibration shape (several sequences from position 0), a KV cache (one sequence after
     * 40 cached tokens) and odd head sizes. Both the device and the twin round dots of headDim terms, the
     * exponentials and the weighted sums in fp32: each output is within 1e-5·max|v| of the exact attention (the
     * error expected from random rounding is ~1e-7·max|v|; a wrong key, head or mask moves an output by
     * ~0.1·max|v|), and the two within twice that of each other.
     */
    @Test
    void attentionWithinFp32RoundingOfTheExactOne() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(23);
        // nSeq, seqLen, startPos, heads, kvHeads, headDim
        int[][] cases = {
            {3, 17, 0, 4, 2, 64},
            {1, 5, 40, 8, 1, 128},
            {2, 3, 7, 2, 2, 96},
            {1, 1, 300, 4, 4, 256},
            {2, 33, 0, 6, 3, 20}
        };
        for (int[] s : cases) {
            int nSeq = s[0];
            int seqLen = s[1];
            int startPos = s[2];
            int heads = s[3];
            int kvHeads = s[4];
            int d = s[5];
            float[] q = uniform(r, nSeq * seqLen * heads * d, -1, 1);
            float[] k = uniform(r, nSeq * (startPos + seqLen) * kvHeads * d, -1, 1);
            float[] v = uniform(r, k.length, -1, 1);
            double[] exact = attentionExact(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d);
            double[] tol = new double[exact.length];
            java.util.Arrays.fill(tol, 1e-5); // max|v| = 1
            float[] out = poisoned(q.length);
            cuda.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, out);
            String what = "attention " + java.util.Arrays.toString(s);
            assertWithin(out, exact, tol, what + " vs exact");
            float[] twin = poisoned(q.length);
            TWIN.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, twin);
            double[] twinD = new double[twin.length];
            for (int i = 0; i < twin.length; i++) {
                twinD[i] = twin[i];
                tol[i] = 2e-5;
            }
            assertWithin(out, twinD, tol, what + " vs the twin");
        }
    }

    /**
     * swiglu: the twin's fp32 operations exactly; only exp (in double, then fp32) may round to a neighbouring fp32
     * value in CUDA's library (a ~2⁻²⁹ chance per element). One ulp of e moves 1 + e by ≤ 2⁻²² relative with its
     * rounding, the quotient and the product add 2⁻²³ each: ≤ 2⁻²¹ relative, so the bound is 2⁻²⁰·|out|.
     */
    @Test
    void swigluWithinTwoUlpsOfTheTwin() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(24);
        for (int n : new int[] {1, 1000, 1_000_003}) {
            float[] gate = uniform(r, n, -12, 12);
            float[] up = uniform(r, n, -2, 2);
            float[] want = gate.clone();
            TWIN.swiglu(want, up, n);
            double[] wantD = new double[n];
            double[] tol = new double[n];
            for (int i = 0; i < n; i++) {
                wantD[i] = want[i];
                tol[i] = 0x1p-20 * Math.abs(want[i]);
            }
            float[] g = gate.clone();
            cuda.swiglu(g, up, n);
            assertWithin(g, wantD, tol, "swiglu n " + n);
        }
    }

    /**
     * absMaxColumns is exact, so bit for bit (Float.compare, which also tells −0 from +0): rows around the
     * kernel's 64-row splits, offsets into both arrays, a NaN in one column (that column's result is NaN), a
     * column of zeros against a −0 running value (Math.max gives +0), and running values above a column's max.
     */
    @Test
    void absMaxColumnsEqualsTheTwin() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(25);
        for (int[] s : new int[][] {{1, 1}, {63, 257}, {64, 3}, {65, 130}, {1000, 257}}) {
            int rows = s[0];
            int cols = s[1];
            int xOff = 3;
            int outOff = 2;
            float[] x = uniform(r, xOff + rows * cols, -4, 4);
            float[] out0 = uniform(r, outOff + cols + 1, 0, 4);
            if (cols > 2) {
                x[xOff + (rows / 2) * cols + 1] = Float.NaN;
                for (int t = 0; t < rows; t++) {
                    x[xOff + t * cols + 2] = t % 2 == 0 ? 0f : -0f;
                }
                out0[outOff + 2] = -0f;
            }
            float[] want = out0.clone();
            TWIN.absMaxColumns(x, xOff, rows, cols, want, outOff);
            float[] got = out0.clone();
            cuda.absMaxColumns(x, xOff, rows, cols, got, outOff);
            assertBits(want, got, got.length, "absMaxColumns [" + rows + ", " + cols + "]");
        }
    }
}
