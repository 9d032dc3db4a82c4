package dev.m2q.gptq;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Kernels;

/**
 * The two steps of GPTQ that a device backend runs whole: the Cholesky inverse behind {@link DampedCholesky} and
 * the column loop of {@link Gptq}. GPTQ owns this interface, so core's {@link Kernels} holds only BLAS-level and
 * layer operations; a backend offers its implementation through {@link Kernels#capability}, and {@link
 * JavaGptqKernels}, written over core's products, is the reference the others are tested against.
 */
public interface GptqKernels {
    /** Short name for logs and test messages: "java (vector)", "cuda", … */
    String name();

    /**
     * The factorization step of GPTQ's inverse Hessian (see {@link DampedCholesky}): A + shift·I = L·Lᵀ, then
     * L⁻¹. A [k, k] symmetric is given by the strict upper triangle of a (row-major) and its diagonal diag[p];
     * the lower triangle of a is scratch on entry.
     *
     * <p>On success returns true, with L⁻¹ in the lower triangle of a (diagonal included) and the strict upper
     * triangle zeroed. When a pivot is not positive (or not finite) returns false, leaving the strict upper
     * triangle and diag unchanged so that the caller can retry with a larger shift. {@code fp64} computes in
     * double and rounds the result to fp32 once (the fallback after a failure in fp32); otherwise fp32
     * throughout.
     */
    boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64);

    /**
     * GPTQ's column loop with its lazy batch updates (ALGORITHMS.md §2, {@link GptqLoop}): for each block of
     * {@link GptqProblem#blockSize} positions i, quantize row i of W1 with the RTN rule of dev.m2q.core.quant.Rtn
     * (code, dequant), scale the error by 1/U[i, i], push it onto the block's later rows with U[i, j], then push
     * the block's errors onto every later row at once. {@link GptqProblem#w1} is overwritten (scratch).
     *
     * @throws IllegalArgumentException when a weight becomes non-finite (an ill-conditioned Hessian)
     */
    GptqCodes columnLoop(GptqProblem problem);

    /**
     * Finishes a Hessian accumulated on {@code backend} (see {@link HessianAccumulator}): sum [k, k] holds Σ x xᵀ
     * over {@code tokens} rows in its upper triangle; afterwards it holds H = (2/tokens)·Σ x xᵀ, symmetric, in
     * place: each upper element multiplied by fp32(2/tokens) once and mirrored into the lower triangle. Nothing
     * crosses the boundary.
     */
    void finishHessian(Backend backend, Backend.Buf sum, int k, long tokens);

    /**
     * A linear quantized by GPTQ on resident data.
     *
     * @param result the codes, scales and g_idx and the report's numbers, on the host
     * @param dequantized Ŵ = scale·(q − 8) [N, K] fp32, resident on the backend for the layer's next pass (the
     *     caller closes it)
     */
    record Resident(GptqResult result, Backend.Weight dequantized) {}

    /**
     * {@link Gptq#quantize} on data resident on {@code backend}: W [N, K] = {@code w} and the finished Hessian
     * {@code h} [K, K] (neither modified) stay there, with W1, the damped Cholesky factor and the column loop;
     * the crossings are H's diagonal (K floats: the dead columns, act-order's permutation and the damping's mean
     * are decided on the host) and the results: codes, scales, g_idx and the proxy loss. Same bits as {@link
     * Gptq#quantize} on the Java kernels.
     */
    Resident quantize(Backend backend, Backend.Weight w, Backend.Buf h, GptqOptions o);

    /** The GPTQ kernels of the backend {@code kernels}: its own when it offers them, else the Java reference. */
    static GptqKernels of(Kernels kernels) {
        return kernels.capability(GptqKernels.class).orElseGet(() -> new JavaGptqKernels(kernels));
    }
}
