package dev.m2q.core.kernels;

/**
 * The lane sums that finish {@link MultiRowBf16}'s and {@link MultiRowF32}'s FMA chains. A block's chains are stored
 * channel-major, [channel, row, lane] with {@code V} lanes; channel j's sum for row t is the in-order sum ((0f + lane
 * 0) + lane 1) + … + lane V−1, which does not depend on how many rows share the pass. Four channels' sums run side by
 * side, each still in that order (so the bits are those of one sum at a time): one sum alone is a chain of V
 * dependent additions, and at K = 256 (the fixture, a draft head) those chains cost about as much as the FMAs.
 */
final class LaneSums {
    private LaneSums() {}

    /**
     * sums[t · sumStride + j] = the in-order sum of ch[j · stride + t · lanes + l] over l &lt; lanes, for channels
     * j &lt; channels and rows t &lt; rows.
     */
    static void of(float[] ch, int stride, int lanes, int channels, int rows, float[] sums, int sumStride) {
        of(ch, stride, lanes, channels, rows, sums, 0, sumStride);
    }

    /** As above, into sums[sumOff + t · sumStride + j]. */
    static void of(float[] ch, int stride, int lanes, int channels, int rows, float[] sums, int sumOff, int sumStride) {
        int j = 0;
        for (; j + 4 <= channels; j += 4) {
            for (int t = 0; t < rows; t++) {
                int a0 = j * stride + t * lanes;
                int a1 = a0 + stride;
                int a2 = a1 + stride;
                int a3 = a2 + stride;
                float s0 = 0f;
                float s1 = 0f;
                float s2 = 0f;
                float s3 = 0f;
                for (int l = 0; l < lanes; l++) {
                    s0 += ch[a0 + l];
                    s1 += ch[a1 + l];
                    s2 += ch[a2 + l];
                    s3 += ch[a3 + l];
                }
                int o = sumOff + t * sumStride + j;
                sums[o] = s0;
                sums[o + 1] = s1;
                sums[o + 2] = s2;
                sums[o + 3] = s3;
            }
        }
        for (; j < channels; j++) {
            for (int t = 0; t < rows; t++) {
                int a = j * stride + t * lanes;
                float s = 0f;
                for (int l = 0; l < lanes; l++) {
                    s += ch[a + l];
                }
                sums[sumOff + t * sumStride + j] = s;
            }
        }
    }
}
