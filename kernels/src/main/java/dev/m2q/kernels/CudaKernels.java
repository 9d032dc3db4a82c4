package dev.m2q.kernels;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.gptq.GptqKernels;
import java.util.Objects;
import java.util.Optional;

/**
 * {@link Kernels} on an NVIDIA GPU through {@link CudaContext}: every operation runs on the device (the .cu files
 * of src/main/cuda name their Java twins), except {@link #dot} and {@link #axpy}, and any call whose work is
 * below {@link Policy#minDeviceWork()} multiply-adds, which {@code cpu} runs: a device round trip (upload, launch,
 * download) costs tens of microseconds, more than a vector-sized operation takes on the CPU.
 *
 * <p>Agreement with the Java twins ({@code ScalarKernels}, {@code VectorKernels}), as the gpu tests check:
 *
 * <ul>
 *   <li>bit for bit: gemmAcc, syrkUpper (one in-order FMA chain per element, as the SPI fixes), the W4 matmul
 *       for 1..16 rows (the SPI's sequence), absMaxColumns, and GPTQ's codes and scales ({@link
 *       CudaGptqKernels}) up to ties that a different in-block rounding would flip;
 *   <li>to a few ulps, and mostly bit for bit: rmsNorm, rope and swiglu (the same fp32 operations; only a
 *       reduction in another order, or a double exp/cos/sin from another library, can round one intermediate to
 *       its neighbour);
 *   <li>to fp32 summation error: the fp32 and bf16-weight products, attention, the Cholesky inverse;
 *   <li>to bf16 operand rounding (2⁻⁸ relative per operand, bf16 keeping 8 significant bits): the tensor-core
 *       paths, taken for bf16 weights with 16 rows or more and for W4 with more than 16 rows (dequantized to
 *       bf16), when {@link Policy#bf16TensorCores()} is on.
 * </ul>
 *
 * <p>Weights are uploaded once per {@link Matrix} object and cached ({@link WeightCache}); activations are
 * uploaded per call. Calls are serialized (one device, one set of work buffers).
 */
public final class CudaKernels implements Kernels {
    /**
     * What runs where.
     *
     * @param bf16TensorCores bf16 weights (and W4 dequantized to bf16) meet x rounded to bf16 in the tensor
     *     cores for 16 rows or more; off, those products stay in fp32 on the SIMT units
     * @param minDeviceWork the multiply-adds (or elements, for the element-wise operations) below which a call
     *     runs on the CPU
     * @param minIntensity gemmAcc also stays on the CPU when its multiply-adds are fewer than this many per
     *     element moved to and from the device (a 1-row product moves as much as it computes)
     */
    public record Policy(boolean bf16TensorCores, long minDeviceWork, int minIntensity) {
        /** Tensor cores on; the device from 2²⁰ multiply-adds, and gemmAcc from 32 per element moved. */
        public static final Policy DEFAULT = new Policy(true, 1L << 20, 32);

        public Policy {
            if (minDeviceWork < 0 || minIntensity < 0) {
                throw new IllegalArgumentException(
                        "minDeviceWork " + minDeviceWork + " and minIntensity " + minIntensity + " must be >= 0");
            }
        }

        /** Everything on the device, whatever its size (tests, benchmarks). */
        public static Policy allOnDevice(boolean bf16TensorCores) {
            return new Policy(bf16TensorCores, 0, 0);
        }
    }

    private final Device dev;
    private final Kernels cpu;
    private final Policy policy;
    private final DeviceMatmul matmuls;
    private CudaBackend backend;

    public CudaKernels(CudaContext ctx, Kernels cpu) {
        this(ctx, cpu, Policy.DEFAULT);
    }

    public CudaKernels(CudaContext ctx, Kernels cpu, Policy policy) {
        this(ctx, cpu, policy, Vendor.of(Objects.requireNonNull(ctx)));
    }

    /** With the given vendor libraries; {@link Vendor#NONE} runs m2q's kernels only (the gpu tests compare both). */
    CudaKernels(CudaContext ctx, Kernels cpu, Policy policy, Vendor vendor) {
        this.dev = new Device(Objects.requireNonNull(ctx), Objects.requireNonNull(vendor));
        this.cpu = Objects.requireNonNull(cpu);
        this.policy = Objects.requireNonNull(policy);
        this.matmuls = new DeviceMatmul(dev, policy.bf16TensorCores());
    }

    @Override
    public String name() {
        return "cuda";
    }

    /** Weight matrices held on the device now. */
    public synchronized int cachedWeights() {
        return dev.weights.size();
    }

    /** Frees every cached weight on the device. */
    public synchronized void clearCache() {
        dev.weights.clear();
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        require(rows >= 0, "matmul: rows " + rows + " < 0");
        require(x.length >= (long) rows * k, "matmul: x has " + x.length + " values, [" + rows + ", " + k + "] needed");
        require(y.length >= (long) rows * n, "matmul: y has " + y.length + " values, [" + rows + ", " + n + "] needed");
        require(bias == null || bias.length >= n, "matmul: bias has fewer than " + n + " values");
        if (rows == 0) {
            return;
        }
        if (small((long) rows * n * k)) {
            cpu.matmul(x, rows, w, bias, y);
            return;
        }
        synchronized (this) {
            matmuls.run(x, rows, w, bias, y);
        }
    }

    /** Vector-sized (one row of attention, a GPTQ column): a device round trip would cost more than the work. */
    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return cpu.dot(a, aOff, b, bOff, n);
    }

    /** Vector-sized rows, like {@link #axpy}: runs on the CPU. */
    @Override
    public void axpys(float[] alphas, int aOff, float[] x, int[] xOffs, int count, float[] y, int yOff, int n) {
        cpu.axpys(alphas, aOff, x, xOffs, count, y, yOff, n);
    }

    /** Vector-sized rows, like {@link #axpy}: runs on the CPU. */
    @Override
    public void axpyRows(float[] alphas, int aOff, float[] x, int xOff, float[] y, int[] yOffs, int count, int n) {
        cpu.axpyRows(alphas, aOff, x, xOff, y, yOffs, count, n);
    }

    /** Vector-sized rows, like {@link #dot}: runs on the CPU. */
    @Override
    public void dots(float[] a, int aOff, float[] b, int[] bOffs, int count, int n, float[] out, int outOff) {
        cpu.dots(a, aOff, b, bOffs, count, n, out, outOff);
    }

    /** Vector-sized, like {@link #dot}: runs on the CPU. */
    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        cpu.axpy(alpha, x, xOff, y, yOff, n);
    }

    /** Rows of the packed chunk sums downloaded at once, each added to c on the host. */
    private static final int SYRK_BAND = 128;

    /**
     * On the device the chunk sums S are computed from 0f, their upper triangle packed row by row (half of k²),
     * and downloaded by bands of rows; the host adds them, c[i·k + j] += S[i, j], the SPI's one addition, so the
     * result is the twin's bits and c never travels to the device.
     */
    @Override
    public void syrkUpper(float[] x, int rows, int k, float[] c) {
        require(rows >= 0 && k >= 0, "syrkUpper: rows " + rows + " and k " + k + " must be >= 0");
        require(
                x.length >= (long) rows * k,
                "syrkUpper: x has " + x.length + " values, [" + rows + ", " + k + "] needed");
        require(c.length >= (long) k * k, "syrkUpper: c has " + c.length + " values, [" + k + ", " + k + "] needed");
        if (rows == 0 || k == 0) {
            return;
        }
        if (small((long) rows * k * (k + 1) / 2)) {
            cpu.syrkUpper(x, rows, k, c);
            return;
        }
        synchronized (this) {
            try (DeviceBuffer xb = dev.upload(x, 0, rows * k);
                    DeviceBuffer s = dev.alloc(4L * k * k);
                    DeviceBuffer packed = dev.alloc(4L * packedRow(k, k))) {
                dev.kernel("m2q_syrk_upper_f32")
                        .launch(Device.blocks(k, 128), Device.blocks(k, 128), 1, 256, 1, 1, 0, rows, k, xb, s);
                dev.kernel("m2q_pack_upper_f32").launch(Device.blocks(k, 256), k, 1, 256, 1, 1, 0, k, s, packed);
                float[] band = new float[Math.min(k, SYRK_BAND) * k];
                for (int i0 = 0; i0 < k; i0 += SYRK_BAND) {
                    int i1 = Math.min(k, i0 + SYRK_BAND);
                    long from = packedRow(k, i0); // row i of the band starts at packedRow(k, i) − from
                    dev.ctx.download(packed, 4 * from, band, 0, (int) (packedRow(k, i1) - from));
                    int first = i0;
                    Parallel.forRange(i1 - i0, k, (lo, hi) -> {
                        for (int i = first + lo; i < first + hi; i++) {
                            int row = i * k;
                            int at = (int) (packedRow(k, i) - from) - i;
                            for (int j = i; j < k; j++) {
                                c[row + j] += band[at + j];
                            }
                        }
                    });
                }
            }
        }
    }

    /** Where row i of a packed upper triangle [k, k] starts: the k − r elements of each row r < i before it. */
    static long packedRow(int k, int i) {
        return (long) i * k - (long) i * (i - 1) / 2;
    }

    /**
     * A, B and C are packed into dense buffers on the host (a transposed A stays transposed: its rows are
     * contiguous), so only their elements travel; C comes back into its strided place.
     */
    @Override
    public void gemmAcc(
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
            int ldc) {
        if (m <= 0 || n <= 0 || depth <= 0) {
            return;
        }
        require(
                aOff >= 0 && aRow >= 0 && aCol >= 0 && bOff >= 0 && ldb >= 0 && cOff >= 0 && ldc >= 0,
                "gemmAcc: offsets and strides must be >= 0");
        checkLast(a, aOff + (long) (m - 1) * aRow + (long) (depth - 1) * aCol, "a");
        checkLast(b, bOff + (long) (depth - 1) * ldb + n - 1, "b");
        checkLast(c, cOff + (long) (m - 1) * ldc + n - 1, "c");
        long work = (long) m * n * depth;
        long moved = (long) m * depth + (long) depth * n + 2L * m * n;
        if (small(work) || work < policy.minIntensity() * moved || moved > Integer.MAX_VALUE - 8) {
            cpu.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
            return;
        }
        synchronized (this) {
            boolean transposed = aCol != 1 && aRow == 1;
            float[] ap = new float[m * depth]; // [m, depth], or [depth, m] when A is transposed
            if (transposed) {
                for (int p = 0; p < depth; p++) {
                    System.arraycopy(a, aOff + p * aCol, ap, p * m, m);
                }
            } else if (aCol == 1) {
                for (int i = 0; i < m; i++) {
                    System.arraycopy(a, aOff + i * aRow, ap, i * depth, depth);
                }
            } else {
                for (int i = 0; i < m; i++) {
                    for (int p = 0; p < depth; p++) {
                        ap[i * depth + p] = a[aOff + i * aRow + p * aCol];
                    }
                }
            }
            float[] bp = new float[depth * n]; // [depth, n]
            for (int p = 0; p < depth; p++) {
                System.arraycopy(b, bOff + p * ldb, bp, p * n, n);
            }
            float[] cp = new float[m * n]; // [m, n]
            for (int i = 0; i < m; i++) {
                System.arraycopy(c, cOff + i * ldc, cp, i * n, n);
            }
            try (DeviceBuffer ab = dev.upload(ap, 0, ap.length);
                    DeviceBuffer bb = dev.upload(bp, 0, bp.length);
                    DeviceBuffer cb = dev.upload(cp, 0, cp.length)) {
                dev.kernel("m2q_gemm_acc_f32")
                        .launch(
                                Device.blocks(n, 128),
                                Device.blocks(m, 128),
                                1,
                                256,
                                1,
                                1,
                                0,
                                m,
                                n,
                                depth,
                                ab,
                                0,
                                transposed ? 1 : depth,
                                transposed ? m : 1,
                                bb,
                                0,
                                n,
                                cb,
                                0,
                                n);
                dev.ctx.download(cb, 0, cp, 0, cp.length);
            }
            for (int i = 0; i < m; i++) {
                System.arraycopy(cp, i * n, c, cOff + i * ldc, n);
            }
        }
    }

    @Override
    public void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        require(rows >= 0 && dim > 0, "rmsNorm: rows " + rows + " must be >= 0 and dim " + dim + " > 0");
        require(
                x.length >= (long) rows * dim && out.length >= (long) rows * dim,
                "rmsNorm: x and out need [" + rows + ", " + dim + "] values");
        require(weight.length >= dim, "rmsNorm: weight has fewer than " + dim + " values");
        if (rows == 0) {
            return;
        }
        if (small((long) rows * dim)) {
            cpu.rmsNorm(x, rows, dim, weight, eps, out);
            return;
        }
        synchronized (this) {
            try (DeviceBuffer xb = dev.upload(x, 0, rows * dim);
                    DeviceBuffer wb = dev.upload(weight, 0, dim)) {
                dev.kernel("m2q_rmsnorm").launch(rows, 1, 1, 256, 1, 1, 0, rows, dim, xb, wb, eps, xb);
                dev.ctx.download(xb, 0, out, 0, rows * dim);
            }
        }
    }

    @Override
    public void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        require(
                rows >= 0 && heads > 0 && headDim > 0 && headDim % 2 == 0,
                "rope: rows " + rows + ", heads " + heads + ", headDim " + headDim + " (even) out of range");
        long width = (long) heads * headDim;
        require(x.length >= rows * width, "rope: x needs [" + rows + ", " + width + "] values");
        require(invFreq.length >= headDim / 2, "rope: invFreq has fewer than " + headDim / 2 + " values");
        require(positions.length >= rows, "rope: positions has fewer than " + rows + " values");
        if (rows == 0) {
            return;
        }
        if (small(rows * width)) {
            cpu.rope(x, rows, heads, headDim, invFreq, positions);
            return;
        }
        synchronized (this) {
            int len = (int) (rows * width);
            try (DeviceBuffer xb = dev.upload(x, 0, len);
                    DeviceBuffer fb = dev.upload(invFreq, 0, headDim / 2);
                    DeviceBuffer pb = dev.upload(positions, 0, rows)) {
                dev.kernel("m2q_rope")
                        .launch(
                                Device.blocks((long) rows * (headDim / 2), 256),
                                1,
                                1,
                                256,
                                1,
                                1,
                                0,
                                rows,
                                heads,
                                headDim,
                                xb,
                                fb,
                                pb);
                dev.ctx.download(xb, 0, x, 0, len);
            }
        }
    }

    /** Head sizes the attention kernel holds in registers (8 values per lane). */
    private static final int MAX_HEAD_DIM = 256;

    @Override
    public void attention(
            float[] q,
            float[] k,
            float[] v,
            int nSeq,
            int seqLen,
            int startPos,
            int heads,
            int kvHeads,
            int headDim,
            float[] out) {
        require(nSeq >= 0 && seqLen >= 0 && startPos >= 0, "attention: nSeq, seqLen and startPos must be >= 0");
        require(
                heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
                "attention: heads " + heads + " must be a positive multiple of kvHeads " + kvHeads);
        require(headDim > 0, "attention: headDim " + headDim + " must be > 0");
        long qLen = (long) nSeq * seqLen * heads * headDim;
        long kvLen = (long) nSeq * (startPos + seqLen) * kvHeads * headDim;
        require(q.length >= qLen && out.length >= qLen, "attention: q and out need " + qLen + " values");
        require(k.length >= kvLen && v.length >= kvLen, "attention: k and v need " + kvLen + " values");
        if (qLen == 0) {
            return;
        }
        long work = qLen * (startPos + (seqLen + 1) / 2);
        if (headDim > MAX_HEAD_DIM || small(work)) {
            cpu.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
            return;
        }
        synchronized (this) {
            try (DeviceBuffer qb = dev.upload(q, 0, (int) qLen);
                    DeviceBuffer kb = dev.upload(k, 0, (int) kvLen);
                    DeviceBuffer vb = dev.upload(v, 0, (int) kvLen);
                    DeviceBuffer ob = dev.alloc(4L * qLen)) {
                dev.kernel("m2q_attention")
                        .launch(
                                Device.blocks((long) nSeq * seqLen * heads, 1),
                                1,
                                1,
                                128,
                                1,
                                1,
                                0,
                                nSeq,
                                seqLen,
                                startPos,
                                heads,
                                kvHeads,
                                headDim,
                                qb,
                                kb,
                                vb,
                                ob);
                dev.ctx.download(ob, 0, out, 0, (int) qLen);
            }
        }
    }

    @Override
    public void swiglu(float[] gate, float[] up, int n) {
        require(n >= 0 && gate.length >= n && up.length >= n, "swiglu: gate and up need " + n + " values");
        if (n == 0) {
            return;
        }
        if (small(n)) {
            cpu.swiglu(gate, up, n);
            return;
        }
        synchronized (this) {
            try (DeviceBuffer gb = dev.upload(gate, 0, n);
                    DeviceBuffer ub = dev.upload(up, 0, n)) {
                dev.kernel("m2q_swiglu").launch(Device.blocks(n, 256), 1, 1, 256, 1, 1, 0, (long) n, gb, ub);
                dev.ctx.download(gb, 0, gate, 0, n);
            }
        }
    }

    /** Rows per partial maximum of absMaxColumns' first pass. */
    private static final int ABSMAX_ROWS = 64;

    @Override
    public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        require(rows >= 0 && cols >= 0 && xOff >= 0 && outOff >= 0, "absMaxColumns: negative size or offset");
        require(x.length >= xOff + (long) rows * cols, "absMaxColumns: x needs [" + rows + ", " + cols + "] values");
        require(out.length >= outOff + (long) cols, "absMaxColumns: out needs " + cols + " values");
        if (rows == 0 || cols == 0) {
            return;
        }
        if (small((long) rows * cols)) {
            cpu.absMaxColumns(x, xOff, rows, cols, out, outOff);
            return;
        }
        synchronized (this) {
            int perSplit = Math.max(ABSMAX_ROWS, (rows + 65534) / 65535);
            int splits = (rows + perSplit - 1) / perSplit;
            try (DeviceBuffer xb = dev.upload(x, xOff, rows * cols);
                    DeviceBuffer ob = dev.upload(out, outOff, cols);
                    DeviceBuffer partial = dev.alloc(4L * splits * cols)) {
                dev.kernel("m2q_absmax_partial")
                        .launch(Device.blocks(cols, 256), splits, 1, 256, 1, 1, 0, rows, cols, perSplit, xb, partial);
                dev.kernel("m2q_absmax_combine")
                        .launch(Device.blocks(cols, 256), 1, 1, 256, 1, 1, 0, cols, splits, partial, ob);
                dev.ctx.download(ob, 0, out, outOff, cols);
            }
        }
    }

    /** GPTQ's column loop and Cholesky inverse on this device ({@link CudaGptqKernels}); nothing else. */
    @Override
    public <T> Optional<T> capability(Class<T> type) {
        return type == GptqKernels.class ? Optional.of(type.cast(new CudaGptqKernels(this))) : Optional.empty();
    }

    /**
     * This device's resident backend ({@link CudaBackend}), made on first use, one per CudaKernels: it shares
     * this object's device, weight cache (evicted when its allocations run out of memory), matmul work buffers and
     * lock. It runs every call on the device whatever its size ({@link Policy#minDeviceWork()} does not apply:
     * its data is already there).
     */
    @Override
    public synchronized Backend backend() {
        if (backend == null) {
            backend = new CudaBackend(this, dev, matmuls, cpu);
        }
        return backend;
    }

    /** The device, for {@link CudaGptqKernels}; used under this object's lock, as every call here is. */
    Device device() {
        return dev;
    }

    /** The Java kernels that small calls go to. */
    Kernels cpu() {
        return cpu;
    }

    boolean small(long work) {
        return work < policy.minDeviceWork();
    }

    private static void checkLast(float[] arr, long last, String name) {
        require(last < arr.length, "gemmAcc: " + name + " is read up to index " + last + " but has " + arr.length);
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
