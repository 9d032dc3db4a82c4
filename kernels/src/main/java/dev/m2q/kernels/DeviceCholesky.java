package dev.m2q.kernels;

/**
 * {@link dev.m2q.gptq.GptqKernels#choleskyInverse} on the device (cholesky.cu): A + shift·I = L·Lᵀ by blocks
 * of 64 columns (factor the diagonal block, solve the panel below it, update the trailing lower triangle), then
 * L⁻¹ by block rows. In fp32, or in fp64 with one rounding to fp32 at the end.
 *
 * <p>The host array is written only on success, so a failure leaves it (and diag) as it was, as the SPI asks.
 * Device memory: k² fp32 for the input, which becomes the output, plus k² of the working type for L (and another
 * k² fp64 for L⁻¹ in fp64): 6 GiB in fp32 and 15 GiB in fp64 at k = 27648.
 */
final class DeviceCholesky {
    /** Columns per block: the kernels' NB. */
    static final int NB = 64;

    private DeviceCholesky() {}

    /**
     * The SPI's choleskyInverse on host arrays: a and diag uploaded, {@link #onDevice}, and L⁻¹ downloaded into a
     * on success (a failure leaves a as it was).
     */
    static boolean run(Device dev, float[] a, float[] diag, float shift, int k, boolean fp64) {
        int kk = k * k;
        try (DeviceBuffer in = dev.upload(a, 0, kk);
                DeviceBuffer d = dev.upload(diag, 0, k)) {
            if (!onDevice(dev, in, d, shift, k, fp64)) {
                return false;
            }
            dev.ctx.download(in, 0, a, 0, kk);
            return true;
        }
    }

    /**
     * The SPI's choleskyInverse on device buffers: in [k, k] fp32 holds A's strict upper triangle (its lower
     * triangle is scratch) and d [k] A's diagonal. On success in holds L⁻¹ in its lower triangle and zeros above;
     * on failure in and d are as they were, so the caller can retry with a larger shift. cuSOLVER's potrf and
     * trtri when loaded ({@link VendorSolver}), else m2q's blocked kernels.
     */
    static boolean onDevice(Device dev, DeviceBuffer in, DeviceBuffer d, float shift, int k, boolean fp64) {
        if (dev.vendor.solver().isPresent()) {
            return dev.vendor
                    .solver()
                    .get()
                    .choleskyInverse(dev, dev.vendor.blas().orElseThrow(), in, d, shift, k, fp64);
        }
        try (DeviceBuffer flag = dev.upload(new int[1], 0, 1);
                DeviceBuffer m = dev.alloc((fp64 ? 8L : 4L) * k * k)) {
            if (!factor(dev, in, d, shift, flag, m, k, fp64)) {
                return false;
            }
            invert(dev, in, m, k, fp64);
            return true;
        }
    }

    /**
     * L of A + shift·I into m [k, k] (working type), A from the strict upper triangle of in [k, k] fp32 and from
     * d [k]; flag [1] must be 0 before. False when a pivot was not positive or not finite.
     */
    static boolean factor(
            Device dev,
            DeviceBuffer in,
            DeviceBuffer d,
            float shift,
            DeviceBuffer flag,
            DeviceBuffer m,
            int k,
            boolean fp64) {
        String suffix = fp64 ? "_f64" : "_f32";
        int tile = fp64 ? 64 : 128; // the product kernels' tile side
        init(dev, in, d, shift, m, k, fp64);
        Kernel diagonal = dev.kernel("m2q_chol_diag" + suffix);
        Kernel panel = dev.kernel("m2q_chol_panel" + suffix);
        Kernel trailing = dev.kernel("m2q_chol_trailing" + suffix);
        int block = NB * (NB + 1) * (fp64 ? 8 : 4);
        dev.allowShared(diagonal, block);
        dev.allowShared(panel, 2 * block);
        for (int j0 = 0; j0 < k; j0 += NB) {
            diagonal.launch(1, 1, 1, 256, 1, 1, block, k, j0, m, flag);
            int j1 = j0 + NB;
            if (j1 < k) {
                panel.launch(Device.blocks(k - j1, NB), 1, 1, NB, 1, 1, 2 * block, k, j0, m, flag);
                trailing.launch(
                        Device.blocks(k - j1, tile), Device.blocks(k - j1, tile), 1, 256, 1, 1, 0, k, j0, m, flag);
            }
        }
        int[] failed = new int[1];
        dev.ctx.download(flag, 0, failed, 0, 1);
        return failed[0] == 0;
    }

    /**
     * m [k, k] (working type) = A + shift·I on and below the diagonal, zeros above: A's strict lower part from the
     * strict upper triangle of in [k, k] fp32, its diagonal from d [k].
     */
    static void init(Device dev, DeviceBuffer in, DeviceBuffer d, float shift, DeviceBuffer m, int k, boolean fp64) {
        dev.kernel("m2q_chol_init" + (fp64 ? "_f64" : "_f32"))
                .launch(Device.blocks(k, 32), Device.blocks(k, 32), 1, 32, 8, 1, 0, k, in, d, shift, m);
    }

    /**
     * out [k, k] fp32 = L⁻¹ (strict upper triangle 0) from L in m; out's previous contents (A's copy) are
     * overwritten. fp64 works in a k² fp64 buffer of its own and rounds to fp32 once.
     */
    static void invert(Device dev, DeviceBuffer out, DeviceBuffer m, int k, boolean fp64) {
        if (fp64) {
            long kk = (long) k * k;
            try (DeviceBuffer x = dev.alloc(8L * kk)) {
                inverse(dev, x, m, k, true);
                dev.kernel("m2q_convert_f64_f32").launch(Device.blocks(kk, 256), 1, 1, 256, 1, 1, 0, kk, x, out);
            }
        } else {
            inverse(dev, out, m, k, false);
        }
    }

    /** x [k, k] of the working type = L⁻¹: zeroed, the diagonal blocks inverted, then the block rows in order. */
    private static void inverse(Device dev, DeviceBuffer x, DeviceBuffer m, int k, boolean fp64) {
        String suffix = fp64 ? "_f64" : "_f32";
        int size = fp64 ? 8 : 4;
        int tile = fp64 ? 64 : 128;
        dev.ctx.zero(x);
        Kernel diagonal = dev.kernel("m2q_trinv_diag" + suffix);
        Kernel rowPanel = dev.kernel("m2q_trinv_rowpanel" + suffix);
        Kernel update = dev.kernel("m2q_trinv_update" + suffix);
        int two = 2 * NB * (NB + 1) * size;
        int strip = (NB * (NB + 1) + NB * 33) * size;
        dev.allowShared(diagonal, two);
        dev.allowShared(rowPanel, strip);
        diagonal.launch(Device.blocks(k, NB), 1, 1, NB, 1, 1, two, k, m, x);
        for (int p0 = 0; p0 < k; p0 += NB) {
            if (p0 > 0) {
                rowPanel.launch(Device.blocks(p0, 32), 1, 1, 256, 1, 1, strip, k, p0, x);
            }
            int p1 = p0 + NB;
            if (p1 < k) {
                update.launch(Device.blocks(p1, tile), Device.blocks(k - p1, tile), 1, 256, 1, 1, 0, k, p0, m, x);
            }
        }
    }
}
