package dev.m2q.core.kernels;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.SplittableRandom;
import java.util.function.BiFunction;
import java.util.function.Function;

/**
 * The self-check before trust: before a run hands its work to an accelerated backend, every {@link Kernels}
 * operation runs once on small seeded inputs (aligned and ragged shapes, offsets, a NaN case) on the candidate and
 * on the Java reference, and the two results must agree within the operation's agreement class, the classes of
 * the {@link Kernels} javadoc and of the CUDA backend's class javadoc:
 *
 * <ul>
 *   <li><b>bit for bit</b>: gemmAcc, syrkUpper and absMaxColumns (exact or one fixed FMA chain per element, as the
 *       SPI prescribes), and the W4 matmul for 1..16 rows (the SPI's sequence);
 *   <li><b>a few ulps</b>: rmsNorm, rope, swiglu and axpy: the same fp32 operations, where a double exp, cos or sin
 *       from another library, a fused multiply-add or a double sum in another order can round one intermediate to
 *       its neighbour (each probe derives its bound, the same as the kernels module's gpu tests);
 *   <li><b>fp32 summation order</b>: dot, the fp32 and bf16-weight matmul below 16 rows, attention: |Δ| ≤
 *       2·γ_n·Σ|aᵢ·bᵢ| with γ_n = n·u / (1 − n·u), u = 2⁻²⁴ (Higham's bound for one sum of n products, once
 *       for each side);
 *   <li><b>bf16 operand rounding</b>: the bf16-weight matmul from 16 rows and the W4 matmul above 16 rows, which a
 *       device may run on tensor cores with x (and a dequantized W4 weight) rounded to bf16: 2⁻⁸ of Σ|xᵢ·wᵢ| per
 *       rounded operand, on top of the fp32 bound.
 * </ul>
 *
 * <p>Everywhere, NaN must appear exactly where the reference has it: a missed NaN (a max that drops it) and a NaN
 * the reference does not produce are both failures, as is an output element left unwritten (the candidate's
 * outputs start as NaN wherever the operation overwrites them).
 *
 * <p>The resident operations that the layer pass and decoding call ({@link Kernels#backend()}: write/read, copy,
 * add, scale, matmul, rmsNorm, rope with startPos and seqLen, attention, swiglu, syrkUpper, absMaxColumns) are
 * probed the same way, named "backend …": the candidate's backend against the reference's, on the host probes'
 * cases and bounds where the operation has a host twin (the inputs wrapped into buffers, the outputs read back),
 * bit for bit for the crossings, copy, add and scale (one fp32 operation each).
 *
 * <p>The probes are tiny (at most a few thousand multiply-adds each) so that the whole check costs milliseconds on
 * the CPU and a few kernel launches on a device. A backend that sends small calls to the CPU must hand the check
 * a form that does not ({@link KernelsProvider#openForSelfCheck}), or the check would test the CPU against itself.
 *
 * <p>Other modules add probes for the kernels they own through {@link ServiceLoader}: implement {@link Probes}
 * and list it in {@code META-INF/services/dev.m2q.core.kernels.KernelSelfCheck$Probes}; {@link #registered()}
 * runs them after the core probes.
 */
public final class KernelSelfCheck {
    /** fp32 unit roundoff: round to nearest is within half an ulp, 2⁻²⁴ relative. */
    static final double U = 0x1p-24;
    /** bf16 unit roundoff: 8 significant bits, 2⁻⁸ relative (half an ulp of 2⁻⁷). */
    static final double U_BF16 = 0x1p-8;

    private static final long SEED = 0x5e1fc4ecL;

    /** One kernel's check. */
    public interface Probe {
        /** The operation's name as users read it in the failure line, e.g. "matmul". */
        String kernel();

        /**
         * Runs the kernel on its seeded inputs on both backends. Empty when they agree; otherwise one line saying
         * which case, which element, both values and the tolerance. May throw whatever the candidate throws.
         */
        Optional<String> run(Kernels candidate, Kernels reference);
    }

    /** A module's probes, found through {@link ServiceLoader} (see the class javadoc). */
    public interface Probes {
        List<Probe> probes();
    }

    /**
     * What a check found.
     *
     * @param failure empty when every probe agreed; otherwise "kernel case: what differed", one line
     * @param probes the probes run (up to and including a failing one)
     */
    public record Outcome(Optional<String> failure, int probes, Duration time) {
        public boolean passed() {
            return failure.isEmpty();
        }
    }

    private KernelSelfCheck() {}

    /** The probes of core's own {@link Kernels} operations. */
    public static List<Probe> coreProbes() {
        return List.of(
                probe("dot", KernelSelfCheck::dot),
                probe("axpy", KernelSelfCheck::axpy),
                probe("syrkUpper", KernelSelfCheck::syrkUpper),
                probe("gemmAcc", KernelSelfCheck::gemmAcc),
                probe("matmul", KernelSelfCheck::matmul),
                probe("rmsNorm", KernelSelfCheck::rmsNorm),
                probe("rope", KernelSelfCheck::rope),
                probe("attention", KernelSelfCheck::attention),
                probe("swiglu", KernelSelfCheck::swiglu),
                probe("absMaxColumns", KernelSelfCheck::absMaxColumns),
                probe("backend write/read", KernelSelfCheck::backendCrossings),
                probe("backend copy", KernelSelfCheck::backendCopy),
                probe("backend add", KernelSelfCheck::backendAdd),
                probe("backend scale", KernelSelfCheck::backendScale),
                probe("backend matmul", KernelSelfCheck::backendMatmul),
                probe("backend rmsNorm", (c, r) -> rmsNorm(onBackend(c, false), onBackend(r, false))),
                probe("backend rope", KernelSelfCheck::backendRope),
                probe("backend attention", (c, r) -> attention(onBackend(c, false), onBackend(r, false))),
                probe("backend swiglu", (c, r) -> swiglu(onBackend(c, false), onBackend(r, false))),
                probe("backend syrkUpper", (c, r) -> syrkUpper(onBackend(c, false), onBackend(r, false))),
                probe("backend absMaxColumns", (c, r) -> absMaxColumns(onBackend(c, false), onBackend(r, false))));
    }

    /** The core probes, then those of every {@link Probes} on the class path. */
    public static List<Probe> registered() {
        List<Probe> all = new ArrayList<>(coreProbes());
        for (Probes p : ServiceLoader.load(Probes.class)) {
            all.addAll(p.probes());
        }
        return List.copyOf(all);
    }

    /**
     * Runs {@code probes} in order and stops at the first disagreement; an exception from a probe counts as one
     * ("kernel: threw …").
     */
    public static Outcome check(Kernels candidate, Kernels reference, List<Probe> probes) {
        long t0 = System.nanoTime();
        int ran = 0;
        for (Probe p : probes) {
            ran++;
            Optional<String> failure;
            try {
                failure = p.run(candidate, reference);
            } catch (RuntimeException e) {
                failure = Optional.of("threw " + e.getClass().getSimpleName() + ": " + e.getMessage());
            }
            if (failure.isPresent()) {
                return new Outcome(
                        Optional.of(p.kernel() + " " + failure.get()), ran, Duration.ofNanos(System.nanoTime() - t0));
            }
        }
        return new Outcome(Optional.empty(), ran, Duration.ofNanos(System.nanoTime() - t0));
    }

    private static Probe probe(String kernel, BiFunction<Kernels, Kernels, Optional<String>> body) {
        return new Probe() {
            @Override
            public String kernel() {
                return kernel;
            }

            @Override
            public Optional<String> run(Kernels candidate, Kernels reference) {
                return body.apply(candidate, reference);
            }
        };
    }

    // ---- the probes -------------------------------------------------------------------------------------------

    /** fp32 summation order; the NaN case must give NaN. */
    private static Optional<String> dot(Kernels cand, Kernels ref) {
        int[][] cases = {{64, 0, 0, -1}, {37, 3, 5, -1}, {19, 1, 2, 7}}; // n, aOff, bOff, NaN at a[aOff + i]
        SplittableRandom rng = new SplittableRandom(SEED);
        for (int[] c : cases) {
            int n = c[0];
            float[] a = uniform(rng, n + c[1] + 3, 1f);
            float[] b = uniform(rng, n + c[2] + 3, 1f);
            if (c[3] >= 0) {
                a[c[1] + c[3]] = Float.NaN;
            }
            double abs = 0;
            for (int i = 0; i < n; i++) {
                abs += Math.abs((double) a[c[1] + i] * b[c[2] + i]);
            }
            float got = cand.dot(a, c[1], b, c[2], n);
            float want = ref.dot(a, c[1], b, c[2], n);
            Optional<String> f = compare(
                    "(n " + n + (c[3] >= 0 ? ", a NaN" : "") + "): result",
                    0,
                    new float[] {got},
                    new float[] {want},
                    new double[] {2 * gamma(n) * abs},
                    "fp32 summation order");
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /**
     * A few ulps: y + α·x may be fused or rounded twice; each side is within u·(|α·x| + |y|) of the exact value
     * per rounding, so the two within 4u·(|α·x| + |y|). Elements outside [yOff, yOff + n) must keep their bits.
     */
    private static Optional<String> axpy(Kernels cand, Kernels ref) {
        int[][] cases = {{64, 0, 0, -1}, {37, 2, 5, -1}, {13, 0, 3, 4}}; // n, xOff, yOff, NaN at x[xOff + i]
        SplittableRandom rng = new SplittableRandom(SEED + 1);
        for (int[] c : cases) {
            int n = c[0];
            float alpha = (float) rng.nextDouble(-2, 2);
            float[] x = uniform(rng, n + c[1] + 2, 1f);
            float[] y = uniform(rng, n + c[2] + 4, 1f);
            if (c[3] >= 0) {
                x[c[1] + c[3]] = Float.NaN;
            }
            double[] bound = new double[y.length];
            for (int i = 0; i < n; i++) {
                bound[c[2] + i] = 4 * U * (Math.abs((double) alpha * x[c[1] + i]) + Math.abs(y[c[2] + i]));
            }
            float[] got = y.clone();
            float[] want = y.clone();
            cand.axpy(alpha, x, c[1], got, c[2], n);
            ref.axpy(alpha, x, c[1], want, c[2], n);
            Optional<String> f = compare(
                    "(n " + n + ", y offset " + c[2] + (c[3] >= 0 ? ", a NaN" : "") + ")",
                    0,
                    got,
                    want,
                    bound,
                    "one fused or two roundings");
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /** Bit for bit (the SPI's one FMA chain per element), the strict lower triangle of c untouched. */
    private static Optional<String> syrkUpper(Kernels cand, Kernels ref) {
        int[][] cases = {{7, 13, -1}, {16, 16, -1}, {5, 9, 22}}; // rows, k, NaN at x[i]
        SplittableRandom rng = new SplittableRandom(SEED + 2);
        for (int[] c : cases) {
            int rows = c[0];
            int k = c[1];
            float[] x = uniform(rng, rows * k, 1f);
            if (c[2] >= 0) {
                x[c[2]] = Float.NaN;
            }
            float[] c0 = uniform(rng, k * k, 4f);
            float[] got = c0.clone();
            float[] want = c0.clone();
            cand.syrkUpper(x, rows, k, got);
            ref.syrkUpper(x, rows, k, want);
            Optional<String> f =
                    exact("(x [" + rows + ", " + k + "]" + (c[2] >= 0 ? ", a NaN" : "") + "): c", k, got, want);
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /** Bit for bit (one in-order FMA chain per element), with offsets, padded strides and a transposed A. */
    private static Optional<String> gemmAcc(Kernels cand, Kernels ref) {
        // m, n, depth, transposed A, NaN at a[i]
        int[][] cases = {{5, 11, 9, 0, -1}, {16, 16, 16, 1, -1}, {3, 7, 5, 0, 6}};
        SplittableRandom rng = new SplittableRandom(SEED + 3);
        for (int[] c : cases) {
            int m = c[0];
            int n = c[1];
            int depth = c[2];
            boolean t = c[3] == 1;
            int aOff = 2;
            int aRow = t ? 1 : depth;
            int aCol = t ? m : 1;
            int bOff = 3;
            int ldb = n + 2;
            int cOff = 1;
            int ldc = n + 3;
            float[] a = uniform(rng, aOff + m * depth + 1, 1f);
            if (c[4] >= 0) {
                a[aOff + c[4]] = Float.NaN;
            }
            float[] b = uniform(rng, bOff + depth * ldb, 1f);
            float[] c0 = uniform(rng, cOff + m * ldc + 2, 2f);
            float[] got = c0.clone();
            float[] want = c0.clone();
            cand.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, got, cOff, ldc);
            ref.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, want, cOff, ldc);
            String what = "(" + m + "×" + depth + " · " + depth + "×" + n + (t ? ", A transposed" : "")
                    + (c[4] >= 0 ? ", a NaN" : "") + "): c";
            Optional<String> f = exact(what, 0, got, want);
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /**
     * fp32 weights: fp32 summation order over k products and the bias, 2·γ_{k+1}·Σ|x·w|. bf16 weights: the same
     * below 16 rows; from 16 rows x may be rounded to bf16 (2⁻⁸ relative) and tensor cores may truncate their fp32
     * accumulation (2·γ_{k+2} on that side, γ_{k+2} on the reference's). W4: bit for bit up to 16 rows (the SPI's
     * sequence); above, x and the dequantized weight may both be rounded to bf16: 2·2⁻⁸ + 2⁻¹⁶ (the product of
     * the two roundings). The bounds of the kernels module's CudaProductsGpuTest. Every output must be written.
     */
    private static Optional<String> matmul(Kernels cand, Kernels ref) {
        SplittableRandom rng = new SplittableRandom(SEED + 4);
        record Case(String what, Matrix w, int rows, boolean bias, int nanAt, double operandRounding) {}
        List<Case> cases = List.of(
                new Case("f32 [13, 37], 3 rows, bias", f32(rng, 13, 37), 3, true, -1, 0),
                new Case("f32 [32, 64], 16 rows", f32(rng, 32, 64), 16, false, -1, 0),
                new Case("f32 [13, 37], 4 rows, a NaN in row 1", f32(rng, 13, 37), 4, false, 37 + 5, 0),
                new Case("bf16 [13, 37], 5 rows, bias", bf16(rng, 13, 37), 5, true, -1, 0),
                new Case("bf16 [24, 40], 20 rows, bias", bf16(rng, 24, 40), 20, true, -1, U_BF16),
                new Case("W4 [13, 40] g8, 3 rows, bias", w4(rng, 13, 40, 8, false), 3, true, -1, -1),
                new Case("W4 [16, 64] g16 act-order, 16 rows", w4(rng, 16, 64, 16, true), 16, false, -1, -1),
                new Case("W4 [13, 40] g8, 4 rows, a NaN in row 2", w4(rng, 13, 40, 8, false), 4, false, 80 + 9, -1),
                new Case(
                        "W4 [13, 40] g8 act-order, 20 rows, bias",
                        w4(rng, 13, 40, 8, true),
                        20,
                        true,
                        -1,
                        2 * U_BF16 + 0x1p-16));
        for (Case c : cases) {
            int n = c.w.rows();
            int k = c.w.cols();
            float[] x = uniform(rng, c.rows * k, 1f);
            if (c.nanAt >= 0) {
                x[c.nanAt] = Float.NaN;
            }
            float[] bias = c.bias ? uniform(rng, n, 0.5f) : null;
            float[] got = new float[c.rows * n];
            Arrays.fill(got, Float.NaN);
            float[] want = new float[c.rows * n];
            cand.matmul(x, c.rows, c.w, bias, got);
            ref.matmul(x, c.rows, c.w, bias, want);
            Optional<String> f;
            if (c.operandRounding < 0) {
                f = exact("(" + c.what + "): y", n, got, want);
            } else {
                float[] w = c.w.toFloatArray();
                double[] bound = new double[got.length];
                for (int t = 0; t < c.rows; t++) {
                    for (int j = 0; j < n; j++) {
                        double abs = bias == null ? 0 : Math.abs(bias[j]);
                        for (int i = 0; i < k; i++) {
                            abs += Math.abs((double) x[t * k + i] * w[j * k + i]);
                        }
                        bound[t * n + j] =
                                (c.operandRounding + (c.operandRounding == 0 ? 2 * gamma(k + 1) : 3 * gamma(k + 2)))
                                        * abs;
                    }
                }
                String why = c.operandRounding == 0 ? "fp32 summation order" : "bf16 operands, fp32 summation order";
                f = compare("(" + c.what + "): y", n, got, want, bound, why);
            }
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /**
     * A few ulps: only inv_r may differ, by one ulp (2⁻²³ relative), when the double means of squares summed in
     * another order round to different fp32 values; through the two rounded products that moves an output by at
     * most 3·2⁻²³ relative, so the bound is 2⁻²¹·|out| (CudaLayerGpuTest's). In place (out = x) and not.
     */
    private static Optional<String> rmsNorm(Kernels cand, Kernels ref) {
        int[][] cases = {{3, 37, 0, -1}, {2, 64, 1, -1}, {3, 16, 0, 16 + 3}}; // rows, dim, in place, NaN at x[i]
        SplittableRandom rng = new SplittableRandom(SEED + 5);
        for (int[] c : cases) {
            int rows = c[0];
            int dim = c[1];
            float[] x = uniform(rng, rows * dim, 3f);
            if (c[3] >= 0) {
                x[c[3]] = Float.NaN;
            }
            float[] weight = uniform(rng, dim, 2f);
            float[] got;
            float[] want;
            if (c[2] == 1) {
                got = x.clone();
                want = x.clone();
                cand.rmsNorm(got, rows, dim, weight, 1e-6f, got);
                ref.rmsNorm(want, rows, dim, weight, 1e-6f, want);
            } else {
                got = new float[rows * dim];
                Arrays.fill(got, Float.NaN);
                want = new float[rows * dim];
                cand.rmsNorm(x, rows, dim, weight, 1e-6f, got);
                ref.rmsNorm(x, rows, dim, weight, 1e-6f, want);
            }
            String what = "(" + rows + " × " + dim + (c[2] == 1 ? ", in place" : "") + (c[3] >= 0 ? ", a NaN" : "")
                    + "): out";
            Optional<String> f = compare(what, dim, got, want, relative(want, 0x1p-21), "2⁻²¹ relative");
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /**
     * cos and sin may round to a neighbour (another library's double cos of the same fp32 angle), which moves
     * a·c − b·s by up to u·(|a| + |b|); the products and the sum round once more on each side: 8u·(|a| + |b|) of
     * the pair. Positions include a large one, where the angle's reduction matters.
     */
    private static Optional<String> rope(Kernels cand, Kernels ref) {
        // rows, heads, headDim, positions
        int[][][] cases = {{{3, 2, 8}, {0, 7, 4097}}, {{2, 3, 6}, {1, 300}}};
        SplittableRandom rng = new SplittableRandom(SEED + 6);
        for (int[][] c : cases) {
            int rows = c[0][0];
            int heads = c[0][1];
            int d = c[0][2];
            int[] positions = c[1];
            int half = d / 2;
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = (float) Math.pow(10000.0, -2.0 * i / d);
            }
            float[] x = uniform(rng, rows * heads * d, 2f);
            double[] bound = new double[x.length];
            for (int h = 0; h < rows * heads; h++) {
                for (int i = 0; i < half; i++) {
                    double pair = Math.abs(x[h * d + i]) + Math.abs(x[h * d + i + half]);
                    bound[h * d + i] = 8 * U * pair;
                    bound[h * d + i + half] = 8 * U * pair;
                }
            }
            float[] got = x.clone();
            float[] want = x.clone();
            cand.rope(got, rows, heads, d, invFreq, positions);
            ref.rope(want, rows, heads, d, invFreq, positions);
            Optional<String> f = compare(
                    "(" + rows + " rows, " + heads + " heads of " + d + ", positions " + Arrays.toString(positions)
                            + "): x",
                    heads * d,
                    got,
                    want,
                    bound,
                    "a neighbouring cos or sin");
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /**
     * fp32 summation order through the softmax: a score is off by δ ≤ (γ_d + u)·S (S = scale·d·max|q|·max|k|), an
     * unnormalized weight by 2δ + u and the normalized one by 4δ + 3u relative, the output's sum of T + 2 rounded
     * terms by γ_{T+2} more; twice that (both sides) times max|v|, and never below CudaLayerGpuTest's 2e-5·max|v|
     * (a wrong key, head or mask moves an output by ~0.1·max|v|). Batched prefill and a KV cache step, grouped
     * heads, a head size that is not a power of two.
     */
    private static Optional<String> attention(Kernels cand, Kernels ref) {
        // nSeq, seqLen, startPos, heads, kvHeads, headDim
        int[][] cases = {{2, 3, 0, 4, 2, 8}, {1, 2, 3, 2, 1, 6}};
        SplittableRandom rng = new SplittableRandom(SEED + 7);
        for (int[] c : cases) {
            int nSeq = c[0];
            int seqLen = c[1];
            int startPos = c[2];
            int heads = c[3];
            int kvHeads = c[4];
            int d = c[5];
            int total = startPos + seqLen;
            float[] q = uniform(rng, nSeq * seqLen * heads * d, 1f);
            float[] k = uniform(rng, nSeq * total * kvHeads * d, 1f);
            float[] v = uniform(rng, nSeq * total * kvHeads * d, 1f);
            float[] got = new float[q.length];
            Arrays.fill(got, Float.NaN);
            float[] want = new float[q.length];
            cand.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, got);
            ref.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, d, want);
            double s = d * maxAbs(q) * maxAbs(k) / Math.sqrt(d);
            double delta = (gamma(d) + U) * s;
            double tol = maxAbs(v) * Math.max(2e-5, 2 * (4 * delta + 3 * U + gamma(total + 2)));
            double[] bound = new double[got.length];
            Arrays.fill(bound, tol);
            String what = "(" + nSeq + " seq × " + seqLen + " tokens from position " + startPos + ", " + heads + "/"
                    + kvHeads + " heads of " + d + "): out";
            Optional<String> f = compare(what, heads * d, got, want, bound, "fp32 summation order");
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /**
     * A few ulps: only exp (in double, then fp32) may round to its neighbour in another library; that moves 1 + e
     * by ≤ 2⁻²² relative with its rounding, the quotient and the product add 2⁻²³ each: ≤ 2⁻²¹, so the bound is
     * 2⁻²⁰·|out| (CudaLayerGpuTest's). Gates whose exp overflows or vanishes, signed zeros, and a NaN.
     */
    private static Optional<String> swiglu(Kernels cand, Kernels ref) {
        SplittableRandom rng = new SplittableRandom(SEED + 8);
        float[] wide = uniform(rng, 37, 8f);
        float[] extreme = {30f, -30f, 80f, -80f, 100f, -100f, 0f, -0f, 1e-3f, -1e-3f, 5f, -5f, 0.5f, -0.5f, 12f, -12f};
        float[] withNan = uniform(rng, 13, 4f);
        withNan[3] = Float.NaN;
        for (float[] gate : List.of(wide, extreme, withNan)) {
            float[] up = uniform(rng, gate.length, 2f);
            float[] got = gate.clone();
            float[] want = gate.clone();
            cand.swiglu(got, up, gate.length);
            ref.swiglu(want, up, gate.length);
            String what = gate == extreme ? "(16 gates of ±0..100)" : "(n " + gate.length + ")";
            Optional<String> f = compare(what + ": gate", 0, got, want, relative(want, 0x1p-20), "2⁻²⁰ relative");
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /**
     * Bit for bit (max is exact), a running maximum over values already in out, a NaN that must win its column,
     * and more than 64 rows (a device splits the rows into partial maxima).
     */
    private static Optional<String> absMaxColumns(Kernels cand, Kernels ref) {
        int[][] cases = {{5, 13, 3, 2, -1}, {70, 16, 0, 0, -1}, {6, 9, 1, 0, 2 * 9 + 4}}; // rows, cols, xOff, outOff,
        // NaN at x[xOff + i]
        SplittableRandom rng = new SplittableRandom(SEED + 9);
        for (int[] c : cases) {
            int rows = c[0];
            int cols = c[1];
            float[] x = uniform(rng, c[2] + rows * cols + 1, 1f);
            x[c[2]] = -0f;
            if (c[4] >= 0) {
                x[c[2] + c[4]] = Float.NaN;
            }
            float[] out0 = uniform(rng, c[3] + cols + 1, 1f);
            for (int i = 0; i < out0.length; i++) {
                out0[i] = Math.abs(out0[i]) * 1.1f;
            }
            float[] got = out0.clone();
            float[] want = out0.clone();
            cand.absMaxColumns(x, c[2], rows, cols, got, c[3]);
            ref.absMaxColumns(x, c[2], rows, cols, want, c[3]);
            Optional<String> f =
                    exact("(" + rows + " × " + cols + (c[4] >= 0 ? ", a NaN" : "") + "): out", 0, got, want);
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    // ---- the probes of the resident operations (Kernels#backend) --------------------------------------------

    /**
     * The crossings, bit for bit: alloc gives zeros, wrap then take returns the values, write and read move
     * ranges at offsets and leave the rest of the buffer (and of the host array) as it was, and update keeps what
     * its function writes. Only the candidate runs (the Java backend's crossings are copies by definition); the
     * expected values are the host arrays themselves.
     */
    private static Optional<String> backendCrossings(Kernels cand, Kernels ref) {
        Backend b = cand.backend();
        SplittableRandom rng = new SplittableRandom(SEED + 10);
        try (Backend.Buf zeros = b.alloc(37)) {
            float[] got = new float[37];
            Arrays.fill(got, Float.NaN);
            b.read(zeros, 0, got, 0, 37);
            Optional<String> f = exact("(alloc 37): value", 0, got, new float[37]);
            if (f.isPresent()) {
                return f;
            }
        }
        float[] host = uniform(rng, 41, 2f);
        float[] patch = uniform(rng, 20, 2f);
        patch[7] = Float.NaN;
        patch[8] = -0f;
        Backend.Buf buf = b.wrap(host.clone());
        try {
            b.write(patch, 3, buf, 5, 13); // buf[5, 18) = patch[3, 16)
            float[] want = host.clone();
            System.arraycopy(patch, 3, want, 5, 13);
            float[] window = uniform(rng, 30, 1f);
            float[] wantWindow = window.clone();
            b.read(buf, 2, window, 4, 21); // window[4, 25) = buf[2, 23)
            System.arraycopy(want, 2, wantWindow, 4, 21);
            Optional<String> f =
                    exact("(read [2, 23) into a host array at 4 after a write at 5): host", 0, window, wantWindow);
            if (f.isPresent()) {
                return f;
            }
            b.update(buf, a -> a[40] = a[0] * 3f);
            want[40] = want[0] * 3f;
            float[] got = b.take(buf);
            buf = null;
            return exact("(wrap 41, write, update, take): value", 0, got, want);
        } finally {
            if (buf != null) {
                buf.close();
            }
        }
    }

    /** Bit for bit: a range from one buffer into another at other offsets, the rest of the destination untouched. */
    private static Optional<String> backendCopy(Kernels cand, Kernels ref) {
        SplittableRandom rng = new SplittableRandom(SEED + 11);
        float[] src = uniform(rng, 29, 1f);
        src[10] = Float.NaN;
        float[] dst = uniform(rng, 33, 1f);
        Function<Backend, float[]> run = b -> {
            try (Backend.Buf s = b.wrap(src.clone())) {
                Backend.Buf d = b.wrap(dst.clone());
                b.copy(s, 4, d, 9, 19);
                return b.take(d);
            }
        };
        float[] got = run.apply(cand.backend());
        float[] want = run.apply(ref.backend());
        return exact("(19 values from 4 to 9, a NaN): dst", 0, got, want);
    }

    /** Bit for bit (one fp32 addition): into a third buffer, and in place (out = a), on n below the length. */
    private static Optional<String> backendAdd(Kernels cand, Kernels ref) {
        SplittableRandom rng = new SplittableRandom(SEED + 12);
        float[] a = uniform(rng, 37, 4f);
        float[] c = uniform(rng, 37, 4f);
        a[5] = Float.NaN;
        a[6] = -0f;
        c[6] = -0f;
        a[7] = Float.MAX_VALUE;
        c[7] = Float.MAX_VALUE;
        for (boolean inPlace : new boolean[] {false, true}) {
            Function<Backend, float[]> run = b -> {
                try (Backend.Buf x = b.wrap(a.clone());
                        Backend.Buf y = b.wrap(c.clone())) {
                    if (inPlace) {
                        b.add(x, y, x, 33);
                        return readAll(b, x);
                    }
                    Backend.Buf out = b.wrap(nans(37));
                    b.add(x, y, out, 33);
                    return b.take(out);
                }
            };
            Optional<String> f = exact(
                    "(n 33 of 37" + (inPlace ? ", in place" : "") + "): out",
                    0,
                    run.apply(cand.backend()),
                    run.apply(ref.backend()));
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    /** Bit for bit (one fp32 product), on n below the length. */
    private static Optional<String> backendScale(Kernels cand, Kernels ref) {
        SplittableRandom rng = new SplittableRandom(SEED + 13);
        float[] x = uniform(rng, 37, 4f);
        x[4] = Float.NaN;
        x[5] = -0f;
        x[6] = Float.MIN_VALUE;
        float f = (float) rng.nextDouble(0.1, 3);
        Function<Backend, float[]> run = b -> {
            Backend.Buf buf = b.wrap(x.clone());
            b.scale(buf, 31, f);
            return b.take(buf);
        };
        return exact("(n 31 of 37, by " + f + "): x", 0, run.apply(cand.backend()), run.apply(ref.backend()));
    }

    /**
     * The host probe's cases and bounds on resident buffers and weights (weight(Matrix)), then once more with the
     * fp32 weights made from a buffer (weight(Buf, rows, cols)).
     */
    private static Optional<String> backendMatmul(Kernels cand, Kernels ref) {
        Optional<String> f = matmul(onBackend(cand, false), onBackend(ref, false));
        if (f.isPresent()) {
            return f;
        }
        return matmul(onBackend(cand, true), onBackend(ref, true)).map(s -> "with fp32 weights from buffers " + s);
    }

    /**
     * The host rope probe's bound, row r at position startPos + r % seqLen: two sequences of three rows (a
     * batched prefill), then two rows after 4097 cached ones (a decode step, large angles).
     */
    private static Optional<String> backendRope(Kernels cand, Kernels ref) {
        // rows, heads, headDim, startPos, seqLen
        int[][] cases = {{6, 2, 8, 0, 3}, {2, 3, 6, 4097, 2}};
        SplittableRandom rng = new SplittableRandom(SEED + 14);
        for (int[] c : cases) {
            int rows = c[0];
            int heads = c[1];
            int d = c[2];
            int half = d / 2;
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = (float) Math.pow(10000.0, -2.0 * i / d);
            }
            float[] x = uniform(rng, rows * heads * d, 2f);
            double[] bound = new double[x.length];
            for (int h = 0; h < rows * heads; h++) {
                for (int i = 0; i < half; i++) {
                    double pair = Math.abs(x[h * d + i]) + Math.abs(x[h * d + i + half]);
                    bound[h * d + i] = 8 * U * pair;
                    bound[h * d + i + half] = 8 * U * pair;
                }
            }
            Function<Backend, float[]> run = b -> {
                try (Backend.Buf f = b.wrap(invFreq.clone())) {
                    Backend.Buf buf = b.wrap(x.clone());
                    b.rope(buf, rows, heads, d, f, c[3], c[4]);
                    return b.take(buf);
                }
            };
            Optional<String> f = compare(
                    "(" + rows + " rows, " + heads + " heads of " + d + ", from position " + c[3] + ", sequences of "
                            + c[4] + "): x",
                    heads * d,
                    run.apply(cand.backend()),
                    run.apply(ref.backend()),
                    bound,
                    "a neighbouring cos or sin");
            if (f.isPresent()) {
                return f;
            }
        }
        return Optional.empty();
    }

    private static float[] readAll(Backend b, Backend.Buf x) {
        float[] a = new float[Math.toIntExact(x.length())];
        b.read(x, 0, a, 0, a.length);
        return a;
    }

    private static float[] nans(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    /** The host probes' operations run on {@code k.backend()}'s buffers (see {@link OnBackend}). */
    private static Kernels onBackend(Kernels k, boolean f32WeightsFromBuffers) {
        return new OnBackend(k, f32WeightsFromBuffers);
    }

    /**
     * {@link Kernels} over a {@link Backend}, so that the host probes' cases and bounds check the resident
     * operations: each call wraps copies of its arrays (outputs too, so an element the backend does not write
     * keeps its NaN poison), runs the backend's operation and reads the outputs back into the caller's arrays. An
     * output that is also an input (rmsNorm with out = x) is one buffer. The operations the backend does not have
     * (dot, axpy, gemmAcc, and rope with a positions array: the backend's takes startPos and seqLen and has its own
     * probe) are the kernels' own, inherited from {@link ForwardingKernels}.
     */
    private static final class OnBackend extends ForwardingKernels {
        private final Backend b;
        private final boolean f32WeightsFromBuffers;

        OnBackend(Kernels kernels, boolean f32WeightsFromBuffers) {
            super(kernels);
            this.b = kernels.backend();
            this.f32WeightsFromBuffers = f32WeightsFromBuffers;
        }

        @Override
        public String name() {
            return b.name();
        }

        @Override
        public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
            int n = w.rows();
            int k = w.cols();
            Backend.Weight weight = f32WeightsFromBuffers && w instanceof Matrix.F32 f
                    ? b.weight(b.wrap(Arrays.copyOf(f.data(), n * k)), n, k)
                    : b.weight(w);
            try (weight;
                    Backend.Buf xb = b.wrap(Arrays.copyOf(x, rows * k));
                    Backend.Buf bb = bias == null ? null : b.wrap(Arrays.copyOf(bias, n));
                    Backend.Buf yb = b.wrap(Arrays.copyOf(y, rows * n))) {
                b.matmul(xb, rows, weight, bb, yb);
                b.read(yb, 0, y, 0, rows * n);
            }
        }

        @Override
        public void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
            try (Backend.Buf xb = b.wrap(Arrays.copyOf(x, rows * dim));
                    Backend.Buf wb = b.wrap(Arrays.copyOf(weight, dim));
                    Backend.Buf ob = x == out ? null : b.wrap(Arrays.copyOf(out, rows * dim))) {
                Backend.Buf o = ob == null ? xb : ob;
                b.rmsNorm(xb, rows, dim, wb, eps, o);
                b.read(o, 0, out, 0, rows * dim);
            }
        }

        @Override
        public void attention(
                float[] q,
                float[] k,
                float[] v,
                int nSeq,
                int seqLen,
                int startPos,
                int heads,
                int kvHeads,
                int headDim,
                float[] out) {
            try (Backend.Buf qb = b.wrap(q.clone());
                    Backend.Buf kb = b.wrap(k.clone());
                    Backend.Buf vb = b.wrap(v.clone());
                    Backend.Buf ob = b.wrap(out.clone())) {
                b.attention(qb, kb, vb, nSeq, seqLen, startPos, heads, kvHeads, headDim, ob);
                b.read(ob, 0, out, 0, out.length);
            }
        }

        @Override
        public void swiglu(float[] gate, float[] up, int n) {
            try (Backend.Buf gb = b.wrap(gate.clone());
                    Backend.Buf ub = b.wrap(up.clone())) {
                b.swiglu(gb, ub, n);
                b.read(gb, 0, gate, 0, gate.length);
            }
        }

        @Override
        public void syrkUpper(float[] x, int rows, int k, float[] c) {
            try (Backend.Buf xb = b.wrap(Arrays.copyOf(x, rows * k));
                    Backend.Buf cb = b.wrap(Arrays.copyOf(c, k * k))) {
                b.syrkUpper(xb, rows, k, cb);
                b.read(cb, 0, c, 0, k * k);
            }
        }

        /** The backend has no offsets: the slices travel, and out's slice comes back to its place. */
        @Override
        public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
            try (Backend.Buf xb = b.wrap(Arrays.copyOfRange(x, xOff, xOff + rows * cols));
                    Backend.Buf ob = b.wrap(Arrays.copyOfRange(out, outOff, outOff + cols))) {
                b.absMaxColumns(xb, rows, cols, ob);
                b.read(ob, 0, out, outOff, cols);
            }
        }
    }

    // ---- comparison -------------------------------------------------------------------------------------------

    /** Same bits everywhere (every NaN counted as one). */
    static Optional<String> exact(String what, int cols, float[] got, float[] want) {
        return compare(what, cols, got, want, new double[got.length], "bit-exact operation");
    }

    /**
     * Element by element: NaN exactly where {@code want} has NaN; an infinity only where it has the same one;
     * elsewhere |got − want| ≤ bound[i], or the same bits where bound[i] is 0. The first disagreement becomes
     * the failure line, its index as [row, column] when {@code cols} > 0.
     */
    static Optional<String> compare(String what, int cols, float[] got, float[] want, double[] bound, String why) {
        for (int i = 0; i < want.length; i++) {
            float g = got[i];
            float w = want[i];
            boolean ok;
            if (Float.isNaN(w) || Float.isNaN(g) || bound[i] == 0 || Float.isInfinite(w) || Float.isInfinite(g)) {
                ok = Float.floatToIntBits(g) == Float.floatToIntBits(w) || (bound[i] > 0 && g == w);
            } else {
                ok = Math.abs((double) g - w) <= bound[i];
            }
            if (!ok) {
                String at = cols > 0 ? "[" + i / cols + ", " + i % cols + "]" : "[" + i + "]";
                String detail;
                if (Float.isNaN(w) != Float.isNaN(g)) {
                    detail = Float.isNaN(w) ? " (a NaN input must give NaN)" : " (a NaN the reference does not give)";
                } else if (bound[i] == 0) {
                    detail = " (" + why + ")";
                } else {
                    detail = String.format(
                            java.util.Locale.ROOT, ": |Δ| %.3g > %.3g (%s)", Math.abs((double) g - w), bound[i], why);
                }
                return Optional.of(what + at + " = " + g + " where the Java kernels give " + w + detail);
            }
        }
        return Optional.empty();
    }

    /** γ_n = n·u / (1 − n·u): the relative error bound of a sum of n rounded terms. */
    static double gamma(int n) {
        return n * U / (1 - n * U);
    }

    /**
     * rel·|want| per element: 0, so the same bits, where want is 0, NaN or infinite (a zero is exact in both:
     * x = 0, or a product with 0).
     */
    private static double[] relative(float[] want, double rel) {
        double[] b = new double[want.length];
        for (int i = 0; i < want.length; i++) {
            b[i] = Float.isFinite(want[i]) ? rel * Math.abs(want[i]) : 0;
        }
        return b;
    }

    private static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /** Seeded values in [−scale, scale). */
    private static float[] uniform(SplittableRandom rng, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rng.nextDouble(-scale, scale);
        }
        return a;
    }

    private static Matrix.F32 f32(SplittableRandom rng, int rows, int cols) {
        return new Matrix.F32(uniform(rng, rows * cols, 1f), rows, cols);
    }

    /** bf16 weights: seeded fp32 values truncated to their upper 16 bits. */
    private static Matrix.Bf16 bf16(SplittableRandom rng, int rows, int cols) {
        MemorySegment seg = MemorySegment.ofArray(new byte[2 * rows * cols]);
        for (int i = 0; i < rows * cols; i++) {
            float v = (float) rng.nextDouble(-1, 1);
            seg.set(Matrix.LE_SHORT, 2L * i, (short) (Float.floatToIntBits(v) >>> 16));
        }
        return new Matrix.Bf16(seg, rows, cols);
    }

    /** Seeded W4 codes and scales; act-order: g_idx a seeded permutation of the groups' channels. */
    private static Matrix.W4 w4(SplittableRandom rng, int n, int k, int g, boolean actOrder) {
        int[] qweight = new int[k / 8 * n];
        for (int c = 0; c < k; c++) {
            for (int j = 0; j < n; j++) {
                qweight[(c / 8) * n + j] |= rng.nextInt(16) << (4 * (c % 8));
            }
        }
        float[] scales = new float[k / g * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) rng.nextDouble(0.01, 0.1);
        }
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = c / g;
        }
        if (actOrder) {
            for (int i = k - 1; i > 0; i--) {
                int j = rng.nextInt(i + 1);
                int t = gIdx[i];
                gIdx[i] = gIdx[j];
                gIdx[j] = t;
            }
        }
        return Matrix.W4.of(qweight, scales, gIdx, n, k, g);
    }
}
