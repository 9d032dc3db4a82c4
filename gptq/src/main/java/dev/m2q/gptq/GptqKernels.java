package dev.m2q.gptq;

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

    /** The GPTQ kernels of the backend {@code kernels}: its own when it offers them, else the Java reference. */
    static GptqKernels of(Kernels kernels) {
        return kernels.capability(GptqKernels.class).orElseGet(() -> new JavaGptqKernels(kernels));
    }
}
