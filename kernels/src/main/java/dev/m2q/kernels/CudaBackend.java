package dev.m2q.kernels;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.PackedRows;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The {@link Backend} of {@link CudaKernels}: buffers are device memory ({@link CudaBuf}), weights are device
 * weights in the form the matmul kernels read ({@link CudaWeight}), and every operation is a kernel launch on them.
 * Only the crossings of the SPI move data: wrap, write, update (cuMemcpyHtoD), read, take, inspect, update
 * (cuMemcpyDtoH), and weight(Matrix), which uploads the matrix as {@link DeviceMatmul#upload} builds it for the
 * weight cache (but owned by the returned weight, not cached).
 *
 * <p>Agreement with the Java backend, as {@code CudaBackendGpuTest} checks: bit for bit for alloc, the crossings,
 * copy, add, scale (m2q_add_f32, m2q_scale_f32), syrkUpper (m2q_syrk_upper_add_f32: each element's sum from 0f
 * over the rows in order, then one addition into c, the SPI's arithmetic) and absMaxColumns; the rest as the
 * {@link CudaKernels} operation of the same name (its class javadoc): rmsNorm, rope (m2q_rope_span, the positions
 * computed on the device), ropePacked (m2q_rope), attentionPacked (m2q_attention_packed, m2q_attention's arithmetic
 * over the packed layout's keys), swiglu to a few ulps, matmul and attention to fp32 summation order, or to bf16 operand
 * rounding where the tensor cores run. Attention with a head size above {@link #MAX_HEAD_DIM} has no kernel and
 * runs on the CPU kernels (its operands cross to the host and back, the one exception to "no crossing").
 *
 * <p>Nothing here falls back to the CPU by size: the work of a resident pass stays on the device. Calls are
 * serialized on the {@link CudaKernels} object that owns this backend (the same lock as its host-array calls:
 * one device, one set of work buffers). Running out of device memory first evicts the weight cache of the
 * host-array path ({@link Device#alloc}), then throws {@link CudaException} whose one-line message names the call
 * and CUDA_ERROR_OUT_OF_MEMORY (the cli's Failures reports it so).
 */
final class CudaBackend implements Backend {
    /** Head sizes m2q_attention holds in registers (8 values per lane). */
    static final int MAX_HEAD_DIM = 256;

    /** Rows per partial maximum of absMaxColumns' first pass (CudaKernels' value). */
    private static final int ABSMAX_ROWS = 64;

    private final Object lock;
    private final Device dev;
    private final DeviceMatmul matmuls;
    private final Kernels cpu;

    CudaBackend(Object lock, Device dev, DeviceMatmul matmuls, Kernels cpu) {
        this.lock = Objects.requireNonNull(lock);
        this.dev = Objects.requireNonNull(dev);
        this.matmuls = Objects.requireNonNull(matmuls);
        this.cpu = Objects.requireNonNull(cpu);
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public Buf alloc(long length) {
        require(length >= 0, "alloc: length " + length + " < 0");
        synchronized (lock) {
            DeviceBuffer b = dev.alloc(4 * length);
            try {
                dev.ctx.zero(b);
            } catch (RuntimeException e) {
                b.close();
                throw e;
            }
            return new CudaBuf(b, length);
        }
    }

    @Override
    public Buf wrap(float[] host) {
        synchronized (lock) {
            return new CudaBuf(dev.upload(host, 0, host.length), host.length);
        }
    }

    @Override
    public void write(float[] src, int off, Buf dst, long dstOff, int len) {
        checkRange(dst, dstOff, len, "write");
        synchronized (lock) {
            dev.ctx.uploadInto(CudaBuf.of(dst), 4 * dstOff, src, off, len);
        }
    }

    @Override
    public void read(Buf src, long srcOff, float[] dst, int dstOff, int len) {
        checkRange(src, srcOff, len, "read");
        synchronized (lock) {
            dev.ctx.download(CudaBuf.of(src), 4 * srcOff, dst, dstOff, len);
        }
    }

    @Override
    public float[] take(Buf b) {
        DeviceBuffer d = CudaBuf.of(b);
        float[] host = new float[Math.toIntExact(b.length())];
        synchronized (lock) {
            dev.ctx.download(d, 0, host, 0, host.length);
        }
        b.close();
        return host;
    }

    @Override
    public void inspect(Buf b, Consumer<float[]> f) {
        f.accept(download(b));
    }

    @Override
    public void update(Buf b, Consumer<float[]> f) {
        float[] host = download(b);
        f.accept(host);
        synchronized (lock) {
            dev.ctx.uploadInto(CudaBuf.of(b), 0, host, 0, host.length);
        }
    }

    private float[] download(Buf b) {
        DeviceBuffer d = CudaBuf.of(b);
        float[] host = new float[Math.toIntExact(b.length())];
        synchronized (lock) {
            dev.ctx.download(d, 0, host, 0, host.length);
        }
        return host;
    }

    @Override
    public Weight weight(Matrix m) {
        synchronized (lock) {
            return new CudaWeight(matmuls.upload(m), m.rows(), m.cols());
        }
    }

    @Override
    public Weight weight(Buf data, int rows, int cols) {
        require(rows >= 0 && cols >= 0, "weight: rows " + rows + " and cols " + cols + " must be >= 0");
        require(
                data.length() >= (long) rows * cols,
                "weight: the buffer has " + data.length() + " values, [" + rows + ", " + cols + "] needed");
        return new CudaWeight(new DeviceWeights.Dense(CudaBuf.of(data), false), rows, cols);
    }

    @Override
    public void copy(Buf src, long srcOff, Buf dst, long dstOff, long n) {
        checkRange(src, srcOff, n, "copy (source)");
        checkRange(dst, dstOff, n, "copy (destination)");
        synchronized (lock) {
            dev.ctx.copy(CudaBuf.of(dst), 4 * dstOff, CudaBuf.of(src), 4 * srcOff, 4 * n);
        }
    }

    @Override
    public void add(Buf a, Buf b, Buf out, long n) {
        checkRange(a, 0, n, "add (a)");
        checkRange(b, 0, n, "add (b)");
        checkRange(out, 0, n, "add (out)");
        if (n == 0) {
            return;
        }
        synchronized (lock) {
            dev.kernel("m2q_add_f32")
                    .launch(
                            Device.blocks(n, 256),
                            1,
                            1,
                            256,
                            1,
                            1,
                            0,
                            n,
                            CudaBuf.of(a),
                            CudaBuf.of(b),
                            CudaBuf.of(out));
        }
    }

    @Override
    public void scale(Buf x, long n, float f) {
        checkRange(x, 0, n, "scale");
        if (n == 0) {
            return;
        }
        synchronized (lock) {
            dev.kernel("m2q_scale_f32").launch(Device.blocks(n, 256), 1, 1, 256, 1, 1, 0, n, CudaBuf.of(x), f);
        }
    }

    @Override
    public void matmul(Buf x, int rows, Weight w, Buf bias, Buf y) {
        CudaWeight cw = CudaWeight.of(w);
        int n = cw.rows();
        int k = cw.cols();
        require(rows >= 0, "matmul: rows " + rows + " < 0");
        checkRange(x, 0, (long) rows * k, "matmul (x)");
        checkRange(y, 0, (long) rows * n, "matmul (y)");
        if (bias != null) {
            checkRange(bias, 0, n, "matmul (bias)");
        }
        if (rows == 0 || n == 0) {
            return;
        }
        synchronized (lock) {
            matmuls.onDevice(
                    CudaBuf.of(x), rows, n, k, cw.weights(), bias == null ? null : CudaBuf.of(bias), CudaBuf.of(y));
        }
    }

    @Override
    public void rmsNorm(Buf x, int rows, int dim, Buf weight, float eps, Buf out) {
        require(rows >= 0 && dim > 0, "rmsNorm: rows " + rows + " must be >= 0 and dim " + dim + " > 0");
        checkRange(x, 0, (long) rows * dim, "rmsNorm (x)");
        checkRange(out, 0, (long) rows * dim, "rmsNorm (out)");
        checkRange(weight, 0, dim, "rmsNorm (weight)");
        if (rows == 0) {
            return;
        }
        synchronized (lock) {
            dev.kernel("m2q_rmsnorm")
                    .launch(
                            rows,
                            1,
                            1,
                            256,
                            1,
                            1,
                            0,
                            rows,
                            dim,
                            CudaBuf.of(x),
                            CudaBuf.of(weight),
                            eps,
                            CudaBuf.of(out));
        }
    }

    @Override
    public void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen) {
        require(
                rows >= 0 && heads > 0 && headDim > 0 && headDim % 2 == 0,
                "rope: rows " + rows + ", heads " + heads + ", headDim " + headDim + " (even) out of range");
        require(startPos >= 0 && seqLen > 0, "rope: startPos " + startPos + " >= 0 and seqLen " + seqLen + " > 0");
        require(
                (long) startPos + seqLen - 1 <= Integer.MAX_VALUE,
                "rope: positions up to " + ((long) startPos + seqLen - 1) + " exceed an int");
        checkRange(x, 0, (long) rows * heads * headDim, "rope (x)");
        checkRange(invFreq, 0, headDim / 2, "rope (invFreq)");
        if (rows == 0) {
            return;
        }
        synchronized (lock) {
            dev.kernel("m2q_rope_span")
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
                            CudaBuf.of(x),
                            CudaBuf.of(invFreq),
                            startPos,
                            seqLen);
        }
    }

    @Override
    public void attention(
            Buf q, Buf k, Buf v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim, Buf out) {
        require(nSeq >= 0 && seqLen >= 0 && startPos >= 0, "attention: nSeq, seqLen and startPos must be >= 0");
        require(
                heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
                "attention: heads " + heads + " must be a positive multiple of kvHeads " + kvHeads);
        require(headDim > 0, "attention: headDim " + headDim + " must be > 0");
        long qLen = (long) nSeq * seqLen * heads * headDim;
        long kvLen = (long) nSeq * (startPos + seqLen) * kvHeads * headDim;
        checkRange(q, 0, qLen, "attention (q)");
        checkRange(out, 0, qLen, "attention (out)");
        checkRange(k, 0, kvLen, "attention (k)");
        checkRange(v, 0, kvLen, "attention (v)");
        if (qLen == 0) {
            return;
        }
        synchronized (lock) {
            if (headDim > MAX_HEAD_DIM) {
                float[] qh = new float[Math.toIntExact(qLen)];
                float[] kh = new float[Math.toIntExact(kvLen)];
                float[] vh = new float[kh.length];
                float[] oh = new float[qh.length];
                dev.ctx.download(CudaBuf.of(q), 0, qh, 0, qh.length);
                dev.ctx.download(CudaBuf.of(k), 0, kh, 0, kh.length);
                dev.ctx.download(CudaBuf.of(v), 0, vh, 0, vh.length);
                cpu.attention(qh, kh, vh, nSeq, seqLen, startPos, heads, kvHeads, headDim, oh);
                dev.ctx.uploadInto(CudaBuf.of(out), 0, oh, 0, oh.length);
                return;
            }
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
                            CudaBuf.of(q),
                            CudaBuf.of(k),
                            CudaBuf.of(v),
                            CudaBuf.of(out));
        }
    }

    /** m2q_rope (CudaKernels' rotation) with the layout's positions, uploaded for the launch. */
    @Override
    public void ropePacked(Buf x, int heads, int headDim, Buf invFreq, PackedRows layout) {
        int rows = layout.rows();
        require(
                heads > 0 && headDim > 0 && headDim % 2 == 0,
                "ropePacked: heads " + heads + ", headDim " + headDim + " (even) out of range");
        checkRange(x, 0, (long) rows * heads * headDim, "ropePacked (x)");
        checkRange(invFreq, 0, headDim / 2, "ropePacked (invFreq)");
        if (rows == 0) {
            return;
        }
        synchronized (lock) {
            try (DeviceBuffer positions = dev.upload(layout.positions(), 0, rows)) {
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
                                CudaBuf.of(x),
                                CudaBuf.of(invFreq),
                                positions);
            }
        }
    }

    /**
     * m2q_attention_packed, the layout's spans uploaded for the launch (12 bytes a row); above {@link #MAX_HEAD_DIM}
     * the Java twin on the host, as {@link #attention}.
     */
    @Override
    public void attentionPacked(Buf q, Buf k, Buf v, PackedRows layout, int heads, int kvHeads, int headDim, Buf out) {
        require(
                heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
                "attentionPacked: heads " + heads + " must be a positive multiple of kvHeads " + kvHeads);
        require(headDim > 0, "attentionPacked: headDim " + headDim + " must be > 0");
        int rows = layout.rows();
        long qLen = (long) rows * heads * headDim;
        long kvLen = (long) rows * kvHeads * headDim;
        checkRange(q, 0, qLen, "attentionPacked (q)");
        checkRange(out, 0, qLen, "attentionPacked (out)");
        checkRange(k, 0, kvLen, "attentionPacked (k)");
        checkRange(v, 0, kvLen, "attentionPacked (v)");
        if (qLen == 0) {
            return;
        }
        synchronized (lock) {
            if (headDim > MAX_HEAD_DIM) {
                Backend host = cpu.backend();
                float[] oh = new float[Math.toIntExact(qLen)];
                host.attentionPacked(
                        host.wrap(download(q)),
                        host.wrap(download(k)),
                        host.wrap(download(v)),
                        layout,
                        heads,
                        kvHeads,
                        headDim,
                        host.wrap(oh));
                dev.ctx.uploadInto(CudaBuf.of(out), 0, oh, 0, oh.length);
                return;
            }
            int[] spans = layout.spans();
            try (DeviceBuffer sb = dev.upload(spans, 0, spans.length)) {
                dev.kernel("m2q_attention_packed")
                        .launch(
                                Device.blocks((long) rows * heads, 1),
                                1,
                                1,
                                128,
                                1,
                                1,
                                0,
                                rows,
                                heads,
                                kvHeads,
                                headDim,
                                sb,
                                CudaBuf.of(q),
                                CudaBuf.of(k),
                                CudaBuf.of(v),
                                CudaBuf.of(out));
            }
        }
    }

    @Override
    public void swiglu(Buf gate, Buf up, long n) {
        checkRange(gate, 0, n, "swiglu (gate)");
        checkRange(up, 0, n, "swiglu (up)");
        if (n == 0) {
            return;
        }
        synchronized (lock) {
            dev.kernel("m2q_swiglu")
                    .launch(Device.blocks(n, 256), 1, 1, 256, 1, 1, 0, n, CudaBuf.of(gate), CudaBuf.of(up));
        }
    }

    /**
     * m2q_syrk_upper_add_f32: for i ≤ j, c[i·k + j] = c[i·k + j] + s with s the FMA chain over the rows from 0f
     * in order, the Java twins' arithmetic (also for 0 rows: c + 0f, which turns −0 into +0 as the twins do).
     */
    @Override
    public void syrkUpper(Buf x, int rows, int k, Buf c) {
        require(rows >= 0 && k >= 0, "syrkUpper: rows " + rows + " and k " + k + " must be >= 0");
        require((long) k * k <= Integer.MAX_VALUE, "syrkUpper: k " + k + " too large for the kernel's int indexing");
        checkRange(x, 0, (long) rows * k, "syrkUpper (x)");
        checkRange(c, 0, (long) k * k, "syrkUpper (c)");
        if (k == 0) {
            return;
        }
        synchronized (lock) {
            int t = Device.blocks(k, 128);
            dev.kernel("m2q_syrk_upper_add_f32").launch(t, t, 1, 256, 1, 1, 0, rows, k, CudaBuf.of(x), CudaBuf.of(c));
        }
    }

    @Override
    public void absMaxColumns(Buf x, int rows, int cols, Buf out) {
        require(rows >= 0 && cols >= 0, "absMaxColumns: rows " + rows + " and cols " + cols + " must be >= 0");
        checkRange(x, 0, (long) rows * cols, "absMaxColumns (x)");
        checkRange(out, 0, cols, "absMaxColumns (out)");
        if (rows == 0 || cols == 0) {
            return;
        }
        int perSplit = Math.max(ABSMAX_ROWS, (rows + 65534) / 65535);
        int splits = (rows + perSplit - 1) / perSplit;
        synchronized (lock) {
            try (DeviceBuffer partial = dev.alloc(4L * splits * cols)) {
                dev.kernel("m2q_absmax_partial")
                        .launch(
                                Device.blocks(cols, 256),
                                splits,
                                1,
                                256,
                                1,
                                1,
                                0,
                                rows,
                                cols,
                                perSplit,
                                CudaBuf.of(x),
                                partial);
                dev.kernel("m2q_absmax_combine")
                        .launch(Device.blocks(cols, 256), 1, 1, 256, 1, 1, 0, cols, splits, partial, CudaBuf.of(out));
            }
        }
    }

    /** cuMemGetInfo's free bytes. */
    @Override
    public long freeBytes() {
        synchronized (lock) {
            return dev.ctx.freeMemory();
        }
    }

    /** [off, off + n) within b, which must belong to a CUDA backend. */
    private static void checkRange(Buf b, long off, long n, String what) {
        CudaBuf.of(b);
        if (off < 0 || n < 0 || off + n > b.length()) {
            throw new IllegalArgumentException(
                    what + ": [" + off + ", " + (off + n) + ") is outside a buffer of " + b.length() + " values");
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
