package dev.m2q.kernels;

import static dev.m2q.kernels.GpuTesting.TWIN;
import static dev.m2q.kernels.GpuTesting.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import dev.m2q.gptq.ActOrder;
import dev.m2q.gptq.DampedCholesky;
import dev.m2q.gptq.Gptq;
import dev.m2q.gptq.GptqCodes;
import dev.m2q.gptq.GptqKernels;
import dev.m2q.gptq.GptqProblem;
import dev.m2q.gptq.JavaGptqKernels;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** GPTQ's device steps against their Java twins: the Cholesky inverse and the column loop. */
@Tag("gpu")
class CudaGptqGpuTest {
    /** The Java twin of the GPTQ kernels, over GpuTesting's twin. */
    static final GptqKernels GPTQ_TWIN = new JavaGptqKernels(TWIN);

    /** The GPTQ kernels the CUDA backend offers, everything on the device. */
    static GptqKernels cudaGptq() {
        return assertInstanceOf(CudaGptqKernels.class, GptqKernels.of(GpuTesting.cuda(true)));
    }

    /** H = GᵀG / rows for G [k + 8, k] uniform: symmetric positive definite, [k, k] row-major. */
    static float[] spd(SplittableRandom r, int k) {
        int rows = k + 8;
        float[] g = uniform(r, rows * k, -1, 1);
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

    /** L⁻¹ of A + shift·I in double (Cholesky, then forward substitution): [k, k], lower triangular. */
    static double[] inverseFactorExact(float[] h, float shift, int k) {
        double[] l = new double[k * k];
        for (int j = 0; j < k; j++) {
            double d = (double) h[j * k + j] + shift;
            for (int p = 0; p < j; p++) {
                d -= l[j * k + p] * l[j * k + p];
            }
            l[j * k + j] = Math.sqrt(d);
            for (int i = j + 1; i < k; i++) {
                double s = h[j * k + i];
                for (int p = 0; p < j; p++) {
                    s -= l[i * k + p] * l[j * k + p];
                }
                l[i * k + j] = s / l[j * k + j];
            }
        }
        double[] x = new double[k * k];
        for (int i = 0; i < k; i++) {
            x[i * k + i] = 1 / l[i * k + i];
            for (int j = 0; j < i; j++) {
                double s = 0;
                for (int p = j; p < i; p++) {
                    s += l[i * k + p] * x[p * k + j];
                }
                x[i * k + j] = -s / l[i * k + i];
            }
        }
        return x;
    }

    /** The SPI's input: A's strict upper triangle in a, the lower triangle garbage (scratch), diag apart. */
    static float[] withScratchLower(float[] h, int k, SplittableRandom r) {
        float[] a = h.clone();
        for (int i = 0; i < k; i++) {
            for (int j = 0; j <= i; j++) {
                a[i * k + j] = (float) r.nextDouble();
            }
        }
        return a;
    }

    static double frobeniusRelative(float[] got, double[] want) {
        return GpuTesting.relativeNorm(got, want);
    }

    /**
     * choleskyInverse on an SPD matrix shifted by 5% of its mean diagonal (condition number below ~100), for one
     * block (64), one block plus a row (65), and several ragged blocks. fp32: the blocked factorization and
     * inversion in another order than the twin's, each within ~κ·k·2⁻²⁴ of the exact L⁻¹, expected ~1e-6
     * relative: ‖X − X_exact‖_F / ‖X_exact‖_F ≤ 1e-4, and the same against the twin's result with 2e-4. fp64:
     * the result is the exact one rounded to fp32 once, ≤ 1e-6. The strict upper triangle is exactly 0.
     */
    @Test
    void choleskyInverseMatchesTheExactFactorInBothPrecisions() {
        GptqKernels cuda = cudaGptq();
        SplittableRandom r = new SplittableRandom(31);
        for (int k : new int[] {64, 65, 200, 333}) {
            float[] h = spd(r, k);
            float[] diag = new float[k];
            double mean = 0;
            for (int i = 0; i < k; i++) {
                diag[i] = h[i * k + i];
                mean += diag[i] / k;
            }
            float shift = (float) (0.05 * mean);
            double[] exact = inverseFactorExact(h, shift, k);
            for (boolean fp64 : new boolean[] {false, true}) {
                String what = "choleskyInverse k " + k + (fp64 ? " fp64" : " fp32");
                float[] a = withScratchLower(h, k, r);
                assertTrue(cuda.choleskyInverse(a, diag.clone(), shift, k, fp64), what);
                for (int i = 0; i < k; i++) {
                    for (int j = i + 1; j < k; j++) {
                        assertEquals(0f, a[i * k + j], what + ": strict upper [" + i + ", " + j + "]");
                    }
                }
                double rel = frobeniusRelative(a, exact);
                assertTrue(rel <= (fp64 ? 1e-6 : 1e-4), what + ": relative error " + rel);
                float[] twin = withScratchLower(h, k, r);
                assertTrue(GPTQ_TWIN.choleskyInverse(twin, diag.clone(), shift, k, fp64), what + " (twin)");
                double[] twinD = new double[twin.length];
                for (int i = 0; i < twin.length; i++) {
                    twinD[i] = twin[i];
                }
                double vsTwin = frobeniusRelative(a, twinD);
                assertTrue(vsTwin <= (fp64 ? 2e-6 : 2e-4), what + ": relative difference to the twin " + vsTwin);
            }
        }
    }

    /**
     * A matrix with a negative eigenvalue (one diagonal entry −1, far below what its row can make up) fails in
     * both precisions and leaves the strict upper triangle and diag as they were.
     */
    @Test
    void choleskyInverseRefusesAnIndefiniteMatrixAndLeavesItsInput() {
        GptqKernels cuda = cudaGptq();
        SplittableRandom r = new SplittableRandom(32);
        for (int k : new int[] {65, 200}) {
            float[] h = spd(r, k);
            float[] diag = new float[k];
            for (int i = 0; i < k; i++) {
                diag[i] = h[i * k + i];
            }
            diag[k - 3] = -1f;
            for (boolean fp64 : new boolean[] {false, true}) {
                float[] a = withScratchLower(h, k, r);
                float[] before = a.clone();
                float[] d = diag.clone();
                assertFalse(cuda.choleskyInverse(a, d, 0f, k, fp64), "k " + k + " fp64 " + fp64);
                assertArrayEquals(diag, d, "diag unchanged");
                for (int i = 0; i < k; i++) {
                    for (int j = i + 1; j < k; j++) {
                        assertEquals(before[i * k + j], a[i * k + j], "strict upper [" + i + ", " + j + "] unchanged");
                    }
                }
            }
        }
    }

    /** One GPTQ problem as Gptq.quantize sets it up: W [n, k], H, the permutation, W1 and U. */
    record Problem(float[] w, float[] h, int n, int k, int groupSize, int[] perm, float[] wt, float[] u) {
        static Problem of(SplittableRandom r, int n, int k, int groupSize, boolean actOrder) {
            float[] w = uniform(r, n * k, -1, 1);
            float[] h = spd(r, k);
            int[] perm = actOrder ? ActOrder.permutation(h, k) : null;
            float[] wt = new float[k * n];
            for (int row = 0; row < n; row++) {
                for (int c = 0; c < k; c++) {
                    wt[c * n + row] = w[row * k + c];
                }
            }
            float[] hp = h;
            if (perm != null) {
                wt = ActOrder.permuteRows(wt, k, n, perm);
                hp = ActOrder.permuteSymmetric(h, k, perm);
            }
            float[] u = DampedCholesky.factor(hp, k, 0.01, TWIN).hinvUpper();
            return new Problem(w, h, n, k, groupSize, perm, wt, u);
        }

        /** Gptq's static scales: RTN's scale of each group of original input channels. */
        float[] staticScales() {
            float[] s = new float[k / groupSize * n];
            for (int g = 0; g < k / groupSize; g++) {
                for (int c = 0; c < n; c++) {
                    float amax = 0f;
                    for (int ch = g * groupSize; ch < (g + 1) * groupSize; ch++) {
                        amax = Math.max(amax, Math.abs(w[c * k + ch]));
                    }
                    s[g * n + c] = Rtn.scale(amax);
                }
            }
            return s;
        }
    }

    record Columns(int[] codes, float[] scales, int[] gIdx, double errSquares) {
        static Columns run(GptqKernels kernels, Problem p, int blockSize, boolean staticGroups) {
            GptqCodes c = kernels.columnLoop(new GptqProblem(
                    p.wt().clone(),
                    p.u(),
                    p.k(),
                    p.n(),
                    p.groupSize(),
                    blockSize,
                    p.perm(),
                    staticGroups ? p.staticScales() : null));
            return new Columns(c.codes(), c.scales(), c.gIdx(), c.errSquares());
        }

        double proxyLoss(Problem p) {
            float[] wq = new QuantizedLinear(p.n(), p.k(), p.groupSize(), codes, scales, gIdx).dequantize();
            return Gptq.proxyLoss(p.w(), wq, p.n(), p.k(), p.h(), TWIN);
        }
    }

    /**
     * The column loop: the device follows the twin's arithmetic (each W1 element receives the earlier positions'
     * errors in order, one FMA each, in the block or through the lazy update), so codes can differ only where a
     * different rounding of an update flips a tie w/s = m + ½: such flips must be a tiny fraction (≤ 0.1%), and the
     * proxy loss of the dequantized result, tr(ΔW·H·ΔWᵀ)/N, within 1e-4 relative of the twin's. g_idx is exact.
     * Cases: dynamic groups aligned with the blocks; act-order with B = 48, so groups start inside blocks and
     * span them; static groups with act-order; B above 384 (the kernel keeps the block's slice in global memory
     * instead of shared).
     */
    @Test
    void columnLoopMatchesTheTwin() {
        GptqKernels cuda = cudaGptq();
        SplittableRandom r = new SplittableRandom(33);
        // n, k, G, B, actOrder, staticGroups
        int[][] cases = {
            {130, 256, 128, 128, 0, 0}, {67, 384, 128, 48, 1, 0}, {64, 256, 64, 128, 1, 1}, {300, 512, 128, 600, 0, 0}
        };
        for (int[] s : cases) {
            Problem p = Problem.of(r, s[0], s[1], s[2], s[4] == 1);
            boolean staticGroups = s[5] == 1;
            Columns want = Columns.run(GPTQ_TWIN, p, s[3], staticGroups);
            Columns got = Columns.run(cuda, p, s[3], staticGroups);
            String what = "columnLoop " + Arrays.toString(s);
            assertArrayEquals(want.gIdx(), got.gIdx(), what + ": g_idx");
            int differ = 0;
            for (int i = 0; i < want.codes().length; i++) {
                assertTrue(got.codes()[i] >= 0 && got.codes()[i] <= 15, what + ": code " + i + " written, in range");
                differ += want.codes()[i] == got.codes()[i] ? 0 : 1;
            }
            System.out.printf("%s: %d of %d codes differ from the twin%n", what, differ, want.codes().length);
            assertTrue(differ <= want.codes().length / 1000, what + ": " + differ + " codes differ");
            double lw = want.proxyLoss(p);
            double lg = got.proxyLoss(p);
            assertTrue(Math.abs(lg - lw) <= 1e-4 * lw, what + ": proxy loss " + lg + " vs the twin's " + lw);
            // The loop's Σ Err²: the same U and the same update chains give the same errors, folded the same way,
            // so the same bits when no code flipped; else within the flips' share, as the proxy loss above.
            if (differ == 0) {
                assertEquals(want.errSquares(), got.errSquares(), what + ": Σ Err²");
            } else {
                double allowed = 1e-4 + 4.0 * differ / want.codes().length;
                assertTrue(Math.abs(got.errSquares() - want.errSquares()) <= allowed * want.errSquares(), what);
            }
        }
    }

    /**
     * At 8 bits the CUDA GPTQ kernels run the column loop on the CPU (gptq.cu is 4-bit), as for --clip-search: the
     * same codes, scales and Σ Err² as the Java loop bit for bit, codes over the 8-bit range.
     */
    @Test
    void eightBitColumnLoopFallsBackToTheJavaLoop() {
        GptqKernels cuda = cudaGptq();
        Problem p = Problem.of(new SplittableRandom(41), 96, 256, 128, true);
        GptqCodes want = GPTQ_TWIN.columnLoop(new GptqProblem(
                p.wt().clone(), p.u(), p.k(), p.n(), 128, 64, p.perm(), null, dev.m2q.core.quant.Bits.EIGHT, false));
        GptqCodes got = cuda.columnLoop(new GptqProblem(
                p.wt().clone(), p.u(), p.k(), p.n(), 128, 64, p.perm(), null, dev.m2q.core.quant.Bits.EIGHT, false));
        assertArrayEquals(want.codes(), got.codes());
        assertArrayEquals(want.scales(), got.scales());
        assertArrayEquals(want.gIdx(), got.gIdx());
        assertEquals(want.errSquares(), got.errSquares());
        assertTrue(Arrays.stream(got.codes()).anyMatch(c -> c > 15), "8-bit codes reach beyond the 4-bit range");
    }

    /**
     * With the clipping search (GPTQ's loop once per scale rule, each row keeping its best: GptqLoop.clipSearch) the
     * CUDA GPTQ kernels run the column loop on the CPU, the Java reference: the same codes, scales and Σ Err² bit
     * for bit, whatever the size (the problem is above the device threshold, so only the fallback explains it).
     */
    @Test
    void clipSearchColumnLoopFallsBackToTheJavaLoop() {
        GptqKernels cuda = cudaGptq();
        Problem p = Problem.of(new SplittableRandom(43), 96, 256, 128, true);
        GptqCodes want = GPTQ_TWIN.columnLoop(new GptqProblem(
                p.wt().clone(), p.u(), p.k(), p.n(), 128, 64, p.perm(), null, dev.m2q.core.quant.Bits.FOUR, true));
        GptqCodes got = cuda.columnLoop(new GptqProblem(
                p.wt().clone(), p.u(), p.k(), p.n(), 128, 64, p.perm(), null, dev.m2q.core.quant.Bits.FOUR, true));
        assertArrayEquals(want.codes(), got.codes());
        assertArrayEquals(want.scales(), got.scales());
        assertArrayEquals(want.gIdx(), got.gIdx());
        assertEquals(want.errSquares(), got.errSquares());
        GptqCodes plain = GPTQ_TWIN.columnLoop(new GptqProblem(
                p.wt().clone(), p.u(), p.k(), p.n(), 128, 64, p.perm(), null, dev.m2q.core.quant.Bits.FOUR, false));
        assertTrue(got.errSquares() <= plain.errSquares(), got.errSquares() + " vs plain " + plain.errSquares());
    }

    /**
     * A weight that is not finite when its group's scale is computed fails with Gptq.groupScales' message, naming
     * the first (position, output) the Java loop would meet; a group absmax whose scale overflows fp16 fails
     * with Rtn.scale's.
     */
    @Test
    void nonFiniteWeightsAndOverflowingScalesFailLikeTheJavaLoop() {
        GptqKernels cuda = cudaGptq();
        SplittableRandom r = new SplittableRandom(34);
        Problem p = Problem.of(r, 40, 256, 128, false);
        float[] wt = p.wt().clone();
        wt[130 * p.n() + 7] = Float.NaN; // position 130, output 7: seen at the group start 128
        wt[200 * p.n() + 3] = Float.POSITIVE_INFINITY; // same group, later position, earlier output
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> cuda.columnLoop(new GptqProblem(wt, p.u(), p.k(), p.n(), 128, 128, null, null)));
        assertEquals(
                "weight (input 200, output 3) became Infinity during GPTQ; the Hessian is ill-conditioned, try a"
                        + " larger --damp",
                e.getMessage());

        float[] big = p.wt().clone();
        big[5 * p.n() + 2] = 1e6f;
        String rtn = assertThrows(IllegalArgumentException.class, () -> Rtn.scale(1e6f))
                .getMessage();
        IllegalArgumentException o = assertThrows(
                IllegalArgumentException.class,
                () -> cuda.columnLoop(new GptqProblem(big, p.u(), p.k(), p.n(), 128, 128, null, null)));
        assertEquals(rtn, o.getMessage());
    }
}
