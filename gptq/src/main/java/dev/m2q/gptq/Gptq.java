package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GroupSize;
import dev.m2q.core.quant.QuantizedLinear;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * GPTQ (Frantar et al., 2022; ALGORITHMS.md §2): quantize the columns of W one at a time and push each column's
 * rounding error onto the columns not yet quantized, weighted by the inverse Hessian, so the layer's output on
 * the calibration inputs moves as little as possible. Symbols follow the paper: H, U (upper Cholesky factor of
 * H⁻¹, "Hinv"), B (block), Err1. The loop itself is {@link GptqLoop}; it and the Cholesky inverse run on
 * the backend's {@link GptqKernels}.
 *
 * <p>Layout: the loop works on Wᵀ [K, N] (fp32, a copy), so the paper's column w_{:,i} is the contiguous row i.
 */
public final class Gptq {
    private Gptq() {}

    /** {@link #quantize(float[], int, int, float[], GptqOptions, Kernels)} with the default kernels. */
    public static GptqResult quantize(float[] w, int n, int k, float[] h, GptqOptions o) {
        return quantize(w, n, k, h, o, Kernels.fromProperty());
    }

    /**
     * @param w W [N, K] row-major fp32; not modified
     * @param h H [K, K] row-major fp32, symmetric (from {@link HessianAccumulator}); not modified
     * @throws IllegalArgumentException on bad shapes (K must be a multiple of G), a non-finite H, or an H that no
     *     dampening below 1 makes positive definite
     */
    public static GptqResult quantize(float[] w, int n, int k, float[] h, GptqOptions o, Kernels kernels) {
        long start = System.nanoTime();
        int g = GroupSize.resolve(o.groupSize(), k);
        if (n <= 0 || k <= 0 || w.length != (long) n * k || h.length != (long) k * k || k % g != 0) {
            throw new IllegalArgumentException("GPTQ needs W [" + n + ", " + k + "] (got " + w.length + " values), H ["
                    + k + ", " + k + "] (got " + h.length + ") and K a multiple of G = " + g);
        }
        List<String> fallbacks = new ArrayList<>();
        int groups = k / g;

        // W1 = Wᵀ, with dead inputs (H_kk = 0: never active in the calibration data) zeroed.
        float[] wt = transpose(w, n, k);
        int[] dead = DampedCholesky.deadColumns(h, k);
        for (int c : dead) {
            Arrays.fill(wt, c * n, (c + 1) * n, 0f);
        }
        if (dead.length > 0) {
            fallbacks.add(deadNote(dead.length));
        }

        // Act-order: columns by descending diag(H). Static groups fix their scales first, on original columns (RTN's
        // absmax ones; with the clipping search the loop computes its other rules' own from W1, GptqLoop.clipSearch).
        int[] perm = o.actOrder() ? ActOrder.permutation(h, k) : null;
        boolean staticGroups = o.actOrder() && o.staticGroups();
        Bits bits = Bits.of(o.bits());
        float[] staticScales = staticGroups ? new float[groups * n] : null;
        if (staticGroups) {
            for (int gi = 0; gi < groups; gi++) {
                GptqLoop.groupScales(kernels, wt, gi * g, g, n, staticScales, gi * n, bits, ScaleRule.ABSMAX);
            }
        }
        float[] hp = h;
        if (perm != null) {
            wt = ActOrder.permuteRows(wt, k, n, perm);
            hp = ActOrder.permuteSymmetric(h, k, perm);
        }

        GptqKernels gptqKernels = GptqKernels.of(kernels);
        DampedCholesky.Result chol = DampedCholesky.factor(hp, k, o.damp(), gptqKernels);
        if (chol.retries() > 0) {
            fallbacks.add(dampNote(o.damp(), chol.dampUsed(), chol.retries()));
        }
        float[] u = chol.hinvUpper();
        hp = null;

        GptqCodes c = gptqKernels.columnLoop(
                new GptqProblem(wt, u, k, n, g, o.blockSize(), perm, staticScales, bits, o.clipSearch()));

        QuantizedLinear q = new QuantizedLinear(n, k, g, c.codes(), c.scales(), c.gIdx(), bits);
        Duration time = Duration.ofNanos(System.nanoTime() - start);
        double sampled = o.exactLossRows() > 0 ? sampledLoss(w, q, h, o.exactLossRows(), kernels) : Double.NaN;
        return new GptqResult(q, c.errSquares() / n, sampled, chol.dampUsed(), fallbacks, time);
    }

    /** The report's line for {@code count} > 0 dead input columns zeroed (a {@link GptqResult#fallbacks} entry). */
    public static String deadNote(int count) {
        return count + " dead input column" + (count == 1 ? "" : "s") + " zeroed";
    }

    /** The report's line for a damp raised from {@code damp} to {@code used} after {@code retries} > 0 failures. */
    public static String dampNote(double damp, double used, int retries) {
        return String.format(
                "damp raised from %s to %.2f after %d Cholesky failure%s",
                damp, used, retries, retries == 1 ? "" : "s");
    }

    /**
     * The rows of the exact proxy loss's sample for about {@code wanted} of {@code n} output rows: 0, s, 2s, … &lt; n
     * with s = max(1, ⌊n / wanted⌋), so at least min(wanted, n) rows, evenly spread.
     */
    public static int sampleStride(int n, int wanted) {
        return Math.max(1, n / wanted);
    }

    /**
     * The exact proxy loss tr((W − Ŵ)·H·(W − Ŵ)ᵀ) per row with the undamped H, on the output rows of {@link
     * #sampleStride}: the figure to compare with other tools, whose cost (a product with H per row) is why it is
     * only computed when asked. Equals {@link #proxyLoss} when the stride is 1.
     */
    public static double sampledLoss(float[] w, QuantizedLinear q, float[] h, int wanted, Kernels kernels) {
        int n = q.outFeatures();
        int k = q.inFeatures();
        int stride = sampleStride(n, wanted);
        int count = (n + stride - 1) / stride;
        float[] all = q.dequantize();
        float[] ws = new float[count * k];
        float[] wqs = new float[count * k];
        for (int i = 0; i < count; i++) {
            System.arraycopy(w, i * stride * k, ws, i * k, k);
            System.arraycopy(all, i * stride * k, wqs, i * k, k);
        }
        return proxyLoss(ws, wqs, count, k, h, kernels);
    }

    /** {@link #proxyLoss(float[], float[], int, int, float[], Kernels)} with the default kernels. */
    public static double proxyLoss(float[] w, float[] wq, int n, int k, float[] h) {
        return proxyLoss(w, wq, n, k, h, Kernels.fromProperty());
    }

    /**
     * tr((W − Ŵ)·H·(W − Ŵ)ᵀ)/N, the output error GPTQ minimizes: D = W − Ŵ [N, K], H [K, K] symmetric. D·H in
     * fp32 through {@link Kernels#gemmAcc} (chunks of rows; H symmetric, so its rows serve as B), the final
     * Σ (D·H)∘D in double.
     */
    public static double proxyLoss(float[] w, float[] wq, int n, int k, float[] h, Kernels kernels) {
        if (w.length != (long) n * k || wq.length != w.length || h.length != (long) k * k) {
            throw new IllegalArgumentException(
                    "proxy loss needs W and Ŵ [" + n + ", " + k + "] and H [" + k + ", " + k + "]");
        }
        int chunk = Math.max(1, Math.min(n, (1 << 23) / k));
        float[] d = new float[chunk * k];
        float[] y = new float[chunk * k];
        double total = 0;
        for (int r0 = 0; r0 < n; r0 += chunk) {
            int rows = Math.min(chunk, n - r0);
            for (int i = 0; i < rows * k; i++) {
                d[i] = w[r0 * k + i] - wq[r0 * k + i];
            }
            Arrays.fill(y, 0f);
            kernels.gemmAcc(rows, k, k, d, 0, k, 1, h, 0, k, y, 0, k);
            for (int i = 0; i < rows * k; i++) {
                total += (double) y[i] * d[i];
            }
        }
        return total / n;
    }

    /** Rows and columns per tile of {@link #transpose}: a 64 × 64 tile of each side (16 KiB) stays in L1. */
    private static final int TRANSPOSE_TILE = 64;

    /** Wᵀ [k, n] of W [n, k], by tiles (so neither side is walked with a stride of a whole row), row bands in parallel. */
    static float[] transpose(float[] w, int n, int k) {
        float[] t = new float[k * n];
        int bands = (n + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
        Parallel.forRange(bands, (long) TRANSPOSE_TILE * k, (from, to) -> {
            for (int r0 = from * TRANSPOSE_TILE; r0 < Math.min(n, to * TRANSPOSE_TILE); r0 += TRANSPOSE_TILE) {
                int r1 = Math.min(n, r0 + TRANSPOSE_TILE);
                for (int c0 = 0; c0 < k; c0 += TRANSPOSE_TILE) {
                    int c1 = Math.min(k, c0 + TRANSPOSE_TILE);
                    for (int r = r0; r < r1; r++) {
                        for (int c = c0; c < c1; c++) {
                            t[c * n + r] = w[r * k + c];
                        }
                    }
                }
            }
        });
        return t;
    }
}
