package dev.m2q.core.kernels;

import dev.m2q.core.model.Rope;
import dev.m2q.core.quant.Rtn;

/**
 * The Java implementations of the {@link Kernels} operations that are written once for both Java kernels: each
 * reads like its definition in the {@link Kernels} javadoc and leaves the vector-sized inner steps ({@link
 * Kernels#dot}, {@link Kernels#axpy}) to the kernels it is given, so {@link ScalarKernels} and {@link
 * VectorKernels} differ only where those do. The CUDA kernels name these methods as their twins. Public for
 * the callers that reuse a step (GPTQ's static group scales) and for the JMH benchmarks.
 */
public final class JavaOps {
    private JavaOps() {}

    /** {@link Kernels#rmsNorm}. */
    static void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        Parallel.forRange(rows, 2L * dim, (from, to) -> {
            for (int r = from; r < to; r++) {
                int o = r * dim;
                double ss = 0;
                for (int i = 0; i < dim; i++) {
                    ss += (double) x[o + i] * x[o + i];
                }
                float inv = (float) (1.0 / Math.sqrt((float) (ss / dim) + eps));
                for (int i = 0; i < dim; i++) {
                    out[o + i] = weight[i] * (x[o + i] * inv);
                }
            }
        });
    }

    /** {@link Kernels#rope}. */
    static void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        int half = headDim / 2;
        Parallel.forRange(rows, (long) heads * headDim, (from, to) -> {
            float[] cos = new float[half];
            float[] sin = new float[half];
            for (int r = from; r < to; r++) {
                Rope.angles(invFreq, positions[r], cos, sin);
                int base = r * heads * headDim;
                for (int h = 0; h < heads; h++) {
                    int o = base + h * headDim;
                    for (int i = 0; i < half; i++) {
                        float a = x[o + i];
                        float b = x[o + i + half];
                        x[o + i] = a * cos[i] - b * sin[i];
                        x[o + i + half] = b * cos[i] + a * sin[i];
                    }
                }
            }
        });
    }

    /** {@link Kernels#attention}, one (row, head) per work item, its dot products and updates on {@code k}. */
    static void attention(
            Kernels kern,
            float[] q,
            float[] k,
            float[] v,
            int nSeq,
            int seqLen,
            int startPos,
            int heads,
            int kvHeads,
            int d,
            float[] out) {
        int group = heads / kvHeads;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int total = startPos + seqLen;
        float scale = (float) (1.0 / Math.sqrt(d));
        java.util.Arrays.fill(out, 0, nSeq * seqLen * qDim, 0f);
        Parallel.forRange(nSeq * seqLen * heads, (long) total * d, (from, to) -> {
            float[] scores = new float[total];
            for (int item = from; item < to; item++) {
                int row = item / heads; // query row over all sequences
                int h = item % heads;
                int s = row / seqLen;
                int t = row % seqLen;
                int kv0 = s * total; // the sequence's first key row
                int kvh = h / group;
                int qOff = row * qDim + h * d;
                int visible = startPos + t + 1;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < visible; j++) {
                    float sc = kern.dot(q, qOff, k, (kv0 + j) * kvDim + kvh * d, d) * scale;
                    scores[j] = sc;
                    max = Math.max(max, sc);
                }
                double sum = 0;
                for (int j = 0; j < visible; j++) {
                    float e = (float) Math.exp(scores[j] - max);
                    scores[j] = e;
                    sum += e;
                }
                float inv = (float) (1.0 / sum);
                for (int j = 0; j < visible; j++) {
                    kern.axpy(scores[j] * inv, v, (kv0 + j) * kvDim + kvh * d, out, qOff, d);
                }
            }
        });
    }

    /** {@link Kernels#swiglu}. */
    static void swiglu(float[] gate, float[] up, int n) {
        Parallel.forRange(n, 16, (from, to) -> {
            for (int i = from; i < to; i++) {
                float g = gate[i];
                gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
            }
        });
    }

    /** {@link Kernels#absMaxColumns}: Math.max propagates NaN, and max is exact, so any order gives the same bits. */
    static void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        Parallel.forRange(cols, rows, (from, to) -> {
            for (int c = from; c < to; c++) {
                float m = out[outOff + c];
                for (int r = 0; r < rows; r++) {
                    m = Math.max(m, Math.abs(x[xOff + r * cols + c]));
                }
                out[outOff + c] = m;
            }
        });
    }

    /** {@link Kernels#gptqColumns}, the loop of the GPTQ paper on W1 = Wᵀ (the column w_{:,i} is row i). */
    static void gptqColumns(
            Kernels kern,
            float[] wt,
            int k,
            int n,
            float[] u,
            int g,
            int b,
            int[] perm,
            boolean staticGroups,
            float[] scales,
            int[] codes,
            int[] gIdx) {
        float[] err1 = new float[b * n]; // Err1 [B, N]: the scaled errors of the block's columns
        for (int i1 = 0; i1 < k; i1 += b) {
            int i2 = Math.min(i1 + b, k);
            for (int i = i1; i < i2; i++) {
                int col = perm == null ? i : perm[i]; // original input channel at position i
                int group;
                if (staticGroups) {
                    group = col / g;
                } else {
                    group = i / g;
                    if (i % g == 0) {
                        // The group's scales, over its current weights: all updates issued so far.
                        groupScales(kern, wt, i, g, n, scales, group * n);
                    }
                }
                gIdx[col] = group;
                float uii = u[i * k + i];
                int row = i * n;
                int e = (i - i1) * n;
                for (int c = 0; c < n; c++) {
                    float s = scales[group * n + c];
                    int q = Rtn.code(wt[row + c], s);
                    codes[col * n + c] = q;
                    err1[e + c] = (wt[row + c] - Rtn.dequant(q, s)) / uii;
                }
                // Compensate inside the block: w_j −= err · U_ij for the block's later columns.
                for (int j = i + 1; j < i2; j++) {
                    kern.axpy(-u[i * k + j], err1, e, wt, j * n, n);
                }
            }
            lazyBatchUpdate(kern, wt, u, err1, i1, i2, n, k);
        }
    }

    /**
     * W1[i2:, :] −= U[i1:i2, i2:]ᵀ · Err1: the block's errors applied to every later column at once, as one
     * {@link Kernels#gemmAcc} over the rows of W1 (Uᵀ read in place through its strides, −Err1 as B), so each
     * element of W1 continues one in-order FMA chain over the block's columns.
     */
    public static void lazyBatchUpdate(
            Kernels kern, float[] wt, float[] u, float[] err1, int i1, int i2, int n, int k) {
        int cnt = i2 - i1;
        if (i2 >= k) {
            return;
        }
        float[] negErr = new float[cnt * n]; // −Err1 [cnt, N]
        for (int e = 0; e < negErr.length; e++) {
            negErr[e] = -err1[e];
        }
        kern.gemmAcc(k - i2, n, cnt, u, i1 * k + i2, 1, k, negErr, 0, n, wt, i2 * n, n);
    }

    /**
     * RTN's scale for each output channel over rows [from, from + g) of W1 [*, n], into scales[at, at + n).
     *
     * @throws IllegalArgumentException when a weight there is not finite
     */
    public static void groupScales(Kernels kern, float[] wt, int from, int g, int n, float[] scales, int at) {
        float[] absmax = new float[n];
        kern.absMaxColumns(wt, from * n, g, n, absmax, 0);
        for (int c = 0; c < n; c++) {
            if (!Float.isFinite(absmax[c])) {
                throw new IllegalArgumentException("a weight of output " + c + " in inputs " + from + ".."
                        + (from + g - 1) + " became " + absmax[c]
                        + " during GPTQ; the Hessian is ill-conditioned, try a larger --damp");
            }
            scales[at + c] = Rtn.scale(absmax[c]);
        }
    }
}
