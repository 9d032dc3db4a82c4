package dev.m2q.gptq;

import dev.m2q.core.kernels.Kernels;
import java.util.Objects;

/**
 * The reference {@link GptqKernels}: {@link JavaCholesky} and {@link GptqLoop}, their inner steps on core's
 * {@link Kernels#dot}, {@link Kernels#axpy}, {@link Kernels#gemmAcc} and {@link Kernels#absMaxColumns}, so over
 * ScalarKernels and VectorKernels they differ only where those do (and agree bit for bit, as those do).
 *
 * @param kernels the backend that runs the inner steps
 */
public record JavaGptqKernels(Kernels kernels) implements GptqKernels {
    public JavaGptqKernels {
        Objects.requireNonNull(kernels);
    }

    @Override
    public String name() {
        return "java (" + kernels.name() + ")";
    }

    @Override
    public boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64) {
        return JavaCholesky.choleskyInverse(a, diag, shift, k, fp64, kernels);
    }

    @Override
    public GptqCodes columnLoop(GptqProblem problem) {
        return GptqLoop.run(kernels, problem);
    }
}
