package dev.m2q.kernels;

import static dev.m2q.kernels.GpuTesting.TWIN;
import static dev.m2q.kernels.GpuTesting.U32;
import static dev.m2q.kernels.GpuTesting.U_BF16;
import static dev.m2q.kernels.GpuTesting.assertWithin;
import static dev.m2q.kernels.GpuTesting.poisoned;
import static dev.m2q.kernels.GpuTesting.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.gptq.GptqKernels;
import dev.m2q.gptq.JavaGptqKernels;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * cuBLAS and cuSOLVER, as m2q binds them, against the Java twin, m2q's own kernels and the exact result in double.
 * cuBLAS sums in its own order (blocked, possibly split over k), so nothing here is bit for bit; each tolerance is
 * a rounding-error bound that holds for any summation order, stated at its test. Skipped, with the device line's
 * reason, where no cuBLAS is found (set M2Q_CUDA_LIBS to its folder).
 */
@Tag("gpu")
class VendorGpuTest {
    private CudaContext ctx;
    private Vendor vendor;

    @BeforeEach
    void vendor() {
        GpuTesting.cuda(true); // asserts CUDA is usable
        ctx = CudaContext.get();
        vendor = Vendor.of(ctx);
        assumeTrue(vendor.blas().isPresent(), "no cuBLAS: " + vendor.describe());
    }

    private CudaKernels withVendor(boolean tensorCores) {
        return new CudaKernels(ctx, TWIN, CudaKernels.Policy.allOnDevice(tensorCores), vendor);
    }

    private CudaKernels ownKernels(boolean tensorCores) {
        return new CudaKernels(ctx, TWIN, CudaKernels.Policy.allOnDevice(tensorCores), Vendor.NONE);
    }

    @Test
    void theDeviceLineNamesTheLibrary() {
        assertTrue(
                new CudaKernelsProvider().describe().contains("BLAS: cuBLAS /"), new CudaKernelsProvider().describe());
    }

    static double[] widened(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /**
     * fp32 W through cublasSgemm_v2 (CUBLAS_DEFAULT_MATH: fp32, no TF32). Any order of k products and sums, split
     * over k or not, plus the bias add, is within γ_{k+2}·Σ|x·w| of the exact value (γ_m = m·u/(1 − m·u) ≤
     * 1.01·m·u, u = 2⁻²⁴), so |y − exact| ≤ 1.01·(k + 2)·u·Σ|x·w|; the twin and m2q's tiles obey the same bound,
     * so the differences to them are within twice it. A missing or doubled term (≈ Σ/k) is far above.
     *
     * <p>bf16 W through cublasGemmEx: x rounded to bf16 (|x̃ − x| ≤ 2⁻⁸·|x|), W exact, fp32 accumulation that on
     * tensor cores may truncate rather than round (2u per operation): |y − exact| ≤ (2⁻⁸ + 2·(k + 2)·u)·Σ|x·w|, and
     * the relative norm ‖y − exact‖/‖exact‖ within 1e-2 (bf16 operands). m2q_matmul_bf16w_tc rounds x the same way
     * and obeys the same bound, so the two differ by at most twice it.
     */
    @Test
    void linearLayersAgreeWithOwnKernelsAndTheTwinWithinTheirPrecisionsBounds() {
        SplittableRandom r = new SplittableRandom(41);
        CudaKernels cublas = withVendor(true);
        CudaKernels own = ownKernels(true);
        // the last shape takes two chunks of VendorBlas.BF16_ROWS rows
        int[][] shapes = {
            {16, 130, 200},
            {33, 257, 96},
            {130, 129, 100},
            {256, 384, 512},
            {9, 64, 1000},
            {VendorBlas.BF16_ROWS + 9, 40, 72}
        };
        for (int[] s : shapes) {
            int rows = s[0];
            int n = s[1];
            int k = s[2];
            float[] x = uniform(r, rows * k, -1, 1);
            float[] bias = rows % 2 == 1 ? uniform(r, n, -1, 1) : null;
            Matrix[] ws = rows >= 16
                    ? new Matrix[] {new Matrix.F32(uniform(r, n * k, -1, 1), n, k), GpuTesting.bf16(r, n, k)}
                    : new Matrix[] {new Matrix.F32(uniform(r, n * k, -1, 1), n, k)};
            for (Matrix w : ws) {
                boolean bf16 = w instanceof Matrix.Bf16;
                String what = (bf16 ? "cublasGemmEx bf16" : "cublasSgemm_v2") + " [" + rows + ", " + n + ", " + k + "]";
                double[] want = new double[rows * n];
                double[] scale = new double[rows * n];
                CudaProductsGpuTest.exact(x, rows, w, bias, want, scale);
                double[] tol = new double[rows * n];
                for (int i = 0; i < tol.length; i++) {
                    tol[i] = (bf16 ? U_BF16 + 2.0 * (k + 2) * U32 : 1.01 * (k + 2) * U32) * scale[i];
                }
                float[] y = poisoned(rows * n);
                cublas.matmul(x, rows, w, bias, y);
                assertWithin(y, want, tol, what + " vs exact");
                if (bf16) {
                    double rel = GpuTesting.relativeNorm(y, want);
                    assertTrue(rel <= 1e-2, what + ": relative error " + rel);
                }
                float[] mine = poisoned(rows * n);
                own.matmul(x, rows, w, bias, mine);
                double[] twice = tol.clone();
                for (int i = 0; i < twice.length; i++) {
                    twice[i] *= 2;
                }
                assertWithin(y, widened(mine), twice, what + " vs m2q's kernel");
                if (!bf16) {
                    float[] twin = new float[rows * n];
                    TWIN.matmul(x, rows, w, bias, twin);
                    assertWithin(y, widened(twin), twice, what + " vs the twin");
                }
            }
        }
    }

    /**
     * cublasSsyrk_v2 as GemmPlan.Syrk maps the Hessian update (column-major LOWER = row-major upper). Each chunk sum
     * S = Σ_t x_ti·x_tj, in any order, is within 1.01·rows·u·Σ_t|x_ti·x_tj| of the exact one, and adding it to c
     * rounds once more (u·|c + S|); the twin's FMA chain obeys the same bound, so the two differ by at most
     * 2·1.01·(rows + 1)·u·(|c₀| + Σ_t|x_ti·x_tj|). The strict lower triangle (row-major) must keep its bits: a
     * wrong fill mode writes it.
     */
    @Test
    void theHessianUpdateMatchesTheTwinOnTheUpperTriangleAndLeavesTheLowerAlone() {
        VendorBlas blas = vendor.blas().orElseThrow();
        SplittableRandom r = new SplittableRandom(42);
        for (int[] s : new int[][] {{37, 130}, {256, 257}, {1000, 64}}) {
            int rows = s[0];
            int k = s[1];
            float[] x = uniform(r, rows * k, -1, 1);
            float[] c0 = uniform(r, k * k, -4, 4);
            float[] twin = c0.clone();
            TWIN.syrkUpper(x, rows, k, twin);
            float[] got = new float[k * k];
            try (DeviceBuffer xb = ctx.upload(x, 0, x.length);
                    DeviceBuffer cb = ctx.upload(c0, 0, c0.length)) {
                blas.syrk(
                        GemmPlan.Syrk.upperOfXtX(rows, k), VendorBlas.address(xb.ptr()), VendorBlas.address(cb.ptr()));
                ctx.download(cb, 0, got, 0, got.length);
            }
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    String what = "cublasSsyrk_v2 [" + rows + ", " + k + "] element [" + i + ", " + j + "]";
                    if (j < i) {
                        assertEquals(
                                Float.floatToRawIntBits(c0[i * k + j]), Float.floatToRawIntBits(got[i * k + j]), what);
                        continue;
                    }
                    double abs = Math.abs(c0[i * k + j]);
                    for (int t = 0; t < rows; t++) {
                        abs += Math.abs((double) x[t * k + i] * x[t * k + j]);
                    }
                    double tol = 2 * 1.01 * (rows + 1) * U32 * abs;
                    double d = Math.abs((double) got[i * k + j] - twin[i * k + j]);
                    assertTrue(
                            d <= tol, what + ": " + got[i * k + j] + " vs the twin's " + twin[i * k + j] + " ± " + tol);
                }
            }
        }
    }

    /** H = GᵀG/rows + 0.05·mean(diag)·I over rows = k + 8 uniform rows: SPD with a condition number below ~100. */
    static float[] spd(SplittableRandom r, int k) {
        int rows = k + 8;
        float[] g = uniform(r, rows * k, -1, 1);
        float[] h = new float[k * k];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                double s = 0;
                for (int t = 0; t < rows; t++) {
                    s += (double) g[t * k + i] * g[t * k + j];
                }
                h[i * k + j] = (float) (s / rows);
            }
        }
        return h;
    }

    /** The SPI's input: H's strict upper triangle, and scratch (never zeros) on and below the diagonal. */
    static float[] withScratchLower(float[] h, int k, SplittableRandom r) {
        float[] a = h.clone();
        for (int i = 0; i < k; i++) {
            for (int j = 0; j <= i; j++) {
                a[i * k + j] = (float) r.nextDouble(-9, 9);
            }
        }
        return a;
    }

    /**
     * potrf + Xtrtri against m2q's blocked kernels and the twin. With κ(H) below ~100, fp32 factorization and
     * inversion in any blocked order land within ~κ·k·u of the exact L⁻¹, about 1e-6 relative at these sizes; the
     * bound asserted, ‖X − X_other‖_F / ‖X_other‖_F ≤ 2e-4, leaves room for both sides' error and still fails a
     * wrong triangle or transpose (relative error ~1). fp64 computes in double and rounds once: within 2e-6 (two
     * fp32 roundings, 2⁻²³ relative each). The strict upper triangle is exactly 0.
     */
    @Test
    void choleskyInverseAgreesWithOwnKernelsAndTheTwinInBothPrecisions() {
        assumeTrue(vendor.solver().isPresent(), "no cuSOLVER: " + vendor.describe());
        SplittableRandom r = new SplittableRandom(43);
        CudaKernels cusolver = withVendor(true);
        CudaKernels own = ownKernels(true);
        for (int k : new int[] {64, 65, 333}) {
            float[] h = spd(r, k);
            float[] diag = new float[k];
            double mean = 0;
            for (int i = 0; i < k; i++) {
                diag[i] = h[i * k + i];
                mean += diag[i] / k;
            }
            float shift = (float) (0.05 * mean);
            for (boolean fp64 : new boolean[] {false, true}) {
                String what = "cuSOLVER choleskyInverse k " + k + (fp64 ? " fp64" : " fp32");
                float[] a = withScratchLower(h, k, r);
                assertTrue(GptqKernels.of(cusolver).choleskyInverse(a, diag.clone(), shift, k, fp64), what);
                for (int i = 0; i < k; i++) {
                    for (int j = i + 1; j < k; j++) {
                        assertEquals(0f, a[i * k + j], what + ": strict upper [" + i + ", " + j + "]");
                    }
                }
                float[] mine = withScratchLower(h, k, r);
                assertTrue(
                        GptqKernels.of(own).choleskyInverse(mine, diag.clone(), shift, k, fp64),
                        what + " (m2q's kernels)");
                float[] twin = withScratchLower(h, k, r);
                assertTrue(
                        new JavaGptqKernels(TWIN).choleskyInverse(twin, diag.clone(), shift, k, fp64),
                        what + " (twin)");
                double bound = fp64 ? 2e-6 : 2e-4;
                double vsOwn = GpuTesting.relativeNorm(a, widened(mine));
                double vsTwin = GpuTesting.relativeNorm(a, widened(twin));
                assertTrue(vsOwn <= bound, what + ": relative difference to m2q's kernels " + vsOwn);
                assertTrue(vsTwin <= bound, what + ": relative difference to the twin " + vsTwin);
            }
        }
    }

    /**
     * A negative pivot (potrf's info &gt; 0) and a NaN above the diagonal (which potrf need not flag; the pivot
     * check does) both return false and leave the strict upper triangle and diag as they were.
     */
    @Test
    void choleskyInverseRefusesIndefiniteAndNanInputsAndLeavesThem() {
        assumeTrue(vendor.solver().isPresent(), "no cuSOLVER: " + vendor.describe());
        SplittableRandom r = new SplittableRandom(44);
        CudaKernels cusolver = withVendor(true);
        int k = 200;
        float[] h = spd(r, k);
        float[] diag = new float[k];
        for (int i = 0; i < k; i++) {
            diag[i] = h[i * k + i];
        }
        float[] negative = diag.clone();
        negative[k - 3] = -1f;
        float[] nan = h.clone();
        nan[5 * k + 150] = Float.NaN;
        for (boolean fp64 : new boolean[] {false, true}) {
            for (float[][] c : new float[][][] {{h, negative}, {nan, diag}}) {
                float[] a = withScratchLower(c[0], k, r);
                float[] before = a.clone();
                float[] d = c[1].clone();
                String what = (c[1] == negative ? "negative pivot" : "NaN at [5, 150]") + (fp64 ? " fp64" : " fp32");
                assertFalse(GptqKernels.of(cusolver).choleskyInverse(a, d, 0f, k, fp64), what);
                assertArrayEquals(c[1], d, what + ": diag unchanged");
                for (int i = 0; i < k; i++) {
                    for (int j = i + 1; j < k; j++) {
                        assertEquals(
                                Float.floatToRawIntBits(before[i * k + j]),
                                Float.floatToRawIntBits(a[i * k + j]),
                                what + ": strict upper [" + i + ", " + j + "] unchanged");
                    }
                }
            }
        }
    }
}
