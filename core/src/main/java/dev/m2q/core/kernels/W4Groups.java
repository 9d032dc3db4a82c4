package dev.m2q.core.kernels;

/**
 * The input channels of each quantization group of a {@link Matrix.W4}, in the order the W4 matmul folds them
 * (see {@link Kernels#matmul}), and the per-token group sums of x that fold the zero point −8 out of the inner
 * loop. Shared by the scalar and the vector path, so both see the same members in the same order.
 *
 * @param members [K] the input channels grouped: group g is members[start[g] .. start[g + 1]), each in
 *     increasing k
 * @param start [K/G + 1] offsets into members; a group may be empty when g_idx is non-monotonic
 * @param contiguous g_idx[k] == k / G for every k (act-order off, or static groups), so group g is the
 *     packed rows [g·G/8, (g+1)·G/8) when G is a multiple of 8
 */
record W4Groups(int[] members, int[] start, boolean contiguous) {
    /** The groups of g_idx (already checked to lie in [0, K/G)). */
    static W4Groups of(int[] gIdx, int groupSize) {
        int k = gIdx.length;
        int groups = k / groupSize;
        int[] start = new int[groups + 1];
        boolean contiguous = true;
        for (int c = 0; c < k; c++) {
            start[gIdx[c] + 1]++;
            contiguous &= gIdx[c] == c / groupSize;
        }
        for (int g = 0; g < groups; g++) {
            start[g + 1] += start[g];
        }
        int[] members = new int[k];
        int[] fill = start.clone();
        for (int c = 0; c < k; c++) {
            members[fill[gIdx[c]]++] = c;
        }
        return new W4Groups(members, start, contiguous);
    }

    int groups() {
        return start.length - 1;
    }

    /**
     * sx[t·groups + g] = Σ x[t·k + m] over the members m of group g, added left to right in member order from
     * 0f (plain fp32 adds): the term the kernels multiply by the zero point 8.
     */
    float[] groupSums(float[] x, int rows, int k) {
        int groups = groups();
        float[] sx = new float[rows * groups];
        if (contiguous) {
            // the same adds in the same order, without the members' indirection
            int size = k / groups;
            for (int t = 0; t < rows; t++) {
                for (int g = 0; g < groups; g++) {
                    float s = 0f;
                    for (int i = t * k + g * size, end = i + size; i < end; i++) {
                        s += x[i];
                    }
                    sx[t * groups + g] = s;
                }
            }
            return sx;
        }
        for (int t = 0; t < rows; t++) {
            for (int g = 0; g < groups; g++) {
                float s = 0f;
                for (int i = start[g]; i < start[g + 1]; i++) {
                    s += x[t * k + members[i]];
                }
                sx[t * groups + g] = s;
            }
        }
        return sx;
    }
}
