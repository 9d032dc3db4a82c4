package dev.m2q.kernels;

import static dev.m2q.kernels.GpuTesting.U32;
import static dev.m2q.kernels.GpuTesting.U_BF16;
import static dev.m2q.kernels.GpuTesting.assertBits;
import static dev.m2q.kernels.GpuTesting.assertWithin;
import static dev.m2q.kernels.GpuTesting.poisoned;
import static dev.m2q.kernels.GpuTesting.uniform;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every {@link Backend} operation of {@link CudaBackend} against {@link JavaBackend} over {@link VectorKernels} on
 * seeded inputs, aligned and ragged shapes, outputs poisoned with NaN where the operation overwrites them; then a
 * resident decoder layer (prefill and decode steps with a KV cache) on both. Each test states its tolerance: bit
 * for bit where the device runs the Java backend's own fp32 operations in the same order, else the bounds of
 * {@link CudaLayerGpuTest} and {@link CudaProductsGpuTest} for the same kernels.
 */
@Tag("gpu")
class CudaBackendGpuTest {
    private static final JavaBackend JAVA = new JavaBackend(VectorKernels.INSTANCE);

    private static Backend cuda(boolean tensorCores) {
        return GpuTesting.cuda(tensorCores).backend();
    }

    /** run on a backend; what it returns is read out on the host. */
    private static float[] both(Backend b, Function<Backend, float[]> run) {
        return run.apply(b);
    }

    private static double[] widen(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    @Test
    void oneBackendPerCudaKernelsSharingItsDevice() {
        CudaKernels k = GpuTesting.cuda(true);
        assertSame(k.backend(), k.backend());
        assertEquals("cuda", k.backend().name());
        Buf foreign = JAVA.alloc(4);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> k.backend().scale(foreign, 4, 2f));
        assertTrue(e.getMessage().contains("does not belong to the CUDA backend"), e.getMessage());
    }

    /**
     * The crossings and copy move bits: alloc gives zeros, wrap/take round-trips, write and read move ranges at
     * offsets and nothing else, inspect shows the buffer, update keeps what its function wrote, copy moves a range
     * between offsets within and across buffers; ragged lengths and an empty buffer.
     */
    @Test
    void crossingsAndCopyMoveBitsExactly() {
        Backend cuda = cuda(true);
        SplittableRandom r = new SplittableRandom(41);
        for (int n : new int[] {0, 1, 1001, 1 << 20}) {
            try (Buf z = cuda.alloc(n)) {
                float[] got = poisoned(n);
                cuda.read(z, 0, got, 0, n);
                assertBits(new float[n], got, n, "alloc " + n);
            }
            float[] host = uniform(r, n, -3, 3);
            if (n > 2) {
                host[1] = Float.NaN;
                host[2] = -0f;
            }
            assertBits(host, cuda.take(cuda.wrap(host.clone())), n, "wrap/take " + n);
        }
        float[] host = uniform(r, 1001, -1, 1);
        float[] patch = uniform(r, 400, -1, 1);
        try (Buf b = cuda.wrap(host.clone())) {
            cuda.write(patch, 17, b, 333, 301);
            float[] want = host.clone();
            System.arraycopy(patch, 17, want, 333, 301);
            float[] window = poisoned(700);
            cuda.read(b, 300, window, 50, 600);
            float[] wantWindow = poisoned(700);
            System.arraycopy(want, 300, wantWindow, 50, 600);
            assertBits(wantWindow, window, 700, "read after write");
            float[][] seen = new float[1][];
            cuda.inspect(b, a -> seen[0] = a.clone());
            assertBits(want, seen[0], want.length, "inspect");
            cuda.update(b, a -> a[1000] = -a[0]);
            want[1000] = -want[0];
            try (Buf other = cuda.wrap(uniform(r, 1500, -1, 1))) {
                float[] o = new float[1500];
                cuda.read(other, 0, o, 0, 1500);
                cuda.copy(b, 5, other, 777, 600);
                System.arraycopy(want, 5, o, 777, 600);
                cuda.copy(other, 777, other, 0, 100); // within one buffer, disjoint ranges
                System.arraycopy(o, 777, o, 0, 100);
                assertBits(o, readAll(cuda, other), 1500, "copy");
            }
            assertBits(want, readAll(cuda, b), want.length, "update");
        }
    }

    private static float[] readAll(Backend b, Buf x) {
        float[] a = new float[Math.toIntExact(x.length())];
        b.read(x, 0, a, 0, a.length);
        return a;
    }

    /** add and scale: one fp32 operation per element, as the Java backend's loops: bit for bit, in place too. */
    @Test
    void addAndScaleEqualTheJavaBackendBitForBit() {
        Backend cuda = cuda(true);
        SplittableRandom r = new SplittableRandom(42);
        for (int n : new int[] {1, 1000, 1_000_003}) {
            float[] a = uniform(r, n + 5, -1e3, 1e3);
            float[] c = uniform(r, n + 5, -1e3, 1e3);
            a[0] = Float.NaN;
            if (n > 3) {
                a[1] = -0f;
                c[1] = -0f;
                a[2] = Float.MAX_VALUE;
                c[2] = Float.MAX_VALUE;
                a[3] = Float.MIN_VALUE;
            }
            float f = (float) r.nextDouble(-3, 3);
            Function<Backend, float[]> add = b -> {
                try (Buf x = b.wrap(a.clone());
                        Buf y = b.wrap(c.clone())) {
                    Buf out = b.wrap(poisoned(n + 5));
                    b.add(x, y, out, n);
                    b.add(x, y, y, n); // out = b
                    float[] o = b.take(out);
                    float[] inPlace = readAll(b, y);
                    float[] all = Arrays.copyOf(o, 2 * (n + 5));
                    System.arraycopy(inPlace, 0, all, n + 5, n + 5);
                    return all;
                }
            };
            float[] want = both(JAVA, add);
            assertBits(want, both(cuda, add), want.length, "add n " + n);
            Function<Backend, float[]> scale = b -> {
                Buf x = b.wrap(a.clone());
                b.scale(x, n, f);
                return b.take(x);
            };
            want = both(JAVA, scale);
            assertBits(want, both(cuda, scale), want.length, "scale n " + n + " by " + f);
        }
    }

    /**
     * matmul on resident weights, every path, with CudaProductsGpuTest's bounds (and its shapes): fp32 and bf16
     * weights without tensor cores within 2·1.01·(k + 2)·2⁻²⁴·Σ|x·w| of the Java backend (each side within half of
     * it of the exact sum); bf16 with tensor cores from 16 rows within (2⁻⁸ + 3.01·(k + 2)·2⁻²⁴)·Σ|x·w| (x rounded
     * to bf16, the accumulations of both sides); W4 for 1..16 rows bit for bit (the SPI's sequence); W4 above 16
     * rows within (2·2⁻⁸ + 2⁻¹⁶ + 2·(k + 2)·2⁻²⁴)·Σ|x·w| of the exact product of the dequantized weight with
     * tensor cores, 1.01·(k + 2)·2⁻²⁴·Σ|x·w| without. A weight made from a buffer (weight(Buf, rows, cols)) gives
     * the bits of the same values as a Matrix.F32.
     */
    @Test
    void matmulOnResidentWeightsAgreesWithTheJavaBackend() {
        SplittableRandom r = new SplittableRandom(43);
        for (boolean tc : new boolean[] {false, true}) {
            Backend cuda = cuda(tc);
            for (int[] s : CudaProductsGpuTest.DENSE) {
                int rows = s[0];
                int n = s[1];
                int k = s[2];
                float[] x = uniform(r, rows * k, -1, 1);
                float[] bias = rows % 2 == 1 ? uniform(r, n, -1, 1) : null;
                float[] wf = uniform(r, n * k, -1, 1);
                for (Matrix w : List.of(GpuTesting.bf16(r, n, k), new Matrix.F32(wf, n, k))) {
                    checkMatmul(cuda, tc, x, rows, w, bias);
                }
                // fp32 weight from a buffer: the same device values as the Matrix.F32, so the same bits.
                Function<Backend, float[]> viaBuffer =
                        b -> matmul(b, x, rows, b.weight(b.wrap(wf.clone()), n, k), bias);
                Function<Backend, float[]> viaMatrix =
                        b -> matmul(b, x, rows, b.weight(new Matrix.F32(wf, n, k)), bias);
                float[] want = both(cuda, viaMatrix);
                assertBits(
                        want,
                        both(cuda, viaBuffer),
                        want.length,
                        "weight from a buffer [" + rows + ", " + n + ", " + k + "]");
            }
            for (int[] s : new int[][] {{1, 130, 384}, {3, 33, 256}, {16, 64, 1056}, {17, 130, 384}, {40, 64, 1024}}) {
                int rows = s[0];
                int n = s[1];
                int k = s[2];
                for (boolean actOrder : new boolean[] {false, true}) {
                    int[] g = actOrder ? GpuTesting.shuffledGroups(r, k, 32) : GpuTesting.sequentialGroups(k, 32);
                    Matrix.W4 w = GpuTesting.w4(r, n, k, 32, g);
                    float[] x = uniform(r, rows * k, -1, 1);
                    checkMatmul(cuda, tc, x, rows, w, uniform(r, n, -1, 1));
                }
            }
        }
    }

    private static float[] matmul(Backend b, float[] x, int rows, Backend.Weight w, float[] bias) {
        try (w;
                Buf xb = b.wrap(x.clone());
                Buf bb = bias == null ? null : b.wrap(bias.clone())) {
            Buf y = b.wrap(poisoned(rows * w.rows()));
            b.matmul(xb, rows, w, bb, y);
            return b.take(y);
        }
    }

    private static void checkMatmul(Backend cuda, boolean tc, float[] x, int rows, Matrix w, float[] bias) {
        int n = w.rows();
        int k = w.cols();
        String what = w.getClass().getSimpleName() + " [" + rows + ", " + n + ", " + k + "] tensor cores " + tc;
        float[] got = matmul(cuda, x, rows, cuda.weight(w), bias);
        float[] want = matmul(JAVA, x, rows, JAVA.weight(w), bias);
        if (w instanceof Matrix.W4 && rows <= 16) {
            assertBits(want, got, want.length, what);
            return;
        }
        double[] exact = new double[rows * n];
        double[] scale = new double[rows * n];
        if (w instanceof Matrix.W4 q) {
            // Above 16 rows: against the exact product of the dequantized weight (exact in fp32), as
            // CudaProductsGpuTest does (the Java W4 sequence's own error is relative to its group sums, not Σ|x·w|).
            CudaProductsGpuTest.exact(x, rows, new Matrix.F32(q.dequantize(), n, k), bias, exact, scale);
            double u = tc ? 2 * U_BF16 + U_BF16 * U_BF16 + 2.0 * (k + 2) * U32 : 1.01 * (k + 2) * U32;
            double[] tol = new double[scale.length];
            for (int i = 0; i < tol.length; i++) {
                tol[i] = u * scale[i];
            }
            assertWithin(got, exact, tol, what + " vs exact");
            return;
        }
        CudaProductsGpuTest.exact(x, rows, w, bias, exact, scale);
        // The Java backend is within 1.01·(k + 2)·2⁻²⁴·Σ|x·w| of the exact sum; the device within the same (fp32)
        // or within 2⁻⁸ + 2·(k + 2)·2⁻²⁴ of it (bf16 x on the tensor cores, whose accumulation may truncate).
        double java = 1.01 * (k + 2) * U32;
        boolean tensorCores = tc && rows >= 16;
        double u = java + (tensorCores ? U_BF16 + 2.0 * (k + 2) * U32 : java);
        if (w instanceof Matrix.F32) {
            u = 2 * java;
        }
        double[] tol = new double[scale.length];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = u * scale[i];
        }
        assertWithin(got, widen(want), tol, what);
    }

    /**
     * rmsNorm: CudaLayerGpuTest's bound, 2⁻²¹·|out| (only inv_r may differ, by one ulp); in place and not.
     * swiglu: 2⁻²⁰·|out| (only exp may round to its neighbour).
     */
    @Test
    void rmsNormAndSwigluWithinAFewUlps() {
        Backend cuda = cuda(true);
        SplittableRandom r = new SplittableRandom(44);
        for (int[] s : new int[][] {{1, 64}, {7, 1000}, {300, 4097}}) {
            int rows = s[0];
            int dim = s[1];
            float[] x = uniform(r, rows * dim, -3, 3);
            float[] w = uniform(r, dim, 0.5, 1.5);
            for (boolean inPlace : new boolean[] {false, true}) {
                Function<Backend, float[]> run = b -> {
                    try (Buf wb = b.wrap(w.clone())) {
                        Buf xb = b.wrap(x.clone());
                        if (inPlace) {
                            b.rmsNorm(xb, rows, dim, wb, 1e-6f, xb);
                            return b.take(xb);
                        }
                        try (xb) {
                            Buf out = b.wrap(poisoned(rows * dim));
                            b.rmsNorm(xb, rows, dim, wb, 1e-6f, out);
                            return b.take(out);
                        }
                    }
                };
                float[] want = both(JAVA, run);
                double[] tol = new double[want.length];
                for (int i = 0; i < want.length; i++) {
                    tol[i] = 0x1p-21 * Math.abs(want[i]);
                }
                assertWithin(
                        both(cuda, run), widen(want), tol, "rmsNorm [" + rows + ", " + dim + "] in place " + inPlace);
            }
        }
        for (int n : new int[] {1, 1000, 1_000_003}) {
            float[] gate = uniform(r, n, -12, 12);
            float[] up = uniform(r, n, -2, 2);
            Function<Backend, float[]> run = b -> {
                try (Buf ub = b.wrap(up.clone())) {
                    Buf g = b.wrap(gate.clone());
                    b.swiglu(g, ub, n);
                    return b.take(g);
                }
            };
            float[] want = both(JAVA, run);
            double[] tol = new double[n];
            for (int i = 0; i < n; i++) {
                tol[i] = 0x1p-20 * Math.abs(want[i]);
            }
            assertWithin(both(cuda, run), widen(want), tol, "swiglu n " + n);
        }
    }

    /**
     * rope with row r at startPos + r % seqLen: CudaLayerGpuTest's bound against the Java backend, 2⁻²¹·(|a| + |b|)
     * (cos and sin may round to a neighbour); and bit for bit the host-array m2q_rope given those positions (the
     * same rotation on the device). Batched sequences from 0, and new rows after a long cache.
     */
    @Test
    void ropeFromStartPosAndSeqLen() {
        CudaKernels kernels = GpuTesting.cuda(true);
        Backend cuda = kernels.backend();
        SplittableRandom r = new SplittableRandom(45);
        // rows, heads, headDim, startPos, seqLen
        for (int[] s :
                new int[][] {{12, 3, 64, 0, 4}, {33, 4, 128, 0, 33}, {1, 2, 16, 131000, 1}, {5, 7, 96, 4093, 5}}) {
            int rows = s[0];
            int heads = s[1];
            int d = s[2];
            int half = d / 2;
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = (float) (1.0 / Math.pow(10000.0, (2.0 * i) / d));
            }
            float[] x = uniform(r, rows * heads * d, -2, 2);
            Function<Backend, float[]> run = b -> {
                try (Buf f = b.wrap(invFreq.clone())) {
                    Buf xb = b.wrap(x.clone());
                    b.rope(xb, rows, heads, d, f, s[3], s[4]);
                    return b.take(xb);
                }
            };
            float[] got = both(cuda, run);
            float[] want = both(JAVA, run);
            double[] tol = new double[want.length];
            for (int h = 0; h < rows * heads; h++) {
                for (int i = 0; i < half; i++) {
                    double t = 0x1p-21 * (Math.abs(x[h * d + i]) + Math.abs(x[h * d + i + half]));
                    tol[h * d + i] = t;
                    tol[h * d + i + half] = t;
                }
            }
            String what = "rope " + Arrays.toString(s);
            assertWithin(got, widen(want), tol, what);
            int[] positions = new int[rows];
            for (int t = 0; t < rows; t++) {
                positions[t] = s[3] + t % s[4];
            }
            float[] host = x.clone();
            kernels.rope(host, rows, heads, d, invFreq, positions);
            assertBits(host, got, host.length, what + " vs m2q_rope");
        }
    }

    /**
     * attention: CudaLayerGpuTest's cases and bound, each side within 1e-5·max|v| of the exact attention, so the
     * two within 2e-5 (max|v| = 1); a head size above 256 takes the CPU fallback.
     */
    @Test
    void attentionWithinFp32Rounding() {
        Backend cuda = cuda(true);
        SplittableRandom r = new SplittableRandom(46);
        // nSeq, seqLen, startPos, heads, kvHeads, headDim
        int[][] cases = {
            {3, 17, 0, 4, 2, 64},
            {1, 5, 40, 8, 1, 128},
            {2, 3, 7, 2, 2, 96},
            {1, 1, 300, 4, 4, 256},
            {2, 33, 0, 6, 3, 20},
            {1, 3, 2, 2, 1, 320}
        };
        for (int[] s : cases) {
            float[] q = uniform(r, s[0] * s[1] * s[3] * s[5], -1, 1);
            float[] k = uniform(r, s[0] * (s[2] + s[1]) * s[4] * s[5], -1, 1);
            float[] v = uniform(r, k.length, -1, 1);
            Function<Backend, float[]> run = b -> {
                try (Buf qb = b.wrap(q.clone());
                        Buf kb = b.wrap(k.clone());
                        Buf vb = b.wrap(v.clone())) {
                    Buf out = b.wrap(poisoned(q.length));
                    b.attention(qb, kb, vb, s[0], s[1], s[2], s[3], s[4], s[5], out);
                    return b.take(out);
                }
            };
            double[] tol = new double[q.length];
            Arrays.fill(tol, 2e-5);
            assertWithin(both(cuda, run), widen(both(JAVA, run)), tol, "attention " + Arrays.toString(s));
        }
    }

    /**
     * syrkUpper: per element the FMA chain over the rows from 0f, then one addition into c (the SPI's arithmetic,
     * m2q_syrk_upper_add_f32): the Java backend's bits, c's strict lower triangle untouched, −0 in c turned into +0
     * by the addition as in Java, also for 0 rows. absMaxColumns: exact (a maximum), running over out, NaN wins its
     * column, more rows than one partial pass holds.
     */
    @Test
    void syrkUpperAndAbsMaxColumnsEqualTheJavaBackendBitForBit() {
        Backend cuda = cuda(true);
        SplittableRandom r = new SplittableRandom(47);
        for (int[] s : new int[][] {{7, 13}, {0, 9}, {200, 129}, {64, 300}, {2048, 256}}) {
            int rows = s[0];
            int k = s[1];
            float[] x = uniform(r, rows * k, -1, 1);
            float[] c0 = uniform(r, k * k, -4, 4);
            c0[0] = -0f;
            Function<Backend, float[]> run = b -> {
                try (Buf xb = b.wrap(x.clone())) {
                    Buf c = b.wrap(c0.clone());
                    b.syrkUpper(xb, rows, k, c);
                    b.syrkUpper(xb, rows, k, c); // a second chunk adds its own sum
                    return b.take(c);
                }
            };
            float[] want = both(JAVA, run);
            assertBits(want, both(cuda, run), want.length, "syrkUpper [" + rows + ", " + k + "]");
        }
        for (int[] s : new int[][] {{5, 13}, {70, 16}, {10_000, 257}, {1, 1}}) {
            int rows = s[0];
            int cols = s[1];
            float[] x = uniform(r, rows * cols, -1, 1);
            x[0] = -0f;
            if (rows * cols > 40) {
                x[37] = Float.NaN;
            }
            float[] out0 = uniform(r, cols, 0, 1.1);
            Function<Backend, float[]> run = b -> {
                try (Buf xb = b.wrap(x.clone())) {
                    Buf out = b.wrap(out0.clone());
                    b.absMaxColumns(xb, rows, cols, out);
                    return b.take(out);
                }
            };
            float[] want = both(JAVA, run);
            assertBits(want, both(cuda, run), want.length, "absMaxColumns [" + rows + ", " + cols + "]");
        }
    }

    /**
     * freeBytes is cuMemGetInfo's: positive, within the device, and lower by at least most of a 512 MiB buffer
     * while it lives. An allocation larger than the device fails with CudaException, one line naming cuMemAlloc and
     * CUDA_ERROR_OUT_OF_MEMORY (what the cli's Failures reports).
     */
    @Test
    void freeBytesAndOutOfMemory() {
        Backend cuda = cuda(true);
        CudaContext ctx = CudaContext.get();
        long before = cuda.freeBytes();
        assertTrue(before > 0 && before <= ctx.totalMemory(), before + " free of " + ctx.totalMemory());
        try (Buf big = cuda.alloc(128L << 20)) {
            long during = cuda.freeBytes();
            assertTrue(before - during >= 448L << 20, before + " then " + during + " with 512 MiB allocated");
        }
        CudaException e = assertThrows(CudaException.class, () -> cuda.alloc(ctx.totalMemory() / 4 + 1));
        assertTrue(e.getMessage().contains("CUDA_ERROR_OUT_OF_MEMORY"), e.getMessage());
        assertTrue(e.getMessage().contains("cuMemAlloc"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }

    /** DecoderLayerTest's configuration (hidden 32, intermediate 96, 4 heads over 2 KV heads of 8). */
    static final ModelConfig CFG = ModelConfig.parse(Map.of(
            "architectures", List.of("Qwen2ForCausalLM"),
            "hidden_size", 32L,
            "intermediate_size", 96L,
            "num_hidden_layers", 1L,
            "num_attention_heads", 4L,
            "num_key_value_heads", 2L,
            "rms_norm_eps", 1e-6,
            "rope_theta", 10000.0,
            "vocab_size", 50L));

    private static Matrix.F32 mat(SplittableRandom r, int rows, int cols) {
        float[] d = new float[rows * cols];
        double s = 1 / Math.sqrt(cols);
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) (r.nextGaussian() * s);
        }
        return new Matrix.F32(d, rows, cols);
    }

    private static float[] vec(SplittableRandom r, int n, double mean, double sd) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (mean + sd * r.nextGaussian());
        }
        return v;
    }

    /**
     * The resident forward on CUDA (weights uploaded once, activations and the KV cache in device memory) against
     * the Java backend: a 20-token prefill into the cache (the tiled / cuBLAS products), then three one-token
     * decode steps reading it (the matvecs, attention over the cache), and a batch of two sequences without a
     * cache. Tolerance: DecoderLayerTest holds the Java layer within 2e-5 + 2e-5·|y| of the float64 definition at
     * this configuration; every CUDA operation it calls obeys the same fp32 bounds (the tests above), so the two
     * are within 4e-5 + 4e-5·|y| of each other. A wrong cache offset, mask or position moves outputs by O(0.1).
     */
    @Test
    void residentDecoderLayerWithKvCacheAgreesWithTheJavaBackend() {
        SplittableRandom r = new SplittableRandom(48);
        int h = CFG.hiddenSize();
        int q = CFG.qDim();
        int kv = CFG.kvDim();
        int in = CFG.intermediateSize();
        DecoderLayer.Weights w = new DecoderLayer.Weights(
                vec(r, h, 1.0, 0.2),
                mat(r, q, h),
                vec(r, q, 0, 0.1),
                mat(r, kv, h),
                vec(r, kv, 0, 0.1),
                mat(r, kv, h),
                vec(r, kv, 0, 0.1),
                mat(r, h, q),
                vec(r, h, 1.0, 0.2),
                mat(r, in, h),
                mat(r, in, h),
                mat(r, h, in));
        int prefill = 20;
        int steps = 3;
        float[] tokens = vec(r, (prefill + steps) * h, 0, 1);
        float[] batch = vec(r, 2 * 9 * h, 0, 1);
        CudaKernels kernels = GpuTesting.cuda(true);
        try (DecoderLayer onCuda = new DecoderLayer(CFG, 0, w, kernels);
                DecoderLayer onJava = new DecoderLayer(CFG, 0, w, VectorKernels.INSTANCE)) {
            assertSame(kernels.backend(), onCuda.backend());
            List<float[]> got = run(onCuda, tokens, prefill, steps, batch);
            List<float[]> want = run(onJava, tokens, prefill, steps, batch);
            for (int i = 0; i < want.size(); i++) {
                float[] y = want.get(i);
                double[] tol = new double[y.length];
                for (int j = 0; j < y.length; j++) {
                    tol[j] = 4e-5 + 4e-5 * Math.abs(y[j]);
                }
                String what = i == 0 ? "prefill" : i <= steps ? "decode step " + i : "batch of two sequences";
                assertWithin(got.get(i), widen(y), tol, what);
            }
        }
    }

    /** The prefill's output, each decode step's, and the batch's, read out at the end of each pass. */
    private static List<float[]> run(DecoderLayer layer, float[] tokens, int prefill, int steps, float[] batch) {
        Backend b = layer.backend();
        int h = CFG.hiddenSize();
        DecoderLayer.Resident rw = layer.resident();
        List<float[]> outs = new java.util.ArrayList<>();
        try (KvCache cache = new KvCache(b, CFG, prefill + steps)) {
            try (Buf x = b.wrap(Arrays.copyOf(tokens, prefill * h))) {
                outs.add(b.take(layer.forward(rw, x, 1, prefill, 0, cache, LayerObserver.NONE)));
            }
            for (int s = 0; s < steps; s++) {
                int pos = prefill + s;
                try (Buf x = b.wrap(Arrays.copyOfRange(tokens, pos * h, (pos + 1) * h))) {
                    outs.add(b.take(layer.forward(rw, x, 1, 1, pos, cache, LayerObserver.NONE)));
                }
            }
        }
        try (Buf x = b.wrap(batch.clone())) {
            outs.add(b.take(layer.forward(rw, x, 2, 9, 0, null, LayerObserver.NONE)));
        }
        return outs;
    }
}
