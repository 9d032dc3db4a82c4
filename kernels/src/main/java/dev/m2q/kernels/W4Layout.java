package dev.m2q.kernels;

import dev.m2q.core.kernels.Matrix;

/**
 * The input channels of a {@link Matrix.W4} sorted by quantization group, in the order the W4 matmul folds them
 * ({@link dev.m2q.core.kernels.Kernels#matmul}: each group's members in increasing channel). Position i of the
 * device kernels holds channel members[i]; group g is positions [start[g], start[g + 1]).
 *
 * @param members [K] channels grouped, increasing within a group
 * @param start [K/G + 1] offsets into members; a group may be empty when g_idx is not monotonic
 * @param contiguous g_idx[k] == k / G for every k: members is the identity, so the checkpoint's qweight and x
 *     are used as they are, with no repack or gather
 */
record W4Layout(int[] members, int[] start, boolean contiguous) {
    static W4Layout of(Matrix.W4 w) {
        int k = w.cols();
        int[] gIdx = w.gIdx();
        int[] start = new int[k / w.groupSize() + 1];
        boolean contiguous = true;
        for (int c = 0; c < k; c++) {
            start[gIdx[c] + 1]++;
            contiguous &= gIdx[c] == c / w.groupSize();
        }
        for (int g = 1; g < start.length; g++) {
            start[g] += start[g - 1];
        }
        int[] members = new int[k];
        int[] fill = start.clone();
        for (int c = 0; c < k; c++) {
            members[fill[gIdx[c]]++] = c;
        }
        return new W4Layout(members, start, contiguous);
    }

    int groups() {
        return start.length - 1;
    }
}
