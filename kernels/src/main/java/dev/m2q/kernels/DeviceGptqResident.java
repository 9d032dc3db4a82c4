package dev.m2q.kernels;

import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.gptq.ActOrder;
import dev.m2q.gptq.DampedCholesky;
import dev.m2q.gptq.Gptq;
import dev.m2q.gptq.GptqKernels;
import dev.m2q.gptq.GptqLoop;
import dev.m2q.gptq.GptqOptions;
import dev.m2q.gptq.GptqResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * {@link GptqKernels#quantize} on the device, step by step as {@link Gptq#quantize} (gptq.cu's resident kernels,
 * {@link DeviceCholesky}, {@link DeviceGptq}):
 *
 * <ol>
 *   <li>H's diagonal is read out (K floats): the dead columns, act-order's permutation ({@link
 *       ActOrder#permutationOfDiagonal}) and the damping's mean are decided on the host from it, as the Java code
 *       decides them from H;
 *   <li>W1 = Wᵀ fp32 [K, N] from the resident W (fp32, bf16, or W4 dequantized to fp32, exact), in act-order with
 *       dead inputs zeroed, in one transposing gather (m2q_gptq_transpose);
 *   <li>static groups: the scales of the original channel groups from W1 (m2q_gptq_static_scales);
 *   <li>JHJ of the permuted H gathered from H (m2q_gptq_jhj, which also finds the first non-finite entry), then
 *       {@link DampedCholesky#damp}'s retries over {@link DeviceCholesky#onDevice} and U = J·L⁻¹·J in place
 *       (m2q_gptq_reverse_upper): the factor never leaves the device;
 *   <li>the column loop ({@link DeviceGptq#onDevice}), which also sums the proxy loss (Σ Err², N doubles down);
 *       the codes and scales are downloaded, g_idx follows from the order;
 *   <li>Ŵ = dequantized codes and D = W − Ŵ (m2q_gptq_dequant); only when {@link GptqOptions#exactLossRows}
 *       asks, the sampled exact loss: D·H on the sample's rows (m2q_gemm_acc_f32 with A's rows strided, the Java
 *       twin's bits) and Σ (D·H)∘D in double (m2q_gptq_loss_rows, m2q_gptq_loss_total): one double crosses.
 * </ol>
 *
 * Crossings: H's diagonal and the results (codes, scales, the losses) down; the order, the gather indices and the
 * shifted diagonal (K values each) up. Agreement with the Java reference: every step but the factorization
 * (another blocking, fp32 summation error, see DeviceCholesky) and the loss's double sum (another order) is
 * the same arithmetic; so g_idx, static scales, the damp used and the fallbacks are exact, and codes agree up to
 * ties that the factor's rounding flips (CudaGptqResidentGpuTest).
 *
 * <p>Device memory beyond W and H: W1 and the codes (4·K·N each), U (4·K²) plus the factorization's working
 * buffer (4·K², or 8·K² and another 8·K² in fp64), freed before Ŵ, D and D·H (4·N·K each) are allocated; W4
 * input adds its fp32 copy (4·N·K) for the whole call. Called under the backend's lock.
 */
final class DeviceGptqResident {
    private DeviceGptqResident() {}

    /** W [n, k] fp32 on the device: the buffer itself for fp32, read through as bits for bf16, W4 dequantized. */
    private record Source(DeviceBuffer w, boolean bf16, DeviceBuffer owned) implements AutoCloseable {
        static Source of(Device dev, CudaWeight cw) {
            int n = cw.rows();
            int k = cw.cols();
            return switch (cw.weights()) {
                case DeviceWeights.Dense d -> new Source(d.w(), d.bf16(), null);
                case DeviceWeights.Packed p -> {
                    DeviceBuffer f = dev.alloc(4L * n * k);
                    try {
                        dev.kernel("m2q_w4_dequant_f32")
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
                                        f);
                    } catch (RuntimeException e) {
                        f.close();
                        throw e;
                    }
                    yield new Source(f, false, f);
                }
            };
        }

        @Override
        public void close() {
            if (owned != null) {
                owned.close();
            }
        }
    }

    /** W [n, k] as fp32 on the host (the small-work path): W1 built by m2q_gptq_transpose, downloaded, transposed. */
    static float[] weightOnHost(Device dev, CudaWeight cw) {
        int n = cw.rows();
        int k = cw.cols();
        float[] wt = new float[k * n];
        try (Source src = Source.of(dev, cw);
                DeviceBuffer cols = dev.upload(identity(k), 0, k);
                DeviceBuffer w1 = dev.alloc(4L * k * n)) {
            transpose(dev, src, cols, w1, n, k);
            dev.ctx.download(w1, 0, wt, 0, k * n);
        }
        float[] w = new float[n * k];
        for (int c = 0; c < k; c++) {
            for (int r = 0; r < n; r++) {
                w[r * k + c] = wt[c * n + r];
            }
        }
        return w;
    }

    /** {@link GptqKernels#quantize} for W [n, k] = cw and H [k, k] = h with the resolved group size g. */
    static GptqKernels.Resident quantize(Device dev, CudaWeight cw, DeviceBuffer h, int g, GptqOptions o) {
        long start = System.nanoTime();
        int n = cw.rows();
        int k = cw.cols();
        int groups = k / g;
        List<String> fallbacks = new ArrayList<>();
        try (Source src = Source.of(dev, cw)) {
            float[] hDiag = diagonal(dev, h, k);
            int[] dead = DampedCholesky.deadColumnsOfDiagonal(hDiag);
            if (dead.length > 0) {
                fallbacks.add(Gptq.deadNote(dead.length));
            }
            int[] perm = o.actOrder() ? ActOrder.permutationOfDiagonal(hDiag) : null;
            boolean staticGroups = o.actOrder() && o.staticGroups();
            int[] order = perm != null ? perm : identity(k);
            int[] cols = new int[k];
            for (int i = 0; i < k; i++) {
                cols[i] = hDiag[order[i]] == 0f ? -1 : order[i];
            }
            int[] codes = new int[k * n];
            float[] scales = new float[groups * n];
            DampedCholesky.Damping damping;
            double errSquares;
            try (DeviceBuffer scalesB = dev.alloc(4L * groups * n);
                    DeviceBuffer codesB = dev.alloc(4L * k * n)) {
                try (DeviceBuffer orderB = dev.upload(order, 0, k);
                        DeviceBuffer w1 = dev.alloc(4L * k * n)) {
                    try (DeviceBuffer colsB = dev.upload(cols, 0, k)) {
                        transpose(dev, src, colsB, w1, n, k);
                    }
                    if (staticGroups) {
                        staticScales(dev, w1, ActOrder.inverse(order), scalesB, n, g, groups);
                    }
                    try (DeviceBuffer u = dev.alloc(4L * k * k)) {
                        damping = factor(dev, h, order, hDiag, u, k, o.damp());
                        if (damping.retries() > 0) {
                            fallbacks.add(Gptq.dampNote(o.damp(), damping.lambda(), damping.retries()));
                        }
                        errSquares = DeviceGptq.onDevice(
                                dev, w1, u, orderB, scalesB, codesB, k, n, g, o.blockSize(), staticGroups);
                    }
                }
                dev.ctx.download(codesB, 0, codes, 0, k * n);
                dev.ctx.download(scalesB, 0, scales, 0, groups * n);
                int[] gIdx = DeviceGptq.groupIndex(order, g, staticGroups);
                QuantizedLinear q = new QuantizedLinear(n, k, g, codes, scales, gIdx);
                Duration time = Duration.ofNanos(System.nanoTime() - start);
                DeviceBuffer what = dev.alloc(4L * n * k);
                try {
                    double sampled =
                            dequantizeAndLoss(dev, src, codesB, scalesB, gIdx, h, what, n, k, o.exactLossRows());
                    GptqResult r = new GptqResult(q, errSquares / n, sampled, damping.lambda(), fallbacks, time);
                    return new GptqKernels.Resident(r, new CudaWeight(new DeviceWeights.Dense(what, false), n, k));
                } catch (RuntimeException e) {
                    what.close();
                    throw e;
                }
            }
        }
    }

    /** H's diagonal [k], downloaded. */
    private static float[] diagonal(Device dev, DeviceBuffer h, int k) {
        float[] d = new float[k];
        try (DeviceBuffer db = dev.alloc(4L * k)) {
            dev.kernel("m2q_gptq_diagonal").launch(Device.blocks(k, 256), 1, 1, 256, 1, 1, 0, k, h, db);
            dev.ctx.download(db, 0, d, 0, k);
        }
        return d;
    }

    /** w1 [k, n] = W1 from src through cols (position → original channel, −1: dead). */
    private static void transpose(Device dev, Source src, DeviceBuffer cols, DeviceBuffer w1, int n, int k) {
        dev.kernel("m2q_gptq_transpose")
                .launch(
                        Device.blocks(n, 32),
                        Device.blocks(k, 32),
                        1,
                        32,
                        8,
                        1,
                        0,
                        n,
                        k,
                        src.w(),
                        src.bf16() ? 1 : 0,
                        cols,
                        w1);
    }

    /**
     * The static groups' scales [groups, n] into scales from W1 (rowOf[ch] = the position of channel ch), or
     * the Java loop's failure for the first group and output whose weights are not finite or whose scale
     * overflows fp16 ({@link GptqLoop#groupScale}).
     */
    private static void staticScales(
            Device dev, DeviceBuffer w1, int[] rowOf, DeviceBuffer scales, int n, int g, int groups) {
        int count = groups * n;
        int[] failed = {count};
        try (DeviceBuffer rowB = dev.upload(rowOf, 0, rowOf.length);
                DeviceBuffer failedB = dev.upload(failed, 0, 1)) {
            dev.kernel("m2q_gptq_static_scales")
                    .launch(Device.blocks(count, 256), 1, 1, 256, 1, 1, 0, n, g, groups, w1, rowB, scales, failedB);
            dev.ctx.download(failedB, 0, failed, 0, 1);
        }
        if (failed[0] < count) {
            int e = failed[0];
            float[] absmax = new float[1];
            dev.ctx.download(scales, 4L * e, absmax, 0, 1);
            GptqLoop.groupScale(absmax[0], e % n, e / n * g, g); // throws the Java loop's failure
            throw new IllegalStateException("m2q_gptq_static_scales flagged group absmax " + absmax[0] + " (group "
                    + e / n + ", output " + e % n + "), which GptqLoop.groupScale accepts");
        }
    }

    /**
     * {@link DampedCholesky#factor} with H on the device: u [k, k] receives JHJ of the permuted H, then (after
     * {@link DampedCholesky#damp}'s retries over {@link DeviceCholesky#onDevice}) U, upper triangular.
     */
    private static DampedCholesky.Damping factor(
            Device dev, DeviceBuffer h, int[] order, float[] hDiag, DeviceBuffer u, int k, double damp) {
        int kk = k * k;
        int[] src = new int[k];
        for (int p = 0; p < k; p++) {
            src[p] = order[k - 1 - p];
        }
        int[] bad = {kk};
        try (DeviceBuffer srcB = dev.upload(src, 0, k);
                DeviceBuffer badB = dev.upload(bad, 0, 1)) {
            dev.kernel("m2q_gptq_jhj").launch(Device.blocks(k, 256), k, 1, 256, 1, 1, 0, k, h, srcB, u, badB);
            dev.ctx.download(badB, 0, bad, 0, 1);
        }
        if (bad[0] < kk) {
            int e = bad[0]; // in the permuted H; JHJ holds it at (k−1−row, k−1−column)
            float[] v = new float[1];
            dev.ctx.download(u, 4L * ((long) (k - 1 - e / k) * k + (k - 1 - e % k)), v, 0, 1);
            throw DampedCholesky.nonFiniteEntry(e, k, v[0]);
        }
        float[] hpDiag = new float[k];
        for (int i = 0; i < k; i++) {
            hpDiag[i] = hDiag[order[i]];
        }
        float[] diag = DampedCholesky.shiftedDiagonal(hpDiag);
        DampedCholesky.Damping damping;
        try (DeviceBuffer d = dev.upload(diag, 0, k)) {
            damping = DampedCholesky.damp(
                    diag, damp, (shift, fp64) -> DeviceCholesky.onDevice(dev, u, d, shift, k, fp64));
        }
        dev.kernel("m2q_gptq_reverse_upper").launch(Device.blocks(k, 256), k, 1, 256, 1, 1, 0, k, u);
        return damping;
    }

    /**
     * Ŵ [n, k] into what and, when {@code exactRows} &gt; 0, Gptq.sampledLoss: tr(D·H·Dᵀ) per row for D = W − Ŵ on
     * the rows 0, s, 2s, … of Gptq.sampleStride: D·H by m2q_gemm_acc_f32 (the Java twin's fp32 FMA chains), the sum
     * of (D·H)∘D in double by row then over the rows (another order than the Java loop's: the two differ by double
     * rounding only). NaN when not asked.
     */
    private static double dequantizeAndLoss(
            Device dev,
            Source src,
            DeviceBuffer codes,
            DeviceBuffer scales,
            int[] gIdx,
            DeviceBuffer h,
            DeviceBuffer what,
            int n,
            int k,
            int exactRows) {
        double[] total = new double[1];
        int stride = Gptq.sampleStride(n, Math.max(1, exactRows));
        int count = (n + stride - 1) / stride;
        try (DeviceBuffer gIdxB = dev.upload(gIdx, 0, k);
                DeviceBuffer d = dev.alloc(4L * n * k)) {
            dev.kernel("m2q_gptq_dequant")
                    .launch(
                            Device.blocks(k, 32),
                            Device.blocks(n, 32),
                            1,
                            32,
                            8,
                            1,
                            0,
                            n,
                            k,
                            codes,
                            scales,
                            gIdxB,
                            src.w(),
                            src.bf16() ? 1 : 0,
                            what,
                            d);
            if (exactRows <= 0) {
                return Double.NaN;
            }
            try (DeviceBuffer y = dev.alloc(4L * count * k);
                    DeviceBuffer rows = dev.alloc(8L * count);
                    DeviceBuffer sum = dev.alloc(8)) {
                lossOfSample(dev, d, h, y, rows, sum, count, stride, k);
                dev.ctx.download(sum, 0, total, 0, 1);
            }
        }
        return total[0] / count;
    }

    /** D·H on the sample's rows of D (stride apart) into y, then Σ (D·H)∘D in double into sum. */
    private static void lossOfSample(
            Device dev,
            DeviceBuffer d,
            DeviceBuffer h,
            DeviceBuffer y,
            DeviceBuffer rows,
            DeviceBuffer sum,
            int count,
            int stride,
            int k) {
        {
            dev.ctx.zero(y);
            // gemmAcc(count, k, k, D, 0, stride·k, 1, H, 0, k, Y, 0, k), as Gptq.proxyLoss on the sample's rows (H
            // symmetric: its rows serve as B)
            dev.kernel("m2q_gemm_acc_f32")
                    .launch(
                            Device.blocks(k, 128),
                            Device.blocks(count, 128),
                            1,
                            256,
                            1,
                            1,
                            0,
                            count,
                            k,
                            k,
                            d,
                            0,
                            stride * k,
                            1,
                            h,
                            0,
                            k,
                            y,
                            0,
                            k);
            dev.kernel("m2q_gptq_loss_rows").launch(count, 1, 1, 256, 1, 1, 0, k, y, d, (long) stride * k, rows);
            dev.kernel("m2q_gptq_loss_total").launch(1, 1, 1, 256, 1, 1, 0, count, rows, sum);
        }
    }

    private static int[] identity(int k) {
        int[] a = new int[k];
        Arrays.setAll(a, i -> i);
        return a;
    }
}
