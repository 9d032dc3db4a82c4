package dev.m2q.kernels;

import static dev.m2q.kernels.GpuTesting.TWIN;
import static dev.m2q.kernels.GpuTesting.U32;
import static dev.m2q.kernels.GpuTesting.U_BF16;
import static dev.m2q.kernels.GpuTesting.assertBits;
import static dev.m2q.kernels.GpuTesting.assertWithin;
import static dev.m2q.kernels.GpuTesting.poisoned;
import static dev.m2q.kernels.GpuTesting.uniform;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.VectorKernels;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The products on the device against their Java twins: matmul on every path (matvec, fp32 tiles, bf16 tensor
 * cores, W4 from the packed words, W4 dequantized), syrkUpper and gemmAcc. Shapes are ragged (not multiples of
 * the 8-, 32- or 128-wide tiles) as well as aligned; outputs start as NaN so that an unwritten element fails.
 */
@Tag("gpu")
class CudaProductsGpuTest {
    /** rows, n (outputs), k (inputs): matvec rows 1, 2, 3, 5..8 (k % 8 == 0 takes the 16-byte path, 129 and 100
     * the scalar one), then the tiles with ragged edges. */
    static final int[][] DENSE = {
        {1, 130, 96},
        {2, 257, 129},
        {3, 64, 1000},
        {5, 33, 200},
        {8, 300, 256},
        {9, 300, 129},
        {16, 129, 257},
        {33, 257, 96},
        {130, 129, 100},
        {256, 384, 512}
    };

    /**
     * The exact product in double and, per element, Σ|x·w| + |b|: the scale of every rounding error below.
     * want and scale are [rows, n].
     */
    static void exact(float[] x, int rows, Matrix w, float[] bias, double[] want, double[] scale) {
        int n = w.rows();
        int k = w.cols();
        float[] wr = new float[k];
        for (int j = 0; j < n; j++) {
            w.row(j, wr);
            for (int t = 0; t < rows; t++) {
                double s = bias == null ? 0 : bias[j];
                double a = bias == null ? 0 : Math.abs(bias[j]);
                for (int c = 0; c < k; c++) {
                    double p = (double) x[t * k + c] * wr[c];
                    s += p;
                    a += Math.abs(p);
                }
                want[t * n + j] = s;
                scale[t * n + j] = a;
            }
        }
    }

    /**
     * fp32 paths. Tolerance: any order of k fp32 FMAs plus the bias add is within γ_{k+1}·Σ|x·w| of the exact sum
     * (γ_m = m·u/(1 − m·u) ≤ 1.01·m·u here), so |y − exact| ≤ 1.01·(k + 2)·2⁻²⁴·Σ|x·w|, a rigorous bound that
     * still catches one missing or doubled term (≈ Σ/k, far above k·u·Σ for k ≤ 1000); the twin obeys the same
     * bound, so |y − y_twin| ≤ twice it.
     */
    @Test
    void denseFp32PathsAgreeWithinFp32SummationError() {
        CudaKernels cuda = GpuTesting.cuda(false);
        SplittableRandom r = new SplittableRandom(11);
        for (int[] s : DENSE) {
            int rows = s[0];
            int n = s[1];
            int k = s[2];
            float[] x = uniform(r, rows * k, -1, 1);
            float[] bias = rows % 2 == 1 ? uniform(r, n, -1, 1) : null;
            for (Matrix w : new Matrix[] {GpuTesting.bf16(r, n, k), new Matrix.F32(uniform(r, n * k, -1, 1), n, k)}) {
                String what = w.getClass().getSimpleName() + " [" + rows + ", " + n + ", " + k + "]";
                double[] want = new double[rows * n];
                double[] scale = new double[rows * n];
                exact(x, rows, w, bias, want, scale);
                double[] tol = new double[rows * n];
                for (int i = 0; i < tol.length; i++) {
                    tol[i] = 1.01 * (k + 2) * U32 * scale[i];
                }
                float[] y = poisoned(rows * n);
                cuda.matmul(x, rows, w, bias, y);
                assertWithin(y, want, tol, what + " vs exact");
                float[] twin = new float[rows * n];
                TWIN.matmul(x, rows, w, bias, twin);
                double[] twinD = new double[twin.length];
                for (int i = 0; i < twin.length; i++) {
                    twinD[i] = twin[i];
                    tol[i] *= 2;
                }
                assertWithin(y, twinD, tol, what + " vs the twin");
            }
        }
    }

    /**
     * bf16 weights with ≥ 16 rows on the tensor cores: x is rounded to bf16 (|x̃ − x| ≤ 2⁻⁸·|x|, w is exact), and
     * the fp32 accumulation (which on tensor cores may truncate instead of rounding) adds at most 2·(k + 2)·2⁻²⁴,
     * so |y − exact| ≤ (2⁻⁸ + 2·(k + 2)·2⁻²⁴)·Σ|x·w|. Over the whole output the relative error, ‖y − exact‖ /
     * ‖exact‖, must also stay within 1e-2, the bf16-operand range.
     */
    @Test
    void bf16TensorCoresAgreeWithinBf16OperandRounding() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(12);
        for (int[] s : new int[][] {{16, 130, 200}, {33, 257, 96}, {128, 384, 512}, {130, 129, 100}, {17, 64, 1000}}) {
            int rows = s[0];
            int n = s[1];
            int k = s[2];
            float[] x = uniform(r, rows * k, -1, 1);
            float[] bias = rows % 2 == 1 ? uniform(r, n, -1, 1) : null;
            Matrix.Bf16 w = GpuTesting.bf16(r, n, k);
            double[] want = new double[rows * n];
            double[] scale = new double[rows * n];
            exact(x, rows, w, bias, want, scale);
            double[] tol = new double[rows * n];
            for (int i = 0; i < tol.length; i++) {
                tol[i] = (U_BF16 + 2.0 * (k + 2) * U32) * scale[i];
            }
            float[] y = poisoned(rows * n);
            cuda.matmul(x, rows, w, bias, y);
            String what = "bf16 tensor cores [" + rows + ", " + n + ", " + k + "]";
            assertWithin(y, want, tol, what);
            double rel = GpuTesting.relativeNorm(y, want);
            assertTrue(rel <= 1e-2, what + ": relative error " + rel);
        }
    }

    /**
     * W4 for 1..16 rows follows the SPI's sequence exactly (per group one FMA chain, then one FMA with the
     * scale), so it equals the scalar twin bit for bit, for g_idx = k / G and for act-order, with 33 groups (two
     * rounds of the kernel's group lanes), a non-multiple-of-4 N (the kernel's scalar word loads) and groups of
     * uneven size (one of them empty).
     */
    @Test
    void w4UpTo16RowsEqualsTheTwinBitForBit() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(13);
        int[] uneven = GpuTesting.sequentialGroups(256, 128);
        for (int c = 0; c < 128; c++) {
            uneven[c] = 1; // group 0 empty, group 1 has every channel
        }
        Matrix.W4[] weights = {
            GpuTesting.w4(r, 64, 384, 128, GpuTesting.sequentialGroups(384, 128)),
            GpuTesting.w4(r, 130, 384, 128, GpuTesting.shuffledGroups(r, 384, 128)),
            GpuTesting.w4(r, 257, 4224, 128, GpuTesting.sequentialGroups(4224, 128)),
            GpuTesting.w4(r, 70, 96, 32, GpuTesting.shuffledGroups(r, 96, 32)),
            GpuTesting.w4(r, 40, 256, 128, uneven)
        };
        for (Matrix.W4 w : weights) {
            int n = w.rows();
            int k = w.cols();
            for (int rows : new int[] {1, 2, 3, 4, 5, 8, 9, 16}) {
                float[] x = uniform(r, rows * k, -2, 2);
                float[] bias = rows % 2 == 0 ? uniform(r, n, -1, 1) : null;
                float[] want = new float[rows * n];
                TWIN.matmul(x, rows, w, bias, want);
                float[] vector = new float[rows * n];
                VectorKernels.INSTANCE.matmul(x, rows, w, bias, vector);
                assertBits(want, vector, rows * n, "the Java twins agree");
                float[] y = poisoned(rows * n);
                cuda.matmul(x, rows, w, bias, y);
                assertBits(want, y, rows * n, "W4 [" + rows + ", " + n + ", " + k + "] G " + w.groupSize());
            }
        }
    }

    /**
     * W4 with more rows is dequantized on the device, then multiplied. Without tensor cores the dequantized
     * weights are exact fp32 (s·(q − 8)), so the fp32 bound of the dense test holds against the exact product of
     * Matrix.W4.dequantize(); with them both operands are rounded to bf16, so (2·2⁻⁸ + 2⁻¹⁶ + 2·(k + 2)·2⁻²⁴)·Σ|x·w|.
     */
    @Test
    void w4ManyRowsAgreeWithTheDequantizedProduct() {
        SplittableRandom r = new SplittableRandom(14);
        for (boolean tensorCores : new boolean[] {false, true}) {
            CudaKernels cuda = GpuTesting.cuda(tensorCores);
            for (int[] s : new int[][] {{17, 130, 384}, {40, 64, 4224}}) {
                int rows = s[0];
                int n = s[1];
                int k = s[2];
                Matrix.W4 w = GpuTesting.w4(r, n, k, 128, GpuTesting.shuffledGroups(r, k, 128));
                float[] x = uniform(r, rows * k, -1, 1);
                float[] bias = uniform(r, n, -1, 1);
                double[] want = new double[rows * n];
                double[] scale = new double[rows * n];
                exact(x, rows, new Matrix.F32(w.dequantize(), n, k), bias, want, scale);
                double[] tol = new double[rows * n];
                for (int i = 0; i < tol.length; i++) {
                    double u = tensorCores ? 2 * U_BF16 + U_BF16 * U_BF16 + 2.0 * (k + 2) * U32 : 1.01 * (k + 2) * U32;
                    tol[i] = u * scale[i];
                }
                float[] y = poisoned(rows * n);
                cuda.matmul(x, rows, w, bias, y);
                assertWithin(y, want, tol, "W4 [" + rows + ", " + n + ", " + k + "] tensor cores " + tensorCores);
            }
        }
    }

    /**
     * syrkUpper: each chunk sum is one in-order FMA chain from 0f, added to c once (the SPI), so the result equals
     * both Java twins bit for bit; the strict lower triangle of c is untouched. k above 128 spans several of the
     * host's download bands.
     */
    @Test
    void syrkUpperEqualsTheTwinsBitForBit() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(15);
        for (int[] s : new int[][] {{1, 129}, {37, 200}, {300, 257}, {513, 130}}) {
            int rows = s[0];
            int k = s[1];
            float[] x = uniform(r, rows * k, -1, 1);
            float[] c0 = uniform(r, k * k, -1, 1);
            float[] want = c0.clone();
            TWIN.syrkUpper(x, rows, k, want);
            float[] vector = c0.clone();
            VectorKernels.INSTANCE.syrkUpper(x, rows, k, vector);
            assertBits(want, vector, k * k, "the Java twins agree");
            float[] c = c0.clone();
            cuda.syrkUpper(x, rows, k, c);
            assertBits(want, c, k * k, "syrkUpper [" + rows + ", " + k + "]");
        }
    }

    /**
     * gemmAcc: one in-order FMA chain per element continuing C's value (the SPI), so bit for bit the twin, for a
     * row-major A with offsets and padded strides, a transposed A (GPTQ's lazy update reads Uᵀ so), general
     * strides, and B and C in one array (the triangular inverse). Depths that are not multiples of the 8-deep
     * tile check the ragged last tile. C's untouched elements (the padding between its rows) must stay as they
     * were.
     */
    @Test
    void gemmAccEqualsTheTwinBitForBit() {
        CudaKernels cuda = GpuTesting.cuda(true);
        SplittableRandom r = new SplittableRandom(16);
        // m, n, depth, aRow, aCol
        int[][] cases = {{130, 257, 70, 73, 1}, {129, 64, 300, 1, 133}, {40, 33, 20, 2, 81}, {1, 1000, 517, 517, 1}};
        for (int[] s : cases) {
            int m = s[0];
            int n = s[1];
            int depth = s[2];
            int aRow = s[3];
            int aCol = s[4];
            int aOff = 5;
            int bOff = 7;
            int ldb = n + 5;
            int cOff = 11;
            int ldc = n + 2;
            float[] a = uniform(r, aOff + (m - 1) * aRow + (depth - 1) * aCol + 1, -1, 1);
            float[] b = uniform(r, bOff + (depth - 1) * ldb + n, -1, 1);
            float[] c0 = uniform(r, cOff + (m - 1) * ldc + n + 3, -1, 1);
            float[] want = c0.clone();
            TWIN.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, want, cOff, ldc);
            float[] c = c0.clone();
            cuda.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
            assertBits(want, c, c.length, "gemmAcc " + java.util.Arrays.toString(s));
        }
        // B and C in one array: B = rows [0, depth) of arr, C = the rows after them.
        int m = 70;
        int n = 90;
        int depth = 45;
        float[] a = uniform(r, m * depth, -1, 1);
        float[] arr0 = uniform(r, (depth + m) * n, -1, 1);
        float[] want = arr0.clone();
        TWIN.gemmAcc(m, n, depth, a, 0, depth, 1, want, 0, n, want, depth * n, n);
        float[] arr = arr0.clone();
        cuda.gemmAcc(m, n, depth, a, 0, depth, 1, arr, 0, n, arr, depth * n, n);
        assertBits(want, arr, arr.length, "gemmAcc with B and C in one array");
        assertEquals(0, cuda.cachedWeights(), "gemmAcc caches nothing");
    }

    /** Weights are uploaded once per Matrix object and freed by clearCache. */
    @Test
    void weightsAreCachedPerMatrixObject() {
        CudaKernels cuda = GpuTesting.cuda(false);
        SplittableRandom r = new SplittableRandom(17);
        Matrix.F32 w1 = new Matrix.F32(uniform(r, 64 * 96, -1, 1), 64, 96);
        Matrix.F32 w2 = new Matrix.F32(uniform(r, 64 * 96, -1, 1), 64, 96);
        float[] x = uniform(r, 96, -1, 1);
        float[] y1 = poisoned(64);
        cuda.matmul(x, 1, w1, null, y1);
        cuda.matmul(x, 1, w1, null, poisoned(64));
        assertEquals(1, cuda.cachedWeights());
        float[] y2 = poisoned(64);
        cuda.matmul(x, 1, w2, null, y2);
        assertEquals(2, cuda.cachedWeights());
        float[] again = poisoned(64);
        cuda.matmul(x, 1, w1, null, again);
        assertBits(y1, again, 64, "the cached weights give the same bits");
        cuda.clearCache();
        assertEquals(0, cuda.cachedWeights());
    }
}
