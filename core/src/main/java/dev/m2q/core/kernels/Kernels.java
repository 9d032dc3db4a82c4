package dev.m2q.core.kernels;

import java.util.Locale;
import java.util.Optional;

/**
 * The operations m2q runs on large data. The Java implementations are the reference: {@link ScalarKernels} is
 * the plain-loop twin of {@link VectorKernels} (Vector API), and accelerated backends are tested against them.
 *
 * <p>Every implementation is deterministic: the same inputs give the same bits whatever the thread count, since
 * each output element is computed by one thread in a fixed order.
 */
public interface Kernels {
    /** Short name for logs: "vector", "scalar", … */
    String name();

    /**
     * y = x · Wᵀ (+ bias): x [rows, w.cols()] fp32 row-major, y [rows, w.rows()] fp32 row-major, bias
     * [w.rows()] or null. Accumulates in fp32.
     *
     * <p>For a {@link Matrix.W4} every implementation computes each y[t, n] by exactly this sequence, so they
     * agree bit for bit (q = the code in [0, 15], s = the group's scale, all arithmetic fp32):
     *
     * <pre>
     * y = bias == null ? 0f : bias[n]
     * for g = 0, 1, …, K/G − 1:
     *     acc = 0f;  sx = 0f
     *     for k with g_idx[k] == g, in increasing k:
     *         acc = fma((float) q[k, n], x[t, k], acc)
     *         sx  = sx + x[t, k]
     *     y = fma(scales[g, n], acc − 8·sx, y)      // 8·sx is exact, so acc − 8·sx rounds once
     * y[t, n] = y
     * </pre>
     *
     * The zero point 8 is folded into one correction per group instead of a subtraction per weight.
     */
    void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y);

    /** Σ a[aOff + i] · b[bOff + i] for i in [0, n), accumulated in fp32. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /**
     * out[outOff + j] = {@link #dot}(a, aOff, b, bOffs[j], n) for j &lt; count, each with dot's bits: one vector
     * against many rows (an attention's scores over its keys), which an implementation may take in blocks.
     */
    default void dots(float[] a, int aOff, float[] b, int[] bOffs, int count, int n, float[] out, int outOff) {
        for (int j = 0; j < count; j++) {
            out[outOff + j] = dot(a, aOff, b, bOffs[j], n);
        }
    }

    /** y[yOff + i] += alpha · x[xOff + i] for i in [0, n). */
    void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n);

    /**
     * {@link #axpy}(alphas[aOff + j], x, xOffs[j], y, yOff, n) for j = 0, 1, …, count − 1 in turn, with axpy's bits: a
     * weighted sum of many rows into one (an attention's output over its values), which an implementation may keep
     * in registers over the rows.
     */
    default void axpys(float[] alphas, int aOff, float[] x, int[] xOffs, int count, float[] y, int yOff, int n) {
        for (int j = 0; j < count; j++) {
            axpy(alphas[aOff + j], x, xOffs[j], y, yOff, n);
        }
    }

    /**
     * {@link #axpy}(alphas[aOff + j], x, xOff, y, yOffs[j], n) for j = 0, 1, …, count − 1 in turn, with axpy's bits: one
     * row weighted into many (an attention backward's key and value gradients from one query row), which an
     * implementation may keep in registers over the rows. Any two rows of y are the same (its updates then come in j
     * order) or disjoint, and none overlaps x.
     */
    default void axpyRows(float[] alphas, int aOff, float[] x, int xOff, float[] y, int[] yOffs, int count, int n) {
        for (int j = 0; j < count; j++) {
            axpy(alphas[aOff + j], x, xOff, y, yOffs[j], n);
        }
    }

    /**
     * Symmetric rank-k update of the upper triangle, the Hessian accumulation's inner step: for 0 ≤ i ≤ j < k,
     * c[i·k + j] += Σ_t x[t·k + i]·x[t·k + j], x [rows, k] and c [k, k] row-major fp32; the strict lower
     * triangle of c is not touched.
     *
     * <p>Every implementation computes each element's chunk sum the same way, so they agree bit for bit: start
     * from 0f, fold t = 0, 1, … in order with fused multiply-adds, then add the sum to c[i·k + j] once.
     */
    void syrkUpper(float[] x, int rows, int k, float[] c);

    /**
     * C += A·B in place, the inner product of the blocked factorizations and of GPTQ's lazy batch update: for
     * i &lt; m and j &lt; n, c[cOff + i·ldc + j] folds p = 0, 1, …, depth − 1 in order, starting from its current
     * value, with fused multiply-adds of a[aOff + i·aRow + p·aCol] · b[bOff + p·ldb + j]. A is addressed by
     * two strides, so a transposed A (aRow = 1) costs nothing.
     *
     * <p>Every implementation computes each element exactly so (one FMA chain, no partial sums), so they agree
     * bit for bit, whatever the thread count or blocking.
     */
    void gemmAcc(
            int m,
            int n,
            int depth,
            float[] a,
            int aOff,
            int aRow,
            int aCol,
            float[] b,
            int bOff,
            int ldb,
            float[] c,
            int cOff,
            int ldc);

    /**
     * RMSNorm per row: out[r, i] = weight[i] · (x[r, i] · inv_r) with inv_r = 1 / sqrt(fp32(mean_i x[r, i]²) + eps),
     * the mean of squares accumulated in double, inv_r rounded to fp32. x, out [rows, dim] row-major fp32 (out may
     * be x), weight [dim].
     */
    void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out);

    /**
     * Rotary position embedding in place, Hugging Face's rotate-half convention: x [rows, heads·headDim]; row r
     * is at position positions[r]; for each head and i &lt; headDim/2, with angle = fp32((float) positions[r] ·
     * invFreq[i]), c = fp32(cos(angle)), s = fp32(sin(angle)) (cos and sin of the fp32 angle in double):
     * (a, b) = (x[i], x[i + d/2]) becomes (a·c − b·s, b·c + a·s).
     */
    void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions);

    /**
     * Causal grouped-query attention with softmax scale 1/sqrt(headDim), for nSeq sequences of seqLen new
     * tokens each at positions startPos.. . q, out [nSeq·seqLen, heads·headDim]; k, v [*, kvHeads·headDim],
     * where sequence s's keys and values occupy rows s·(startPos + seqLen) .. of k and v (the calibration batch:
     * startPos 0; a KV cache: nSeq 1). Query row t of sequence s, head h, reads kv head h / (heads / kvHeads)
     * and sees key rows 0 .. startPos + t of its sequence. Scores and the output accumulate in fp32, the
     * softmax denominator in double. Every element of out is written.
     */
    void attention(
            float[] q,
            float[] k,
            float[] v,
            int nSeq,
            int seqLen,
            int startPos,
            int heads,
            int kvHeads,
            int headDim,
            float[] out);

    /** SwiGLU in place: gate[i] = gate[i] / (1 + fp32(exp(−gate[i]))) · up[i] for i &lt; n. */
    void swiglu(float[] gate, float[] up, int n);

    /**
     * Running absolute maximum per column: out[outOff + c] = max(out[outOff + c], max_r |x[xOff + r·cols + c]|)
     * for x [rows, cols] row-major. A NaN anywhere in a column makes that column's result NaN (the callers
     * refuse it); the result is otherwise exact, so every implementation agrees bit for bit.
     */
    void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff);

    /**
     * An optional capability of this backend beyond these operations, looked up by the interface that a method
     * module owns and core cannot name (such as the GPTQ module's column loop and Cholesky inverse): a
     * device backend returns its implementation, so the loop stays on the device; empty, the default, tells the
     * caller to run its Java implementation over these operations. A wrapper around another backend forwards
     * this call ({@link ForwardingKernels} does).
     */
    default <T> Optional<T> capability(Class<T> type) {
        return Optional.empty();
    }

    /**
     * This backend's operations on data it owns ({@link Backend}): the layer pass and decoding run there, so that a
     * device backend moves weights once and activations only at a pass's ends. The default is the Java backend over
     * these kernels (heap arrays, no copy). A device backend returns its own; a wrapper forwards the call
     * ({@link ForwardingKernels} does), unless it must see the backend's calls too ({@link CountingKernels}).
     */
    default Backend backend() {
        return new JavaBackend(this);
    }

    /** The implementation named by system property {@code m2q.kernels} ("vector", the default, or "scalar"). */
    static Kernels fromProperty() {
        return byName(System.getProperty("m2q.kernels", "vector"));
    }

    /** "vector" or "scalar". */
    static Kernels byName(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "vector" -> VectorKernels.INSTANCE;
            case "scalar" -> ScalarKernels.INSTANCE;
            default -> throw new IllegalArgumentException("unknown kernels \"" + name + "\" (choose vector or scalar)");
        };
    }
}
