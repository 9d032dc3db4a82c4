package dev.m2q.kernels;

import dev.m2q.core.quant.Rtn;
import dev.m2q.gptq.GptqCodes;
import java.util.Arrays;

/**
 * {@link dev.m2q.gptq.GptqKernels#columnLoop} on the device (gptq.cu): per block of B positions one launch
 * of m2q_gptq_block (a thread per output column walks the block's positions), then the lazy batch update
 * W1[i2:, :] −= U[i1:i2, i2:]ᵀ·Err1 as one m2q_gemm_acc_f32 (Uᵀ read in place through its strides, the block's
 * −Err1 as B). W1, U, the codes, the scales and Err1 stay on the device for the whole call: one upload of W1
 * and U, one download of the codes (and of the scales when they are computed).
 */
final class DeviceGptq {
    /** Output columns per thread block of m2q_gptq_block. */
    private static final int THREADS = 32;
    /** The block's column slice lives in shared memory when it fits without opting in. */
    private static final int SHARED_LIMIT = 48 * 1024;

    private DeviceGptq() {}

    /**
     * The SPI's column loop on host arrays: W1, U, the order and the static scales uploaded, {@link #onDevice},
     * the codes (and the computed scales) downloaded, g_idx from the order ({@link #groupIndex}).
     */
    static double run(
            Device dev,
            float[] wt,
            int k,
            int n,
            float[] u,
            int groupSize,
            int blockSize,
            int[] perm,
            boolean staticGroups,
            float[] scales,
            int[] codes,
            int[] gIdx) {
        int groups = k / groupSize;
        int[] order = perm;
        if (order == null) {
            order = new int[k];
            Arrays.setAll(order, i -> i);
        }
        try (DeviceBuffer w1 = dev.upload(wt, 0, k * n);
                DeviceBuffer ub = dev.upload(u, 0, k * k);
                DeviceBuffer pb = dev.upload(order, 0, k);
                DeviceBuffer sb = staticGroups ? dev.upload(scales, 0, groups * n) : dev.alloc(4L * groups * n);
                DeviceBuffer cb = dev.alloc(4L * k * n)) {
            double errSquares = onDevice(dev, w1, ub, pb, sb, cb, k, n, groupSize, blockSize, staticGroups);
            dev.ctx.download(cb, 0, codes, 0, k * n);
            if (!staticGroups) {
                dev.ctx.download(sb, 0, scales, 0, groups * n);
            }
            System.arraycopy(groupIndex(order, groupSize, staticGroups), 0, gIdx, 0, k);
            return errSquares;
        }
    }

    /**
     * The column loop on device buffers: w1 [k, n] W1 (modified), u [k, k] U, perm [k] the order (position →
     * original channel), scales [k/G, n] (read for static groups, written otherwise), codes [k, n] int32 by
     * original channel (written). Its work buffers are its own; a failure throws the Java loop's first ({@link
     * #firstFailure}). Returns the loop's Σ Err² (GptqCodes#errSquares): the columns' sums come down (n doubles)
     * and are added in order.
     */
    static double onDevice(
            Device dev,
            DeviceBuffer w1,
            DeviceBuffer u,
            DeviceBuffer perm,
            DeviceBuffer scales,
            DeviceBuffer codes,
            int k,
            int n,
            int groupSize,
            int blockSize,
            boolean staticGroups) {
        int b = Math.min(blockSize, k);
        int[] records = new int[4 * n];
        Arrays.fill(records, -1);
        try (DeviceBuffer negErr = dev.alloc(4L * b * n);
                DeviceBuffer failures = dev.upload(records, 0, records.length);
                DeviceBuffer anyFailure = dev.upload(new int[1], 0, 1);
                DeviceBuffer errSq = dev.alloc(8L * n)) {
            dev.ctx.zero(errSq);
            columns(
                    dev,
                    w1,
                    u,
                    perm,
                    scales,
                    codes,
                    negErr,
                    failures,
                    anyFailure,
                    errSq,
                    k,
                    n,
                    groupSize,
                    b,
                    staticGroups);
            int[] any = new int[1];
            dev.ctx.download(anyFailure, 0, any, 0, 1);
            if (any[0] != 0) {
                dev.ctx.download(failures, 0, records, 0, records.length);
                throw firstFailure(records, n);
            }
            double[] perColumn = new double[n];
            dev.ctx.download(errSq, 0, perColumn, 0, n);
            return GptqCodes.total(perColumn);
        }
    }

    /** g_idx [k] of the loop's order: channel order[i] in group order[i]/G (static groups) or i/G (dynamic). */
    static int[] groupIndex(int[] order, int groupSize, boolean staticGroups) {
        int[] gIdx = new int[order.length];
        for (int i = 0; i < order.length; i++) {
            gIdx[order[i]] = staticGroups ? order[i] / groupSize : i / groupSize;
        }
        return gIdx;
    }

    /**
     * The loop over blocks, on device buffers: w1 [k, n] W1 (modified), u [k, k] U, perm [k], scales [k/G, n]
     * (read for static groups, written otherwise), codes [k, n], negErr [b, n] scratch, failures [n, 4] (all −1
     * before), anyFailure [1] (0 before), errSq [n] doubles (0 before; each column's Σ Err²); b = min(block size, k).
     */
    static void columns(
            Device dev,
            DeviceBuffer w1,
            DeviceBuffer u,
            DeviceBuffer perm,
            DeviceBuffer scales,
            DeviceBuffer codes,
            DeviceBuffer negErr,
            DeviceBuffer failures,
            DeviceBuffer anyFailure,
            DeviceBuffer errSq,
            int k,
            int n,
            int groupSize,
            int b,
            boolean staticGroups) {
        boolean shared = (long) b * THREADS * 4 <= SHARED_LIMIT;
        Kernel block = dev.kernel("m2q_gptq_block");
        Kernel lazy = dev.kernel("m2q_gemm_acc_f32");
        for (int i1 = 0; i1 < k; i1 += b) {
            int i2 = Math.min(k, i1 + b);
            block.launch(
                    Device.blocks(n, THREADS),
                    1,
                    1,
                    THREADS,
                    1,
                    1,
                    shared ? (i2 - i1) * THREADS * 4 : 0,
                    k,
                    n,
                    i1,
                    i2,
                    groupSize,
                    staticGroups ? 1 : 0,
                    shared ? 1 : 0,
                    w1,
                    u,
                    perm,
                    scales,
                    codes,
                    negErr,
                    failures,
                    anyFailure,
                    errSq);
            if (i2 < k) {
                // gemmAcc(k − i2, n, i2 − i1, U, i1·k + i2, 1, k, −Err1, 0, n, W1, i2·n, n)
                lazy.launch(
                        Device.blocks(n, 128),
                        Device.blocks(k - i2, 128),
                        1,
                        256,
                        1,
                        1,
                        0,
                        k - i2,
                        n,
                        i2 - i1,
                        u,
                        i1 * k + i2,
                        1,
                        k,
                        negErr,
                        0,
                        n,
                        w1,
                        i2 * n,
                        n);
            }
        }
    }

    /**
     * The failure the Java loop meets first: the smallest position, then the smallest output column (its group
     * check scans columns in order), with Gptq.groupScales' message for a non-finite weight and Rtn.scale's for
     * a scale beyond fp16. records [n, 4]: position (−1: none), kind (0: weight, 1: scale), row, value bits.
     */
    static IllegalArgumentException firstFailure(int[] records, int n) {
        int best = -1;
        for (int c = 0; c < n; c++) {
            int pos = records[4 * c];
            if (pos >= 0 && (best < 0 || pos < records[4 * best])) {
                best = c;
            }
        }
        if (best < 0) {
            throw new IllegalStateException("m2q_gptq_block raised its failure flag without a record");
        }
        int row = records[4 * best + 2];
        float value = Float.intBitsToFloat(records[4 * best + 3]);
        if (records[4 * best + 1] == 1) {
            try {
                Rtn.scale(value);
            } catch (IllegalArgumentException e) {
                return e;
            }
            throw new IllegalStateException(
                    "m2q_gptq_block found group absmax " + value + " beyond fp16, Rtn.scale not");
        }
        return new IllegalArgumentException("weight (input " + row + ", output " + best + ") became " + value
                + " during GPTQ; the Hessian is ill-conditioned, try a larger --damp");
    }
}
