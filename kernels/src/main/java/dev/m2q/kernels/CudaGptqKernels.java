package dev.m2q.kernels;

import dev.m2q.gptq.GptqCodes;
import dev.m2q.gptq.GptqKernels;
import dev.m2q.gptq.GptqProblem;
import dev.m2q.gptq.JavaGptqKernels;
import java.util.Objects;

/**
 * {@link GptqKernels} on the GPU of a {@link CudaKernels}, which offers it through {@link
 * CudaKernels#capability}: the Cholesky inverse is {@link DeviceCholesky} (cholesky.cu), the column loop {@link
 * DeviceGptq} (gptq.cu). A call whose work is below the backend's {@link CudaKernels.Policy#minDeviceWork()}
 * runs {@link JavaGptqKernels} over the backend's CPU kernels instead. Calls hold the backend's lock, so they
 * are serialized with its other operations (one device, one set of work buffers).
 *
 * <p>Agreement with the Java twin, as CudaGptqGpuTest checks: the inverse to fp32 summation error (another
 * blocking); the codes and scales bit for bit up to ties that a different in-block rounding would flip, g_idx
 * exact.
 */
final class CudaGptqKernels implements GptqKernels {
    private final CudaKernels cuda;

    CudaGptqKernels(CudaKernels cuda) {
        this.cuda = Objects.requireNonNull(cuda);
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64) {
        require(k > 0, "choleskyInverse: k " + k + " must be > 0");
        require(a.length >= (long) k * k, "choleskyInverse: a needs [" + k + ", " + k + "] values");
        require(diag.length >= k, "choleskyInverse: diag has fewer than " + k + " values");
        if (cuda.small((long) k * k * k / 3)) {
            return new JavaGptqKernels(cuda.cpu()).choleskyInverse(a, diag, shift, k, fp64);
        }
        synchronized (cuda) {
            return DeviceCholesky.run(cuda.device(), a, diag, shift, k, fp64);
        }
    }

    @Override
    public GptqCodes columnLoop(GptqProblem p) {
        int k = p.k();
        int n = p.n();
        if (cuda.small((long) k * k * n / 2)) {
            return new JavaGptqKernels(cuda.cpu()).columnLoop(p);
        }
        float[] scales = p.staticGroups() ? p.staticScales() : new float[p.groups() * n];
        int[] codes = new int[k * n];
        int[] gIdx = new int[k];
        synchronized (cuda) {
            DeviceGptq.run(
                    cuda.device(),
                    p.w1(),
                    k,
                    n,
                    p.u(),
                    p.groupSize(),
                    p.blockSize(),
                    p.perm(),
                    p.staticGroups(),
                    scales,
                    codes,
                    gIdx);
        }
        return new GptqCodes(codes, scales, gIdx);
    }

    // Placeholders until the CUDA backend's resident buffers land (issue 14 item 1, in progress this session).
    @Override
    public void finishHessian(
            dev.m2q.core.kernels.Backend backend, dev.m2q.core.kernels.Backend.Buf sum, int k, long tokens) {
        throw new UnsupportedOperationException("resident GPTQ on CUDA is not written yet");
    }

    @Override
    public Resident quantize(
            dev.m2q.core.kernels.Backend backend,
            dev.m2q.core.kernels.Backend.Weight w,
            dev.m2q.core.kernels.Backend.Buf h,
            dev.m2q.gptq.GptqOptions o) {
        throw new UnsupportedOperationException("resident GPTQ on CUDA is not written yet");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
