package dev.m2q.kernels;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.IntConsumer;

/**
 * Times the CUDA kernels at Qwen2.5-32B's shapes (hidden 5120, MLP 27648, q 5120, kv 1024) against the device's
 * measured ceilings, and projects GPTQ's time per 32B layer from them.
 *
 * <p>Ceilings first: a 1 GiB device-to-device copy (bytes read plus written), a large fp32 product on the SIMT
 * units (m2q_gemm_acc_f32, 8192³) and a large bf16 product on the tensor cores (m2q_gemm_bf16_tc, 8192³), and
 * the same two products through cuBLAS when it is loaded (the faster of each pair is the ceiling used). These
 * rates are lower bounds of what the chip can do, not datasheet peaks.
 * Host↔device copies are timed too, since the SPI moves host arrays.
 *
 * <p>Each kernel: warm-up runs, then the median of {@code repeats} runs timed with device events around the
 * work alone (inputs already on the device; every launch synchronizes, so launch gaps are included). Bandwidth-
 * bound kernels rotate over enough copies of their weights to exceed the L2 cache. For each: ms, achieved GB/s
 * and TFLOP/s from this class's own byte and flop counts (the fewest bytes: each input read once, each output
 * written once; a multiply-add is 2 flops), the floor max(bytes / copy bandwidth, flops / the unit's rate) and
 * the share of the binding ceiling reached.
 */
public final class CudaBench {
    /** Which ceiling bounds a kernel's arithmetic. */
    public enum Unit {
        FP32,
        BF16_TENSOR
    }

    /** What a row reports. */
    public enum Kind {
        CEILING,
        KERNEL,
        PROJECTION
    }

    /**
     * One line of the report.
     *
     * @param ms median device milliseconds of one run (for a projection: milliseconds per layer)
     * @param bytes the fewest bytes the kernel must move through device memory
     * @param flops its floating-point operations
     * @param floorMs max(bytes / copy bandwidth, flops / the unit's measured rate); 0 for ceilings and projections
     * @param percent the achieved share of the binding ceiling (memory or arithmetic, whichever sets the floor)
     */
    public record Row(
            Kind kind, String name, double ms, double bytes, double flops, Unit unit, double floorMs, double percent) {
        public double gbPerSecond() {
            return bytes / ms / 1e6;
        }

        public double tflops() {
            return flops / ms / 1e9;
        }
    }

    /** Warm-up runs before the timed ones. */
    private static final int WARMUP = 3;
    /** Weight copies rotated by the bandwidth-bound kernels add up to at least this (H100/H200 L2: 50/60 MB). */
    private static final long ROTATION_BYTES = 512L << 20;
    /** Calibration tokens per Hessian chunk, and chunks per layer (128 sequences of 2048 tokens). */
    private static final int CHUNK_TOKENS = 2048;

    private static final int CHUNKS = 128;
    private static final int LAYERS = 64;
    private static final int HIDDEN = 5120;
    private static final int MLP = 27648;
    private static final int KV = 1024;
    private static final int GROUP = 128;
    private static final int BLOCK = 128;

    private final CudaContext ctx;
    private final Device dev;
    private final int repeats;
    private final PrintStream out;
    private final List<Row> rows = new ArrayList<>();
    private double copyGBps;
    private double fp32Tflops;
    private double bf16Tflops;
    private double h2dGBps;
    private double d2hGBps;

    private CudaBench(CudaContext ctx, int repeats, PrintStream out) {
        this.ctx = ctx;
        this.dev = new Device(ctx);
        this.repeats = repeats;
        this.out = out;
    }

    /** {@code CudaBench [repeats]}: the report on standard output (20 timed runs per kernel by default). */
    public static void main(String[] args) {
        int repeats = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        run(CudaContext.get(), repeats, System.out);
    }

    /**
     * Measures the ceilings, times every kernel, prints the table and the projection to {@code out}, and returns
     * the rows (ceilings, kernels, projections, in that order).
     *
     * @param repeats timed runs per kernel (the median is reported), at least 1
     */
    public static List<Row> run(CudaContext ctx, int repeats, PrintStream out) {
        if (repeats < 1) {
            throw new IllegalArgumentException("repeats " + repeats + " must be >= 1");
        }
        CudaBench b = new CudaBench(ctx, repeats, out);
        out.println("# m2q CUDA kernels on " + ctx.describe() + ", median of " + repeats + " runs");
        b.ceilings();
        b.matvecs();
        double[] syrk = {b.syrk(HIDDEN), b.syrk(MLP)};
        double[] chol = {b.cholesky(HIDDEN), b.cholesky(MLP)};
        double qo = b.gptq(HIDDEN, HIDDEN, "q_proj, o_proj");
        double kv = b.gptq(HIDDEN, KV, "k_proj, v_proj");
        double gateUp = b.gptq(HIDDEN, MLP, "gate_proj, up_proj");
        double down = b.gptq(MLP, HIDDEN, "down_proj");
        b.print();
        b.project(syrk, chol, qo, kv, gateUp, down);
        return List.copyOf(b.rows);
    }

    private void ceilings() {
        long bytes = 1L << 30;
        try (DeviceBuffer src = dev.alloc(bytes);
                DeviceBuffer dst = dev.alloc(bytes)) {
            fillBits(src, bytes / 4, 1);
            double ms = median(i -> ctx.copy(dst, 0, src, 0, bytes), i -> {});
            copyGBps = 2.0 * bytes / ms / 1e6;
            rows.add(new Row(Kind.CEILING, "device copy 1 GiB (read + write)", ms, 2.0 * bytes, 0, Unit.FP32, 0, 100));
        }
        int s = 8192;
        double flops = 2.0 * s * s * s;
        try (DeviceBuffer a = dev.alloc(4L * s * s);
                DeviceBuffer b = dev.alloc(4L * s * s);
                DeviceBuffer c = dev.alloc(4L * s * s)) {
            fillF32(a, (long) s * s, 2, -1, 1);
            fillF32(b, (long) s * s, 3, -1, 1);
            fillF32(c, (long) s * s, 4, -1, 1);
            Kernel k = dev.kernel("m2q_gemm_acc_f32");
            double ms = median(
                    i -> k.launch(s / 128, s / 128, 1, 256, 1, 1, 0, s, s, s, a, 0, s, 1, b, 0, s, c, 0, s), i -> {});
            fp32Tflops = flops / ms / 1e9;
            rows.add(new Row(
                    Kind.CEILING, "fp32 SIMT product 8192³ (m2q_gemm_acc_f32)", ms, 0, flops, Unit.FP32, 0, 100));
            if (dev.vendor.blas().isPresent()) {
                VendorBlas blas = dev.vendor.blas().get();
                GemmPlan plan = GemmPlan.rowMajor(s, s, s, false, false);
                double vendorMs = median(
                        i -> blas.gemmF32(
                                plan,
                                VendorBlas.address(b.ptr()),
                                VendorBlas.address(a.ptr()),
                                1f,
                                VendorBlas.address(c.ptr())),
                        i -> {});
                fp32Tflops = Math.max(fp32Tflops, flops / vendorMs / 1e9);
                rows.add(new Row(
                        Kind.CEILING, "fp32 product 8192³ (cublasSgemm_v2)", vendorMs, 0, flops, Unit.FP32, 0, 100));
            }
        }
        try (DeviceBuffer a = dev.alloc(2L * s * s);
                DeviceBuffer w = dev.alloc(2L * s * s);
                DeviceBuffer y = dev.alloc(4L * s * s)) {
            fillBf16(a, (long) s * s, 5);
            fillBf16(w, (long) s * s, 6);
            Kernel k = dev.kernel("m2q_gemm_bf16_tc");
            double ms = median(i -> k.launch(s / 128, s / 128, 1, 256, 1, 1, 0, s, s, s, a, w, y), i -> {});
            bf16Tflops = flops / ms / 1e9;
            rows.add(new Row(
                    Kind.CEILING,
                    "bf16 tensor-core product 8192³ (m2q_gemm_bf16_tc)",
                    ms,
                    0,
                    flops,
                    Unit.BF16_TENSOR,
                    0,
                    100));
            if (dev.vendor.blas().isPresent()) {
                VendorBlas blas = dev.vendor.blas().get();
                GemmPlan plan = GemmPlan.linear(s, s, s);
                double vendorMs = median(
                        i -> blas.gemmBf16(
                                plan,
                                VendorBlas.address(w.ptr()),
                                VendorBlas.address(a.ptr()),
                                0f,
                                VendorBlas.address(y.ptr())),
                        i -> {});
                bf16Tflops = Math.max(bf16Tflops, flops / vendorMs / 1e9);
                rows.add(new Row(
                        Kind.CEILING,
                        "bf16 tensor-core product 8192³ (cublasGemmEx)",
                        vendorMs,
                        0,
                        flops,
                        Unit.BF16_TENSOR,
                        0,
                        100));
            }
        }
        float[] host = new float[64 << 20];
        Arrays.fill(host, 1.5f);
        double[] up = new double[5];
        double[] down = new double[5];
        for (int i = 0; i < up.length; i++) {
            long t0 = System.nanoTime();
            try (DeviceBuffer b = dev.upload(host, 0, host.length)) {
                long t1 = System.nanoTime();
                ctx.download(b, 0, host, 0, host.length);
                long t2 = System.nanoTime();
                up[i] = (t1 - t0) / 1e6;
                down[i] = (t2 - t1) / 1e6;
            }
        }
        double moved = 4.0 * host.length;
        h2dGBps = moved / median(up) / 1e6;
        d2hGBps = moved / median(down) / 1e6;
        rows.add(new Row(Kind.CEILING, "host to device 256 MiB (host clock)", median(up), moved, 0, Unit.FP32, 0, 100));
        rows.add(new Row(
                Kind.CEILING, "device to host 256 MiB (host clock)", median(down), moved, 0, Unit.FP32, 0, 100));
    }

    /** W4A16 and BF16 matvecs at batch 1 (and 16 for the MLP's up direction), weights rotated beyond L2. */
    private void matvecs() {
        DeviceMatmul matmul = new DeviceMatmul(dev, true);
        int[][] shapes = {{HIDDEN, HIDDEN, 1}, {KV, HIDDEN, 1}, {MLP, HIDDEN, 1}, {HIDDEN, MLP, 1}, {MLP, HIDDEN, 16}};
        for (int[] s : shapes) {
            int n = s[0];
            int k = s[1];
            int batch = s[2];
            String shape = k + "→" + n + (batch == 1 ? "" : ", batch " + batch);
            double flops = 2.0 * batch * n * k;
            double io = 4.0 * batch * (k + n);
            try (DeviceBuffer x = dev.alloc(4L * batch * k);
                    DeviceBuffer y = dev.alloc(4L * batch * n)) {
                fillF32(x, (long) batch * k, 7, -1, 1);
                double w4Bytes = k / 8.0 * n * 4 + (double) k / GROUP * n * 4 + 4.0 * batch * k / GROUP;
                List<DeviceWeights> w4 = new ArrayList<>();
                try {
                    for (int c = 0; c < copies(w4Bytes); c++) {
                        w4.add(randomW4(n, k, 100 + c));
                    }
                    double ms = median(i -> matmul.onDevice(x, batch, n, k, w4.get(i % w4.size()), null, y), i -> {});
                    add("W4A16 matvec " + shape, ms, w4Bytes + io, flops, Unit.FP32);
                } finally {
                    w4.forEach(DeviceWeights::close);
                }
                double bfBytes = 2.0 * n * k;
                List<DeviceWeights> bf = new ArrayList<>();
                try {
                    for (int c = 0; c < copies(bfBytes); c++) {
                        DeviceBuffer w = dev.alloc(2L * n * k);
                        bf.add(new DeviceWeights.Dense(w, true));
                        fillBf16(w, (long) n * k, 200 + c);
                    }
                    double ms = median(i -> matmul.onDevice(x, batch, n, k, bf.get(i % bf.size()), null, y), i -> {});
                    add("BF16 matvec " + shape, ms, bfBytes + io, flops, batch >= 16 ? Unit.BF16_TENSOR : Unit.FP32);
                } finally {
                    bf.forEach(DeviceWeights::close);
                }
            }
        }
    }

    private int copies(double bytes) {
        return (int) Math.max(1, Math.ceil(ROTATION_BYTES / bytes));
    }

    /** A W4 [n, k] with random codes and scales, g_idx = k / G, on the device. */
    private DeviceWeights.Packed randomW4(int n, int k, long seed) {
        int groups = k / GROUP;
        int[] gIdx = new int[k];
        Arrays.setAll(gIdx, c -> c / GROUP);
        int[] start = new int[groups + 1];
        Arrays.setAll(start, g -> g * GROUP);
        int[] members = new int[k];
        Arrays.setAll(members, c -> c);
        DeviceBuffer q = dev.alloc((long) k / 8 * n * 4);
        fillBits(q, (long) k / 8 * n, seed);
        DeviceBuffer scales = dev.alloc(4L * groups * n);
        fillF32(scales, (long) groups * n, seed + 1, 0.005f, 0.05f);
        return new DeviceWeights.Packed(
                q,
                q,
                scales,
                dev.upload(gIdx, 0, k),
                dev.upload(members, 0, k),
                dev.upload(start, 0, start.length),
                groups,
                true);
    }

    /** One Hessian chunk: c [k, k] += xᵀx over 2048 tokens, upper triangle, c resident. Returns ms. */
    private double syrk(int k) {
        double flops = (double) CHUNK_TOKENS * k * (k + 1);
        double bytes = 4.0 * CHUNK_TOKENS * k + 2 * 4.0 * k * (k + 1) / 2;
        try (DeviceBuffer x = dev.alloc(4L * CHUNK_TOKENS * k);
                DeviceBuffer c = dev.alloc(4L * k * k)) {
            fillF32(x, (long) CHUNK_TOKENS * k, 8, -1, 1);
            ctx.zero(c);
            Kernel kernel = dev.kernel("m2q_syrk_upper_add_f32");
            int t = Device.blocks(k, 128);
            double ms = median(i -> kernel.launch(t, t, 1, 256, 1, 1, 0, CHUNK_TOKENS, k, x, c), i -> {});
            add("syrkUpper 2048 tokens, K " + k, ms, bytes, flops, Unit.FP32);
            return ms;
        }
    }

    /** choleskyInverse fp32 of XᵀX + 1% of its mean diagonal, X [k + 64, k] random. Returns ms. */
    private double cholesky(int k) {
        double flops = 2.0 * k * k * k / 3; // factor k³/3, triangular inverse k³/3
        double bytes = 8.0 * k * k;
        try (DeviceBuffer s = dev.alloc(4L * k * k);
                DeviceBuffer d = dev.alloc(4L * k);
                DeviceBuffer in = dev.alloc(4L * k * k);
                DeviceBuffer m = dev.alloc(4L * k * k);
                DeviceBuffer flag = dev.alloc(4)) {
            int rowsX = k + 64;
            try (DeviceBuffer x = dev.alloc(4L * rowsX * k)) {
                fillF32(x, (long) rowsX * k, 9, -1, 1);
                int t = Device.blocks(k, 128);
                dev.kernel("m2q_syrk_upper_f32").launch(t, t, 1, 256, 1, 1, 0, rowsX, k, x, s);
            }
            dev.kernel("m2q_bench_diagonal").launch(Device.blocks(k, 256), 1, 1, 256, 1, 1, 0, k, s, 0f, d);
            float[] diag = new float[k];
            ctx.download(d, 0, diag, 0, k);
            double mean = 0;
            for (float v : diag) {
                mean += v / k;
            }
            float shift = (float) (0.01 * mean);
            boolean[] ok = {true};
            double ms = median(
                    i -> {
                        ok[0] &= DeviceCholesky.factor(dev, in, d, shift, flag, m, k, false);
                        DeviceCholesky.invert(dev, in, m, k, false);
                    },
                    i -> {
                        ctx.copy(in, 0, s, 0, 4L * k * k);
                        ctx.zero(flag);
                    });
            if (!ok[0]) {
                throw new IllegalStateException("the benchmark's SPD matrix failed to factor at k = " + k);
            }
            add("choleskyInverse fp32, K " + k, ms, bytes, flops, Unit.FP32);
            return ms;
        }
    }

    /**
     * GPTQ's column loop and lazy updates for W [n, k] (W1 = Wᵀ [k, n]) with G = B = 128, dynamic groups, and U
     * a random unit upper-triangular matrix with entries ±0.5/√k above the diagonal (the Cholesky factor of an
     * SPD matrix; the loop's time does not depend on U's values, and these keep W1 finite). Returns ms.
     */
    private double gptq(int k, int n, String linears) {
        double flops = 0;
        for (int i1 = 0; i1 < k; i1 += BLOCK) {
            int i2 = Math.min(k, i1 + BLOCK);
            int b = i2 - i1;
            flops += 2.0 * n * b * (b - 1) / 2 + 2.0 * (k - i2) * n * b;
        }
        double bytes = 4.0 * k * n * 2 + 4.0 * k * (k + 1) / 2 + 4.0 * k / GROUP * n;
        int[] records = new int[4 * n];
        Arrays.fill(records, -1);
        int[] perm = new int[k];
        Arrays.setAll(perm, i -> i);
        try (DeviceBuffer pristine = dev.alloc(4L * k * n);
                DeviceBuffer w1 = dev.alloc(4L * k * n);
                DeviceBuffer u = dev.alloc(4L * k * k);
                DeviceBuffer p = dev.upload(perm, 0, k);
                DeviceBuffer scales = dev.alloc(4L * k / GROUP * n);
                DeviceBuffer codes = dev.alloc(4L * k * n);
                DeviceBuffer negErr = dev.alloc(4L * BLOCK * n);
                DeviceBuffer failures = dev.upload(records, 0, records.length);
                DeviceBuffer any = dev.alloc(4);
                DeviceBuffer errSq = dev.alloc(8L * n)) {
            fillF32(pristine, (long) k * n, 10, -1, 1);
            dev.kernel("m2q_bench_fill_unit_upper")
                    .launch(Device.blocks((long) k * k, 256), 1, 1, 256, 1, 1, 0, k, u, 11L, (float)
                            (0.5 / Math.sqrt(k)));
            ctx.zero(any);
            ctx.zero(errSq);
            double ms = median(
                    i -> DeviceGptq.columns(
                            dev, w1, u, p, scales, codes, negErr, failures, any, errSq, k, n, GROUP, BLOCK, false),
                    i -> ctx.copy(w1, 0, pristine, 0, 4L * k * n));
            int[] failed = new int[1];
            ctx.download(any, 0, failed, 0, 1);
            if (failed[0] != 0) {
                throw new IllegalStateException("the GPTQ benchmark's weights became non-finite at k = " + k);
            }
            add("gptqColumns " + k + "→" + n + " (" + linears + ")", ms, bytes, flops, Unit.FP32);
            return ms;
        }
    }

    private void add(String name, double ms, double bytes, double flops, Unit unit) {
        double peak = unit == Unit.BF16_TENSOR ? bf16Tflops : fp32Tflops;
        double memoryMs = bytes / copyGBps / 1e6;
        double mathMs = flops / peak / 1e9;
        double floor = Math.max(memoryMs, mathMs);
        double percent = memoryMs >= mathMs ? 100 * (bytes / ms / 1e6) / copyGBps : 100 * (flops / ms / 1e9) / peak;
        rows.add(new Row(Kind.KERNEL, name, ms, bytes, flops, unit, floor, percent));
    }

    private void print() {
        out.printf(
                Locale.ROOT,
                "ceilings: copy %.0f GB/s, fp32 SIMT %.1f TFLOP/s, bf16 tensor %.1f TFLOP/s (m2q's own products, or"
                        + " cuBLAS's where faster: lower bounds), host→device %.1f GB/s, device→host %.1f GB/s%n",
                copyGBps,
                fp32Tflops,
                bf16Tflops,
                h2dGBps,
                d2hGBps);
        out.printf(
                Locale.ROOT,
                "%-48s %10s %9s %9s %7s %10s %7s%n",
                "kernel",
                "ms",
                "GB/s",
                "TFLOP/s",
                "% ceil",
                "floor ms",
                "bound");
        for (Row r : rows) {
            if (r.kind() != Kind.KERNEL) {
                continue;
            }
            boolean memory = r.bytes() / copyGBps / 1e6
                    >= r.flops() / (r.unit() == Unit.BF16_TENSOR ? bf16Tflops : fp32Tflops) / 1e9;
            out.printf(
                    Locale.ROOT,
                    "%-48s %10.4f %9.1f %9.2f %6.1f%% %10.4f %7s%n",
                    r.name(),
                    r.ms(),
                    r.gbPerSecond(),
                    r.tflops(),
                    r.percent(),
                    r.floorMs(),
                    memory ? "memory" : r.unit() == Unit.BF16_TENSOR ? "tensor" : "fp32");
        }
    }

    /**
     * GPTQ per 32B layer with 128 × 2048 calibration tokens: the Hessians of the 4 distinct linear inputs (q/k/v
     * share one at K 5120, o_proj's at 5120, gate/up's at 5120, down_proj's at 27648), each 128 chunks; one
     * Cholesky inverse per Hessian; the column loops of the 7 linears. Then the same with the host round trips
     * the SPI's host arrays add (each chunk's x up and S's upper triangle down; H up and L⁻¹ down; W1 and U up,
     * codes down), at the measured host↔device rates. Forward passes, the host's own work and the Java side of
     * GPTQ are not included.
     */
    private void project(double[] syrk, double[] chol, double qo, double kv, double gateUp, double down) {
        double hessians = CHUNKS * (3 * syrk[0] + syrk[1]);
        double factor = 3 * chol[0] + chol[1];
        double columns = 2 * qo + 2 * kv + 2 * gateUp + down;
        double device = hessians + factor + columns;
        double up = 0;
        double downBytes = 0;
        for (int k : new int[] {HIDDEN, HIDDEN, HIDDEN, MLP}) {
            up += CHUNKS * 4.0 * CHUNK_TOKENS * k + 4.0 * k * k;
            downBytes += CHUNKS * 4.0 * k * (k + 1) / 2 + 4.0 * k * k;
        }
        int[][] linears = {
            {HIDDEN, HIDDEN}, {HIDDEN, KV}, {HIDDEN, KV}, {HIDDEN, HIDDEN}, {HIDDEN, MLP}, {HIDDEN, MLP}, {MLP, HIDDEN}
        };
        for (int[] l : linears) {
            up += 4.0 * l[0] * l[1] + 4.0 * l[0] * l[0];
            downBytes += 4.0 * l[0] * l[1];
        }
        double transfers = up / h2dGBps / 1e6 + downBytes / d2hGBps / 1e6;
        rows.add(new Row(Kind.PROJECTION, "GPTQ per 32B layer, device work", device, 0, 0, Unit.FP32, 0, 0));
        rows.add(new Row(
                Kind.PROJECTION,
                "GPTQ per 32B layer, with the SPI's host transfers",
                device + transfers,
                up + downBytes,
                0,
                Unit.FP32,
                0,
                0));
        out.printf(
                Locale.ROOT,
                "projection, GPTQ per 32B layer (128×2048 tokens): Hessians %.2f s + Cholesky %.2f s + column loops %.2f"
                        + " s = %.2f s on the device; × %d layers = %.1f min%n",
                hessians / 1e3,
                factor / 1e3,
                columns / 1e3,
                device / 1e3,
                LAYERS,
                LAYERS * device / 6e4);
        out.printf(
                Locale.ROOT,
                "  with the SPI's host round trips (%.1f GB up, %.1f GB down per layer): %.2f s per layer, %.1f min for"
                        + " %d layers (forward passes and host work not included)%n",
                up / 1e9,
                downBytes / 1e9,
                (device + transfers) / 1e3,
                LAYERS * (device + transfers) / 6e4,
                LAYERS);
    }

    /** Median device ms of {@code run} over the repeats after the warm-up; {@code setup} runs untimed before each. */
    private double median(IntConsumer run, IntConsumer setup) {
        for (int i = 0; i < WARMUP; i++) {
            setup.accept(i);
            run.accept(i);
        }
        double[] ms = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            int it = i;
            setup.accept(it);
            ms[i] = ctx.elapsedMillis(() -> run.accept(it));
        }
        return median(ms);
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private void fillF32(DeviceBuffer b, long count, long seed, float lo, float hi) {
        dev.kernel("m2q_bench_fill_f32").launch(Device.blocks(count, 256), 1, 1, 256, 1, 1, 0, count, b, seed, lo, hi);
    }

    private void fillBf16(DeviceBuffer b, long count, long seed) {
        dev.kernel("m2q_bench_fill_bf16")
                .launch(Device.blocks(count, 256), 1, 1, 256, 1, 1, 0, count, b, seed, -1f, 1f);
    }

    private void fillBits(DeviceBuffer b, long count, long seed) {
        dev.kernel("m2q_bench_fill_bits").launch(Device.blocks(count, 256), 1, 1, 256, 1, 1, 0, count, b, seed);
    }
}
