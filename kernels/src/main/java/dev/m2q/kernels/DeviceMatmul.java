package dev.m2q.kernels;

import dev.m2q.core.kernels.Matrix;

/**
 * y = x·Wᵀ (+ bias) on the device ({@link dev.m2q.core.kernels.Kernels#matmul}), by weight type and row count:
 *
 * <ul>
 *   <li>bf16 / fp32 W, 1..8 rows: m2q_gemv_* (a warp per output column, 16-byte weight loads);
 *   <li>bf16 W, ≥ 16 rows, tensor cores on: m2q_matmul_bf16w_tc (x rounded to bf16, fp32 accumulators);
 *   <li>otherwise: m2q_matmul_{bf16w,f32w}, the fp32 SIMT tiles;
 *   <li>W4, 1..16 rows: m2q_w4_matmul_r* from the packed words, bit for bit the Java twins;
 *   <li>W4, more rows: dequantized per call (bf16 with tensor cores, else fp32, which is exact), then as above.
 * </ul>
 *
 * When cuBLAS is loaded ({@link Vendor}), the tiled products (fp32 W from 9 rows, bf16 W with tensor cores from
 * 16) run in it instead ({@link VendorBlas#linear}), with the same operand precisions.
 */
final class DeviceMatmul {
    /** Rows per launch of the tiled products: gridDim.y stays within 65535 blocks of 128 rows. */
    private static final int MAX_TILE_ROWS = 65535 * 128;

    private final Device dev;
    private final boolean tensorCores;
    /** Work buffers of the W4 path for ≤ 16 rows (group sums, the act-order gathered x): small, grown, reused. */
    private DeviceBuffer sums;

    private DeviceBuffer gathered;

    DeviceMatmul(Device dev, boolean tensorCores) {
        this.dev = dev;
        this.tensorCores = tensorCores;
    }

    void run(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        DeviceWeights dw = dev.weights.acquire(w, this::upload);
        try (DeviceBuffer xb = dev.upload(x, 0, rows * k);
                DeviceBuffer yb = dev.alloc(4L * rows * n);
                DeviceBuffer bb = bias == null ? null : dev.upload(bias, 0, n)) {
            onDevice(xb, rows, n, k, dw, bb, yb);
            dev.ctx.download(yb, 0, y, 0, rows * n);
        } finally {
            dev.weights.release();
        }
    }

    /** y [rows, n] = x [rows, k] · Wᵀ (+ bias [n] unless null), all on the device. */
    void onDevice(DeviceBuffer xb, int rows, int n, int k, DeviceWeights w, DeviceBuffer bias, DeviceBuffer yb) {
        switch (w) {
            case DeviceWeights.Dense d -> dense(xb, rows, n, k, d.w(), d.bf16(), bias, yb);
            case DeviceWeights.Packed p -> packed(xb, rows, n, k, p, bias, yb);
        }
    }

    /** The device form of a weight matrix, uploaded once (see {@link WeightCache}). */
    DeviceWeights upload(Matrix m) {
        return switch (m) {
            case Matrix.Bf16 b -> new DeviceWeights.Dense(dev.upload(b.data()), true);
            case Matrix.F32 f -> new DeviceWeights.Dense(dev.upload(f.data(), 0, f.data().length), false);
            case Matrix.W4 q -> packedUpload(q);
        };
    }

    private DeviceWeights.Packed packedUpload(Matrix.W4 q) {
        W4Layout layout = W4Layout.of(q);
        int n = q.rows();
        int k = q.cols();
        DeviceBuffer qweight = null;
        DeviceBuffer positions = null;
        DeviceBuffer scales = null;
        DeviceBuffer gIdx = null;
        DeviceBuffer members = null;
        DeviceBuffer start = null;
        try {
            qweight = dev.upload(q.qweight());
            scales = dev.upload(q.scales(), 0, q.scales().length);
            gIdx = dev.upload(q.gIdx(), 0, k);
            members = dev.upload(layout.members(), 0, k);
            start = dev.upload(layout.start(), 0, layout.start().length);
            if (layout.contiguous()) {
                positions = qweight;
            } else {
                positions = dev.alloc(qweight.bytes());
                dev.kernel("m2q_w4_repack")
                        .launch(
                                Device.blocks((long) k / 8 * n, 256),
                                1,
                                1,
                                256,
                                1,
                                1,
                                0,
                                n,
                                k,
                                qweight,
                                members,
                                positions);
            }
            return new DeviceWeights.Packed(
                    qweight, positions, scales, gIdx, members, start, layout.groups(), layout.contiguous());
        } catch (RuntimeException e) {
            for (DeviceBuffer b : new DeviceBuffer[] {qweight, positions, scales, gIdx, members, start}) {
                if (b != null) {
                    b.close();
                }
            }
            throw e;
        }
    }

    /** y [rows, n] = x [rows, k] · W [n, k]ᵀ (+ bias) for a dense W already on the device. */
    private void dense(
            DeviceBuffer xb, int rows, int n, int k, DeviceBuffer w, boolean bf16, DeviceBuffer bb, DeviceBuffer yb) {
        int hasBias = bb == null ? 0 : 1;
        DeviceBuffer bias = bb == null ? yb : bb; // not read without a bias
        String type = bf16 ? "bf16w" : "f32w";
        if (rows <= 8) {
            int r = rows == 1 ? 1 : rows == 2 ? 2 : rows <= 4 ? 4 : 8;
            dev.kernel("m2q_gemv_" + type + "_r" + r)
                    .launch(Device.blocks(n, 8), 1, 1, 256, 1, 1, 0, rows, n, k, xb, w, bias, hasBias, yb);
            return;
        }
        boolean tc = bf16 && tensorCores && rows >= 16;
        if (dev.vendor.blas().isPresent() && (tc || !bf16)) {
            dev.vendor.blas().get().linear(dev, xb, rows, n, k, w, bf16, bb, yb);
            return;
        }
        String name = tc ? "m2q_matmul_bf16w_tc" : "m2q_matmul_" + type;
        Kernel kernel = dev.kernel(name);
        for (int r0 = 0; r0 < rows; r0 += MAX_TILE_ROWS) {
            int r = Math.min(MAX_TILE_ROWS, rows - r0);
            kernel.launch(
                    Device.blocks(n, 128),
                    Device.blocks(r, 128),
                    1,
                    256,
                    1,
                    1,
                    0,
                    r,
                    n,
                    k,
                    xb.ptr().withByteOffset(4L * r0 * k),
                    w,
                    bias,
                    hasBias,
                    yb.ptr().withByteOffset(4L * r0 * n));
        }
    }

    private void packed(
            DeviceBuffer xb, int rows, int n, int k, DeviceWeights.Packed p, DeviceBuffer bb, DeviceBuffer yb) {
        if (rows > 16) {
            boolean bf16 = tensorCores;
            try (DeviceBuffer wd = dev.alloc((bf16 ? 2L : 4L) * n * k)) {
                dev.kernel(bf16 ? "m2q_w4_dequant_bf16" : "m2q_w4_dequant_f32")
                        .launch(
                                Device.blocks((long) k / 8 * n, 256),
                                1,
                                1,
                                256,
                                1,
                                1,
                                0,
                                n,
                                k,
                                p.qweight(),
                                p.scales(),
                                p.gIdx(),
                                wd);
                dense(xb, rows, n, k, wd, bf16, bb, yb);
            }
            return;
        }
        int groups = p.groups();
        sums = grown(sums, 4L * rows * groups);
        DeviceBuffer xp = xb;
        if (!p.contiguous()) {
            gathered = grown(gathered, 4L * rows * k);
            dev.kernel("m2q_w4_gather")
                    .launch(
                            Device.blocks((long) rows * k, 256),
                            1,
                            1,
                            256,
                            1,
                            1,
                            0,
                            rows,
                            k,
                            xb,
                            p.members(),
                            gathered);
            xp = gathered;
        }
        dev.kernel("m2q_w4_group_sums")
                .launch(
                        Device.blocks((long) rows * groups, 256),
                        1,
                        1,
                        256,
                        1,
                        1,
                        0,
                        rows,
                        k,
                        groups,
                        xb,
                        p.members(),
                        p.start(),
                        sums);
        int tmax = rows == 1 ? 1 : rows == 2 ? 2 : rows <= 4 ? 4 : rows <= 8 ? 8 : 16;
        int rounds = (groups + 31) / 32;
        int lanes = (groups + rounds - 1) / rounds; // groups folded per round, <= 32
        int shared = (lanes + 1) * tmax * 32 * 4;
        Kernel kernel = dev.kernel("m2q_w4_matmul_r" + tmax);
        dev.allowShared(kernel, shared);
        kernel.launch(
                Device.blocks(n, 32),
                1,
                1,
                8 * lanes,
                1,
                1,
                shared,
                rows,
                n,
                k,
                groups,
                xp,
                p.positions(),
                p.scales(),
                p.start(),
                sums,
                bb == null ? yb : bb,
                bb == null ? 0 : 1,
                yb);
    }

    /** b when it holds {@code bytes}, else a new buffer of that size (b freed). */
    private DeviceBuffer grown(DeviceBuffer b, long bytes) {
        if (b != null && b.bytes() >= bytes) {
            return b;
        }
        if (b != null) {
            b.close();
        }
        return dev.alloc(bytes);
    }
}
