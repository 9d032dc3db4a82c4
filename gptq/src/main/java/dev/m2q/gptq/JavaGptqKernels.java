package dev.m2q.gptq;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.quant.QuantizedLinear;
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

    /** {@link HessianAccumulator#finish} on the buffer's array. */
    @Override
    public void finishHessian(Backend backend, Backend.Buf sum, int k, long tokens) {
        HessianAccumulator.finish(JavaBackend.array(sum), k, tokens);
    }

    /** {@link Gptq#quantize} on the arrays behind the weight and the buffer (a Java backend's, no copy). */
    @Override
    public Resident quantize(Backend backend, Backend.Weight w, Backend.Buf h, GptqOptions o) {
        Matrix m = JavaBackend.matrix(w);
        GptqResult r = Gptq.quantize(m.toFloatArray(), m.rows(), m.cols(), JavaBackend.array(h), o, kernels);
        QuantizedLinear q = r.q();
        return new Resident(r, new JavaBackend(kernels).weight(new Matrix.F32(q.dequantize(), m.rows(), m.cols())));
    }
}
