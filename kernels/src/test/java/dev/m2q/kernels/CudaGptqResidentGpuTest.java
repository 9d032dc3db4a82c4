package dev.m2q.kernels;

import static dev.m2q.kernels.GpuTesting.TWIN;
import static dev.m2q.kernels.GpuTesting.assertBits;
import static dev.m2q.kernels.GpuTesting.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.gptq.Gptq;
import dev.m2q.gptq.GptqKernels;
import dev.m2q.gptq.GptqOptions;
import dev.m2q.gptq.GptqResult;
import dev.m2q.gptq.JavaGptqKernels;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * GPTQ on resident buffers ({@link GptqKernels#finishHessian}, {@link GptqKernels#quantize}) on the device against
 * the Java reference ({@link JavaGptqKernels} on a {@link JavaBackend} over GpuTesting's twin).
 *
 * <p>The resident buffers are made here through the Device API and wrapped in {@link CudaBuf} / {@link
 * CudaWeight} (DeviceMatmul's upload gives every weight form: fp32, bf16, W4). {@link CudaGptqKernels} reads
 * only those handles, so the {@code backend} argument is {@link #NO_BACKEND}: this branch has no CUDA Backend.
 */
@Tag("gpu")
class CudaGptqResidentGpuTest {
    /** The backend argument: unused by CudaGptqKernels, which works on the CudaBuf / CudaWeight handles. */
    private static final Backend NO_BACKEND = null;

    private static final JavaBackend JAVA = new JavaBackend(TWIN);
    private static final GptqKernels REFERENCE = new JavaGptqKernels(TWIN);

    /** Every call on the device, with cuBLAS/cuSOLVER when found, and with m2q's own kernels only. */
    private static List<CudaKernels> devices() {
        CudaKernels vendor = GpuTesting.cuda(true);
        CudaKernels own = new CudaKernels(CudaContext.get(), TWIN, CudaKernels.Policy.allOnDevice(true), Vendor.NONE);
        return List.of(vendor, own);
    }

    private static GptqKernels gptqOf(CudaKernels cuda) {
        return assertInstanceOf(CudaGptqKernels.class, GptqKernels.of(cuda));
    }

    private static CudaBuf upload(Device dev, float[] a) {
        return new CudaBuf(dev.upload(a, 0, a.length), a.length);
    }

    private static float[] download(Device dev, DeviceBuffer b, int n) {
        float[] a = new float[n];
        dev.ctx.download(b, 0, a, 0, n);
        return a;
    }

    /**
     * finishHessian is HessianAccumulator's finish bit for bit: one fp32 multiply by fp32(2/tokens) per upper
     * element, mirrored. Sizes around the kernel's 32-wide tiles (1, 31, 32, 33, 100, 257); the lower triangle
     * starts as garbage (it must be overwritten, not read); tokens whose 2/tokens is inexact (3, 1000) and exact (2).
     */
    @Test
    void finishHessianIsTheJavaFinishBitForBit() {
        CudaKernels cuda = GpuTesting.cuda(true);
        GptqKernels gptq = gptqOf(cuda);
        Device dev = cuda.device();
        SplittableRandom r = new SplittableRandom(41);
        for (int k : new int[] {1, 31, 32, 33, 100, 257}) {
            for (long tokens : new long[] {2, 3, 1000}) {
                float[] sum = uniform(r, k * k, -50, 50);
                float[] want = sum.clone();
                REFERENCE.finishHessian(JAVA, JAVA.wrap(want), k, tokens);
                try (CudaBuf b = upload(dev, sum)) {
                    gptq.finishHessian(NO_BACKEND, b, k, tokens);
                    assertBits(
                            want,
                            download(dev, b.buffer(), k * k),
                            k * k,
                            "finishHessian k " + k + " tokens " + tokens);
                }
            }
        }
    }

    /**
     * H = GᵀG/rows for G [4k, k] uniform (condition number below ~10, so the device factor's rounding moves U by
     * ~1e-6 relative), with the given input channels dead (row and column 0).
     */
    static float[] hessian(SplittableRandom r, int k, int[] dead) {
        int rows = 4 * k;
        float[] g = uniform(r, rows * k, -1, 1);
        for (int c : dead) {
            for (int t = 0; t < rows; t++) {
                g[t * k + c] = 0f;
            }
        }
        float[] h = new float[k * k];
        for (int i = 0; i < k; i++) {
            for (int j = i; j < k; j++) {
                double s = 0;
                for (int t = 0; t < rows; t++) {
                    s += (double) g[t * k + i] * g[t * k + j];
                }
                h[i * k + j] = (float) (s / rows);
                h[j * k + i] = h[i * k + j];
            }
        }
        return h;
    }

    /** W [n, k] in the named form: "f32", "bf16", "w4" (act-order g_idx when shuffled). */
    static Matrix weight(SplittableRandom r, String form, int n, int k, int groupSize, boolean shuffled) {
        return switch (form) {
            case "f32" -> new Matrix.F32(uniform(r, n * k, -1, 1), n, k);
            case "bf16" -> GpuTesting.bf16(r, n, k);
            case "w4" ->
                GpuTesting.w4(
                        r,
                        n,
                        k,
                        groupSize,
                        shuffled
                                ? GpuTesting.shuffledGroups(r, k, groupSize)
                                : GpuTesting.sequentialGroups(k, groupSize));
            default -> throw new IllegalArgumentException(form);
        };
    }

    /** The device result and the reference's for one problem; the device's inputs checked unchanged. */
    record Run(GptqKernels.Resident want, GptqResult got, float[] gotWq) {
        static Run of(CudaKernels cuda, Matrix m, float[] h, GptqOptions o) {
            Device dev = cuda.device();
            int n = m.rows();
            int k = m.cols();
            GptqKernels.Resident want = REFERENCE.quantize(JAVA, JAVA.weight(m), JAVA.wrap(h.clone()), o);
            try (CudaWeight w = new CudaWeight(new DeviceMatmul(dev, false).upload(m), n, k);
                    CudaBuf hb = upload(dev, h)) {
                GptqKernels.Resident got = gptqOf(cuda).quantize(NO_BACKEND, w, hb, o);
                try (Backend.Weight wq = got.dequantized()) {
                    CudaWeight cw = CudaWeight.of(wq);
                    assertEquals(n, cw.rows());
                    assertEquals(k, cw.cols());
                    DeviceWeights.Dense d = assertInstanceOf(DeviceWeights.Dense.class, cw.weights());
                    assertFalse(d.bf16(), "Ŵ is fp32");
                    assertBits(h, download(dev, hb.buffer(), k * k), k * k, "H is not modified");
                    if (w.weights() instanceof DeviceWeights.Dense dw && !dw.bf16()) {
                        float[] data = ((Matrix.F32) m).data();
                        assertBits(data, download(dev, dw.w(), n * k), n * k, "W is not modified");
                    }
                    return new Run(want, got.result(), download(dev, d.w(), n * k));
                }
            }
        }
    }

    /**
     * quantize against the reference, for the three weight forms, dead input channels, act-order with dynamic
     * and static groups, blocks that do not divide K, one group per row; each on cuSOLVER (when found) and on
     * m2q's Cholesky kernels.
     *
     * <ul>
     *   <li>exact: g_idx, the damp used, the fallbacks (dead columns), static groups' scales (computed from W before
     *       the loop), and Ŵ: the resident result is the device's own codes dequantized, bit for bit;
     *   <li>codes: the device factor rounds differently from the Java one (another blocking, ~1e-6 relative), so a
     *       weight within that of a rounding tie can flip, and GPTQ then compensates the flipped error in the
     *       column's later positions: the tie-flip allowance of CudaGptqGpuTest, ≤ 0.1% of the codes;
     *   <li>the loop's proxy loss (Σ Err²/N): against the product with the damped H on the device's own Ŵ within
     *       1e-3 relative (the identity W − Q = Err·U holds up to the fp32 rounding of U and of the updates, as in
     *       GptqTest). Against the reference's: 1e-4 plus 4× the fraction of codes that differ (the factors differ
     *       by ~1e-6 relative, and a flipped code with the compensation after it moves the loss by about that
     *       code's share of it);
     *   <li>the sampled exact loss (asked for 16 rows): against Gptq.sampledLoss on the device's own result within
     *       1e-8 relative (the same fp32 D·H, the Java twin's FMA chains; only the double sum's order differs: ≤
     *       ~N·K·2⁻⁵³ times the terms' cancellation); against the reference's with the same allowance as above.
     * </ul>
     */
    @Test
    void quantizeMatchesTheJavaReference() {
        SplittableRandom r = new SplittableRandom(42);
        // form, n, k, G, B, actOrder, staticGroups, dead channels
        record Case(String form, int n, int k, int g, int b, boolean act, boolean stat, int[] dead) {}
        List<Case> cases = List.of(
                new Case("f32", 130, 256, 128, 128, false, false, new int[0]),
                new Case("bf16", 67, 384, 128, 48, true, false, new int[] {5, 200, 383}),
                new Case("w4", 64, 256, 64, 100, true, true, new int[] {0, 77}),
                new Case("f32", 96, 320, -1, 128, true, true, new int[] {1}),
                new Case("bf16", 40, 192, 32, 192, false, true, new int[0]));
        for (CudaKernels cuda : devices()) {
            for (Case c : cases) {
                String what = "quantize " + c + " on " + cuda.device().vendor.describe();
                Matrix m = weight(r, c.form(), c.n(), c.k(), c.g() > 0 ? c.g() : c.k(), c.act());
                float[] h = hessian(r, c.k(), c.dead());
                GptqOptions o = GptqOptions.DEFAULTS
                        .withGroupSize(c.g())
                        .withBlockSize(c.b())
                        .withActOrder(c.act(), c.stat())
                        .withExactLossRows(16);
                Run run = Run.of(cuda, m, h, o);
                QuantizedLinear want = run.want().result().q();
                QuantizedLinear got = run.got().q();
                assertArrayEquals(want.gIdx(), got.gIdx(), what + ": g_idx");
                assertEquals(run.want().result().dampUsed(), run.got().dampUsed(), what + ": damp used");
                assertEquals(run.want().result().fallbacks(), run.got().fallbacks(), what + ": fallbacks");
                assertEquals(c.dead().length > 0, !run.got().fallbacks().isEmpty(), what + ": dead columns reported");
                if (c.act() && c.stat()) {
                    assertBits(want.scales(), got.scales(), want.scales().length, what + ": static scales");
                }
                assertBits(got.dequantize(), run.gotWq(), run.gotWq().length, what + ": resident Ŵ");
                int differ = 0;
                for (int i = 0; i < want.codes().length; i++) {
                    assertTrue(got.codes()[i] >= 0 && got.codes()[i] <= 15, what + ": code " + i + " in range");
                    differ += want.codes()[i] == got.codes()[i] ? 0 : 1;
                }
                System.out.printf("%s: %d of %d codes differ from the reference%n", what, differ, want.codes().length);
                assertTrue(differ <= want.codes().length / 1000, what + ": " + differ + " codes differ");
                float[] wz = m.toFloatArray();
                for (int d : c.dead()) {
                    for (int row = 0; row < c.n(); row++) {
                        wz[row * c.k() + d] = 0f;
                    }
                }
                double own = Gptq.proxyLoss(
                        wz,
                        run.gotWq(),
                        c.n(),
                        c.k(),
                        damped(h, c.k(), run.got().dampUsed()),
                        TWIN);
                double loss = run.got().proxyLoss();
                assertTrue(Math.abs(loss - own) <= 1e-3 * own, what + ": proxy loss " + loss + " vs " + own);
                double allowed = 1e-4 + 4.0 * differ / want.codes().length;
                double ref = run.want().result().proxyLoss();
                assertTrue(
                        Math.abs(loss - ref) <= allowed * ref,
                        what + ": proxy loss " + loss + " vs reference " + ref + " (allowed " + allowed + " relative)");
                double sampledOwn = Gptq.sampledLoss(m.toFloatArray(), got, h, 16, TWIN);
                double sampled = run.got().sampledLoss();
                assertTrue(
                        Math.abs(sampled - sampledOwn) <= 1e-8 * sampledOwn,
                        what + ": sampled loss " + sampled + " vs " + sampledOwn);
                double sampledRef = run.want().result().sampledLoss();
                assertTrue(
                        Math.abs(sampled - sampledRef) <= allowed * sampledRef,
                        what + ": sampled loss " + sampled + " vs reference " + sampledRef);
            }
        }
    }

    /**
     * An indefinite H (one diagonal entry −0.02 in 0.9·I + 0.01·GᵀG/rows, mean diagonal ≈ 0.903) fails at λ =
     * 0.01 and 0.02 (shift ≈ 0.009 and 0.018, below 0.02) and succeeds at 0.03 (0.027): the device follows
     * DampedCholesky's retries (fp64 after the first failure) to the same λ and the same report line.
     */
    @Test
    void quantizeRaisesTheDampLikeTheReference() {
        SplittableRandom r = new SplittableRandom(43);
        int n = 72;
        int k = 192;
        float[] h = hessian(r, k, new int[0]);
        for (int i = 0; i < k * k; i++) {
            h[i] *= 0.01f;
        }
        for (int i = 0; i < k; i++) {
            h[i * k + i] += 0.9f;
        }
        h[3 * k + 3] = -0.02f;
        Matrix m = weight(r, "f32", n, k, 64, false);
        GptqOptions o = GptqOptions.DEFAULTS.withGroupSize(64).withActOrder(true, false);
        for (CudaKernels cuda : devices()) {
            Run run = Run.of(cuda, m, h, o);
            String what = "damp retries on " + cuda.device().vendor.describe();
            assertEquals(0.03, run.want().result().dampUsed(), 1e-12, what + ": the case needs two retries");
            assertEquals(run.want().result().dampUsed(), run.got().dampUsed(), what);
            assertEquals(run.want().result().fallbacks(), run.got().fallbacks(), what);
            assertArrayEquals(run.want().result().q().gIdx(), run.got().q().gIdx(), what + ": g_idx");
        }
    }

    /**
     * The failures come with the reference's messages: a non-finite Hessian entry (named in the permuted H under
     * act-order), a static group whose weights are not finite, and a shape the group size does not divide.
     */
    @Test
    void quantizeFailsLikeTheReference() {
        SplittableRandom r = new SplittableRandom(44);
        CudaKernels cuda = GpuTesting.cuda(true);
        int n = 48;
        int k = 128;
        float[] h = hessian(r, k, new int[0]);
        h[9 * k + 5] = Float.NaN;
        h[5 * k + 9] = Float.NaN;
        Matrix m = weight(r, "f32", n, k, 32, false);
        GptqOptions act = GptqOptions.DEFAULTS.withGroupSize(32).withActOrder(true, false);
        assertSameFailure(cuda, m, h, act, "non-finite H");

        float[] w = m.toFloatArray();
        w[7 * k + 40] = Float.POSITIVE_INFINITY;
        w[3 * k + 50] = Float.NaN;
        GptqOptions stat = GptqOptions.DEFAULTS.withGroupSize(32).withActOrder(true, true);
        assertSameFailure(cuda, new Matrix.F32(w, n, k), hessian(r, k, new int[0]), stat, "static group not finite");

        assertSameFailure(cuda, m, hessian(r, k, new int[0]), GptqOptions.DEFAULTS.withGroupSize(48), "G ∤ K");
    }

    private static void assertSameFailure(CudaKernels cuda, Matrix m, float[] h, GptqOptions o, String what) {
        Device dev = cuda.device();
        IllegalArgumentException want = assertThrows(
                IllegalArgumentException.class,
                () -> REFERENCE.quantize(JAVA, JAVA.weight(m), JAVA.wrap(h.clone()), o),
                what + " (reference)");
        try (CudaWeight w = new CudaWeight(new DeviceMatmul(dev, false).upload(m), m.rows(), m.cols());
                CudaBuf hb = upload(dev, h)) {
            IllegalArgumentException got = assertThrows(
                    IllegalArgumentException.class, () -> gptqOf(cuda).quantize(NO_BACKEND, w, hb, o), what);
            assertEquals(want.getMessage(), got.getMessage(), what);
        }
    }

    /**
     * Below the default policy's minimum device work (k²·n/2 + k³/3 < 2²⁰ here), quantize downloads W and H and
     * runs the Java reference on the backend's CPU kernels: the same bits in everything, the loss included; Ŵ
     * resident on the device.
     */
    @Test
    void smallWorkRunsTheReferenceBitForBit() {
        SplittableRandom r = new SplittableRandom(45);
        CudaKernels cuda = new CudaKernels(CudaContext.get(), TWIN);
        int n = 48;
        int k = 64;
        assertTrue(cuda.small((long) k * k * n / 2 + (long) k * k * k / 3), "the case must be below the policy");
        for (String form : new String[] {"f32", "bf16", "w4"}) {
            Matrix m = weight(r, form, n, k, 32, true);
            float[] h = hessian(r, k, new int[] {10});
            GptqOptions o =
                    GptqOptions.DEFAULTS.withGroupSize(32).withBlockSize(24).withActOrder(true, false);
            Run run = Run.of(cuda, m, h, o);
            QuantizedLinear want = run.want().result().q();
            QuantizedLinear got = run.got().q();
            String what = "small " + form;
            assertArrayEquals(want.codes(), got.codes(), what + ": codes");
            assertBits(want.scales(), got.scales(), want.scales().length, what + ": scales");
            assertArrayEquals(want.gIdx(), got.gIdx(), what + ": g_idx");
            assertEquals(run.want().result().proxyLoss(), run.got().proxyLoss(), what + ": loss");
            assertEquals(run.want().result().fallbacks(), run.got().fallbacks(), what + ": fallbacks");
            float[] wantWq = JavaBackend.matrix(run.want().dequantized()).toFloatArray();
            assertBits(wantWq, run.gotWq(), wantWq.length, what + ": Ŵ");
        }
    }

    /** H + fp32(λ·mean(diag H))·I with dead entries (H_kk = 0) set to 1 first, the matrix DampedCholesky factors. */
    private static float[] damped(float[] h, int k, double lambda) {
        float[] hd = h.clone();
        double sum = 0;
        for (int i = 0; i < k; i++) {
            if (hd[i * k + i] == 0f) {
                hd[i * k + i] = 1f;
            }
            sum += hd[i * k + i];
        }
        float shift = (float) (lambda * (sum / k));
        for (int i = 0; i < k; i++) {
            hd[i * k + i] += shift;
        }
        return hd;
    }
}
