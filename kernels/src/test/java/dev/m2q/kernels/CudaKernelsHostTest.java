package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.quant.Rtn;
import dev.m2q.gptq.GptqCodes;
import dev.m2q.gptq.GptqProblem;
import dev.m2q.gptq.JavaGptqKernels;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The host-side logic of the CUDA backend, which needs no GPU: the W4 layout, failure reports, the policy. */
class CudaKernelsHostTest {
    /**
     * The layout the W4 kernels fold in: every channel once, grouped by g_idx in increasing group, increasing
     * channel within a group, start[] the group boundaries; contiguous exactly when g_idx = k / G.
     */
    @Test
    void w4LayoutSortsChannelsByGroupKeepingTheirOrder() {
        SplittableRandom r = new SplittableRandom(51);
        int k = 96;
        int g = 32;
        int[] gIdx = GpuTesting.shuffledGroups(r, k, g);
        gIdx[5] = 2; // uneven sizes
        Matrix.W4 w = GpuTesting.w4(r, 8, k, g, gIdx);
        W4Layout layout = W4Layout.of(w);
        assertFalse(layout.contiguous());
        assertEquals(3, layout.groups());
        assertEquals(0, layout.start()[0]);
        assertEquals(k, layout.start()[3]);
        boolean[] seen = new boolean[k];
        for (int grp = 0; grp < 3; grp++) {
            for (int i = layout.start()[grp]; i < layout.start()[grp + 1]; i++) {
                int c = layout.members()[i];
                assertEquals(grp, gIdx[c], "member " + i + " in its group");
                assertFalse(seen[c], "channel " + c + " once");
                seen[c] = true;
                if (i > layout.start()[grp]) {
                    assertTrue(c > layout.members()[i - 1], "increasing within a group");
                }
            }
        }
        W4Layout sequential = W4Layout.of(GpuTesting.w4(r, 8, k, g, GpuTesting.sequentialGroups(k, g)));
        assertTrue(sequential.contiguous());
        int[] identity = new int[k];
        Arrays.setAll(identity, i -> i);
        assertArrayEquals(identity, sequential.members());
        assertArrayEquals(new int[] {0, 32, 64, 96}, sequential.start());
    }

    /** records [n, 4]: position (−1 none), kind (0 weight, 1 scale), row, value bits. */
    static int[] records(int n, int[]... rows) {
        int[] rec = new int[4 * n];
        Arrays.fill(rec, -1);
        for (int[] row : rows) {
            System.arraycopy(row, 1, rec, 4 * row[0], 4);
        }
        return rec;
    }

    /**
     * The Java loop meets failures by position, then by output column (its group check runs over the columns in
     * order), so the report names the smallest (position, column), whatever the order the device found them in.
     */
    @Test
    void gptqFailureReportsWhatTheJavaLoopMeetsFirst() {
        int nan = Float.floatToRawIntBits(Float.NaN);
        int inf = Float.floatToRawIntBits(Float.NEGATIVE_INFINITY);
        int[] rec = records(
                6,
                new int[] {5, 256, 0, 300, nan}, // a later group
                new int[] {4, 128, 0, 200, inf},
                new int[] {2, 128, 0, 130, nan});
        assertEquals(
                "weight (input 130, output 2) became NaN during GPTQ; the Hessian is ill-conditioned, try a larger"
                        + " --damp",
                DeviceGptq.firstFailure(rec, 6).getMessage());

        int[] scale = records(3, new int[] {1, 0, 1, 0, Float.floatToRawIntBits(1e6f)});
        String rtn = assertThrows(IllegalArgumentException.class, () -> Rtn.scale(1e6f))
                .getMessage();
        assertEquals(rtn, DeviceGptq.firstFailure(scale, 3).getMessage());

        assertThrows(IllegalStateException.class, () -> DeviceGptq.firstFailure(records(2), 2));
    }

    /** The packed upper triangle syrkUpper downloads: row i starts after the k − r elements of every row r < i. */
    @Test
    void packedUpperRowsFollowOneAnother() {
        for (int k : new int[] {1, 7, 130, 27648}) {
            assertEquals(0, CudaKernels.packedRow(k, 0));
            for (int i = 1; i <= Math.min(k, 300); i++) {
                assertEquals(CudaKernels.packedRow(k, i - 1) + (k - (i - 1)), CudaKernels.packedRow(k, i), "k " + k);
            }
            assertEquals((long) k * (k + 1) / 2, CudaKernels.packedRow(k, k), "k " + k);
        }
    }

    @Test
    void policyRefusesNegativeThresholds() {
        assertThrows(IllegalArgumentException.class, () -> new CudaKernels.Policy(true, -1, 0));
        assertThrows(IllegalArgumentException.class, () -> new CudaKernels.Policy(true, 0, -1));
        assertEquals(0, CudaKernels.Policy.allOnDevice(false).minDeviceWork());
        assertTrue(CudaKernels.Policy.DEFAULT.bf16TensorCores());
    }

    /**
     * The g_idx that the device loops report ({@link DeviceGptq#groupIndex}, from the order alone) is the Java
     * loop's, for dynamic groups (position i in group i / G) and static ones (channel c in group c / G), with and
     * without a permutation.
     */
    @Test
    void groupIndexIsTheJavaLoops() {
        SplittableRandom r = new SplittableRandom(52);
        int k = 96;
        int n = 5;
        int g = 32;
        float[] w1 = GpuTesting.uniform(r, k * n, -1, 1);
        float[] u = new float[k * k];
        for (int i = 0; i < k; i++) {
            u[i * k + i] = 1f; // U = I: no error pushed on, enough for g_idx
        }
        int[] perm = GpuTesting.permutation(r, k);
        int[] identity = new int[k];
        Arrays.setAll(identity, i -> i);
        for (int[] order : new int[][] {identity, perm}) {
            for (boolean staticGroups : new boolean[] {false, true}) {
                float[] scales = staticGroups ? GpuTesting.uniform(r, k / g * n, 0.01, 0.1) : null;
                GptqCodes c = new JavaGptqKernels(GpuTesting.TWIN)
                        .columnLoop(
                                new GptqProblem(w1.clone(), u, k, n, g, 24, order == identity ? null : order, scales));
                assertArrayEquals(
                        c.gIdx(),
                        DeviceGptq.groupIndex(order, g, staticGroups),
                        "static " + staticGroups + ", permuted " + (order != identity));
            }
        }
    }
}
