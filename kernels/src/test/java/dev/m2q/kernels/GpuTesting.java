package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.ScalarKernels;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Optional;
import java.util.SplittableRandom;

/** What the gpu tests share: the kernels under test, seeded inputs (never zeros), poison, and tolerance checks. */
final class GpuTesting {
    /** The reference every CUDA kernel is compared with. */
    static final Kernels TWIN = ScalarKernels.INSTANCE;
    /** fp32's unit roundoff. */
    static final double U32 = 0x1p-24;
    /** bf16's unit roundoff: 8 significant bits. */
    static final double U_BF16 = 0x1p-8;

    private GpuTesting() {}

    /** CudaKernels running every call on the device, however small (the default policy sends small ones to the CPU). */
    static CudaKernels cuda(boolean tensorCores) {
        assertEquals(Optional.empty(), CudaContext.unavailableReason(), "CUDA must be usable where gpu tests run");
        return new CudaKernels(CudaContext.get(), TWIN, CudaKernels.Policy.allOnDevice(tensorCores));
    }

    /** n values uniform in [lo, hi). */
    static float[] uniform(SplittableRandom r, int n, double lo, double hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (lo + (hi - lo) * r.nextDouble());
        }
        return a;
    }

    /** n NaNs: an output element the kernel never writes stays NaN and fails every comparison. */
    static float[] poisoned(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    /** W [rows, cols] bf16 (the upper halves of uniform [−1, 1) floats) in a heap segment. */
    static Matrix.Bf16 bf16(SplittableRandom r, int rows, int cols) {
        short[] bits = new short[rows * cols];
        for (int i = 0; i < bits.length; i++) {
            bits[i] = (short) (Float.floatToRawIntBits((float) (2 * r.nextDouble() - 1)) >>> 16);
        }
        return new Matrix.Bf16(MemorySegment.ofArray(bits), rows, cols);
    }

    /** A W4 [n, k] with random codes, scales in [0.005, 0.05) and the given g_idx. */
    static Matrix.W4 w4(SplittableRandom r, int n, int k, int groupSize, int[] gIdx) {
        int[] qweight = new int[k / 8 * n];
        for (int i = 0; i < qweight.length; i++) {
            qweight[i] = r.nextInt();
        }
        float[] scales = uniform(r, k / groupSize * n, 0.005, 0.05);
        return Matrix.W4.of(qweight, scales, gIdx, n, k, groupSize);
    }

    /** g_idx = k / G. */
    static int[] sequentialGroups(int k, int groupSize) {
        int[] g = new int[k];
        Arrays.setAll(g, c -> c / groupSize);
        return g;
    }

    /** g_idx of a random act-order permutation: channel perm[i] in group i / G. */
    static int[] shuffledGroups(SplittableRandom r, int k, int groupSize) {
        int[] perm = permutation(r, k);
        int[] g = new int[k];
        for (int i = 0; i < k; i++) {
            g[perm[i]] = i / groupSize;
        }
        return g;
    }

    static int[] permutation(SplittableRandom r, int k) {
        int[] p = new int[k];
        Arrays.setAll(p, i -> i);
        for (int i = k - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** |got[i] − want[i]| ≤ tol[i] for every i; a NaN fails. */
    static void assertWithin(float[] got, double[] want, double[] tol, String what) {
        for (int i = 0; i < want.length; i++) {
            double d = Math.abs(got[i] - want[i]);
            if (!(d <= tol[i])) {
                fail(what + ": element " + i + " is " + got[i] + ", expected " + want[i] + " ± " + tol[i]);
            }
        }
    }

    /** The same bits in [0, n) (NaN payloads aside: Float.compare treats every NaN alike, and −0 ≠ +0). */
    static void assertBits(float[] want, float[] got, int n, String what) {
        for (int i = 0; i < n; i++) {
            if (Float.compare(want[i], got[i]) != 0) {
                fail(what + ": element " + i + " is " + got[i] + ", the twin gives " + want[i]);
            }
        }
    }

    /** ‖got − want‖₂ / ‖want‖₂. */
    static double relativeNorm(float[] got, double[] want) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < want.length; i++) {
            double d = got[i] - want[i];
            num += d * d;
            den += want[i] * want[i];
        }
        return Math.sqrt(num / den);
    }
}
