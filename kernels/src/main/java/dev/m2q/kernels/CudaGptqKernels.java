package dev.m2q.kernels;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.quant.GroupSize;
import dev.m2q.gptq.Gptq;
import dev.m2q.gptq.GptqCodes;
import dev.m2q.gptq.GptqKernels;
import dev.m2q.gptq.GptqOptions;
import dev.m2q.gptq.GptqProblem;
import dev.m2q.gptq.GptqResult;
import dev.m2q.gptq.JavaGptqKernels;
import java.util.Objects;

/**
 * {@link GptqKernels} on the GPU of a {@link CudaKernels}, which offers it through {@link
 * CudaKernels#capability}: the Cholesky inverse is {@link DeviceCholesky} (cholesky.cu), the column loop {@link
 * DeviceGptq} (gptq.cu), and GPTQ on resident buffers ({@link CudaBuf}, {@link CudaWeight}) is {@link
 * DeviceGptqResident}, which runs both on device buffers. A call whose work is below the backend's {@link
 * CudaKernels.Policy#minDeviceWork()} runs {@link JavaGptqKernels} over the backend's CPU kernels instead. Calls
 * hold the backend's lock, so they are serialized with its other operations (one device, one set of work buffers).
 *
 * <p>Agreement with the Java twin, as CudaGptqGpuTest checks: the inverse to fp32 summation error (another
 * blocking); the codes and scales bit for bit up to ties that a different in-block rounding would flip, g_idx
 * exact. For quantize on resident data, see {@link DeviceGptqResident} (CudaGptqResidentGpuTest).
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
        // The clipping search (ClipSearch) and 8-bit codes have no device twin yet (gptq.cu is 4-bit): their loop
        // runs on the CPU, the Java reference; the Cholesky factor and H still come from the device.
        if (p.clipSearch() || p.bits().value() != 4 || cuda.small((long) k * k * n / 2)) {
            return new JavaGptqKernels(cuda.cpu()).columnLoop(p);
        }
        float[] scales = p.staticGroups() ? p.staticScales() : new float[p.groups() * n];
        int[] codes = new int[k * n];
        int[] gIdx = new int[k];
        double errSquares;
        synchronized (cuda) {
            errSquares = DeviceGptq.run(
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
        return new GptqCodes(codes, scales, gIdx, errSquares);
    }

    /**
     * One launch of m2q_hessian_finish (gptq.cu) on the buffer: each upper element times fp32(2/tokens), mirrored,
     * bit for bit {@link dev.m2q.gptq.HessianAccumulator}'s finish. Always on the device, whatever its size: the
     * sums are resident there, and a trip through the CPU would move k² floats twice to save one launch.
     */
    @Override
    public void finishHessian(Backend backend, Backend.Buf sum, int k, long tokens) {
        require(k > 0, "finishHessian: k " + k + " must be > 0");
        require(sum.length() >= (long) k * k, "finishHessian: the sums need [" + k + ", " + k + "] values");
        DeviceBuffer s = CudaBuf.of(sum);
        float f = (float) (2.0 / tokens);
        synchronized (cuda) {
            cuda.device()
                    .kernel("m2q_hessian_finish")
                    .launch(Device.blocks(k, 32), Device.blocks(k, 32), 1, 32, 8, 1, 0, k, f, s);
        }
    }

    /**
     * {@link Gptq#quantize} with W, H, W1, the Cholesky factor and the column loop on the device ({@link
     * DeviceGptqResident}). When the work (k²·n/2 for the loop plus k³/3 for the factorization) is below the
     * backend's {@link CudaKernels.Policy#minDeviceWork()}, W (as fp32) and H are downloaded instead, {@link
     * Gptq#quantize} runs on the backend's CPU kernels (the Java reference, bit for bit) and Ŵ is uploaded; so
     * does a run with the clipping search, which has no device twin yet.
     */
    @Override
    public Resident quantize(Backend backend, Backend.Weight w, Backend.Buf h, GptqOptions o) {
        CudaWeight cw = CudaWeight.of(w);
        DeviceBuffer hb = CudaBuf.of(h);
        int n = cw.rows();
        int k = cw.cols();
        int g = GroupSize.resolve(o.groupSize(), k);
        if (n <= 0 || k <= 0 || h.length() != (long) k * k || k % g != 0) {
            throw new IllegalArgumentException("GPTQ needs W [" + n + ", " + k + "] (got " + (long) n * k
                    + " values), H [" + k + ", " + k + "] (got " + h.length() + ") and K a multiple of G = " + g);
        }
        require(
                (long) k * k <= Integer.MAX_VALUE && (long) k * n <= Integer.MAX_VALUE - 8,
                "GPTQ on the device needs K² and K·N below 2³¹: K " + k + ", N " + n);
        if (o.clipSearch() || cuda.small((long) k * k * n / 2 + (long) k * k * k / 3)) {
            float[] wf;
            float[] hf = new float[k * k];
            synchronized (cuda) {
                wf = DeviceGptqResident.weightOnHost(cuda.device(), cw);
                cuda.device().ctx.download(hb, 0, hf, 0, k * k);
            }
            GptqResult r = Gptq.quantize(wf, n, k, hf, o, cuda.cpu());
            float[] wq = r.q().dequantize();
            synchronized (cuda) {
                DeviceBuffer out = cuda.device().upload(wq, 0, wq.length);
                return new Resident(r, new CudaWeight(new DeviceWeights.Dense(out, false), n, k));
            }
        }
        synchronized (cuda) {
            return DeviceGptqResident.quantize(cuda.device(), cw, hb, g, o);
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
