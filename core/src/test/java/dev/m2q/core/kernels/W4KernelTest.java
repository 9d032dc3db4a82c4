package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The W4A16 matmul: {@link VectorKernels} (packed words decoded in registers) against its {@link ScalarKernels}
 * twin, which must agree bit for bit since both follow the sequence defined in {@link Kernels#matmul}; both
 * against dequantize-then-multiply in double; and every code at every nibble position against
 * {@link Matrix.W4#get}.
 */
class W4KernelTest {
    private static final double U = Math.ulp(1.0f) / 2;

    /** How g_idx assigns input channels to groups. */
    enum GIdx {
        /** k / G: act-order off (the one-token fast path when rows = 1). */
        MONOTONIC,
        /** k / G shuffled: dynamic act-order groups, each still G channels. */
        PERMUTED,
        /** Any group for any channel: uneven, possibly empty groups (the most general g_idx W4 accepts). */
        RANDOM
    }

    @ParameterizedTest
    @CsvSource({
        // rows, N, K, G, g_idx, bias, tiny x
        "1, 64, 256, 32, MONOTONIC, false, false",
        "1, 256, 512, 128, MONOTONIC, true, false",
        "1, 100, 256, 128, MONOTONIC, true, false",
        "1, 7, 64, 16, MONOTONIC, false, false",
        "1, 130, 256, 64, PERMUTED, true, false",
        "1, 96, 256, 32, RANDOM, false, false",
        "1, 80, 256, 32, MONOTONIC, true, true",
        "3, 64, 256, 32, MONOTONIC, true, false",
        "3, 33, 128, 8, PERMUTED, false, false",
        "17, 130, 512, 128, MONOTONIC, false, false",
        "17, 48, 256, 64, PERMUTED, true, false",
        "64, 200, 256, 32, MONOTONIC, true, false",
        "64, 16, 384, 128, RANDOM, true, false",
        "70, 37, 128, 32, PERMUTED, false, true",
        // 2..8 rows (a speculative verify of k + 1 tokens): each word decoded once per pass of up to 4 rows; the 2-
        // and 4-row register tiles, two 4-row passes from 5 rows, spare rows (3, 5, 6, 7), a ragged vector tail after
        // the
        // tiles (N = 208 = 13 vectors), a scalar tail (N = 100), and tiny x falling back to the buffered path
        "2, 208, 256, 32, MONOTONIC, true, false",
        "3, 100, 512, 128, MONOTONIC, false, false",
        "4, 208, 256, 64, MONOTONIC, true, false",
        "5, 100, 256, 32, MONOTONIC, true, false",
        "6, 208, 128, 16, MONOTONIC, false, false",
        "7, 96, 256, 128, MONOTONIC, true, false",
        "8, 208, 512, 128, MONOTONIC, true, false",
        "8, 64, 256, 32, MONOTONIC, false, true",
        "8, 64, 256, 32, PERMUTED, true, false",
        // G = K: one group per row (--group-size -1 resolves to this), on the one-token path and the batched one
        "1, 64, 768, 768, MONOTONIC, true, false",
        "5, 64, 256, 256, MONOTONIC, false, false"
    })
    void vectorEqualsScalarBitForBit(int rows, int n, int k, int g, GIdx kind, boolean withBias, boolean tinyX) {
        SplittableRandom rnd = new SplittableRandom(31L * rows + 7L * n + k + g + kind.ordinal());
        Matrix.W4 w = randomW4(rnd, n, k, g, kind);
        float[] x = gaussians(rnd, rows * k);
        if (tinyX) {
            // below 2^-102 the one-token path's power-of-two scaling of x would not be exact: it must step aside
            x[rnd.nextInt(k)] = 1e-35f;
        }
        float[] bias = withBias ? gaussians(rnd, n) : null;
        float[] ys = new float[rows * n];
        float[] yv = new float[rows * n];
        ScalarKernels.INSTANCE.matmul(x, rows, w, bias, ys);
        VectorKernels.INSTANCE.matmul(x, rows, w, bias, yv);
        assertArrayEquals(ys, yv, "vector vs scalar twin, bit for bit");
        assertNearDequantized(x, rows, w, bias, ys);
    }

    /**
     * Both twins against Σ_k W[n, k]·x[t, k] (+ bias) in double, W from {@link Matrix.W4#dequantize}.
     *
     * <p>Tolerance, from the sequence in {@link Kernels#matmul} with u = 2⁻²⁴: a group of m channels carries
     * an FMA chain of q·x (error ≤ m·u·Σ q|x|) and a sum of x (error ≤ m·u·Σ|x|, times 8), then one rounding of
     * acc − 8·sx; the chain over groups adds ≤ groups·u of the running |y|. With the zero point folded out,
     * the errors scale with mag = |bias| + Σ_k s·(q + 8)·|x|, not with Σ|w·x| (a code of 8 is a zero weight
     * but still carries 8·|x| in acc and sx). The reference itself rounds each s·(q − 8) to float once
     * (≤ u·Σ|w·x| ≤ u·mag). So |y − exact| ≤ (m_max + groups + 2)·u·mag to first order; we allow c = 2 times
     * that for the second-order terms. Random inputs stay far below it, while a wrong code, scale, group or
     * dropped channel is off by a whole term s·(q − 8)·x, which is orders of magnitude larger.
     */
    private static void assertNearDequantized(float[] x, int rows, Matrix.W4 w, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        int groups = k / w.groupSize();
        int[] size = new int[groups];
        for (int c = 0; c < k; c++) {
            size[w.gIdx()[c]]++;
        }
        int largest = 0;
        for (int s : size) {
            largest = Math.max(largest, s);
        }
        float[] wd = w.dequantize();
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < n; j++) {
                double exact = bias == null ? 0 : bias[j];
                double mag = Math.abs(exact);
                for (int c = 0; c < k; c++) {
                    double xc = x[t * k + c];
                    exact += (double) wd[j * k + c] * xc;
                    mag += (double) w.scales()[w.gIdx()[c] * n + j] * (w.code(j, c) + Matrix.W4.ZERO) * Math.abs(xc);
                }
                double tol = 2 * (largest + groups + 2) * U * mag;
                double got = y[t * n + j];
                assertTrue(
                        Math.abs(got - exact) <= tol,
                        "y[" + t + ", " + j + "] = " + got + " vs exact " + exact + " (tol " + tol + ")");
            }
        }
    }

    /**
     * q[k, n] = (n + 3k) mod 16 puts every code at every nibble position (and, in the vector path, in every
     * lane); x = ±2^e·e_k (one-hot, powers of two) leaves exactly one nonzero term, so every step of the
     * sequence is exact except the last, fma(s, 2^e·(q − 8), 0), which rounds s·(q − 8)·2^e once, as
     * {@link Matrix.W4#get} rounds s·(q − 8) (times 2^e, exact). One token per call takes the one-token path,
     * all K tokens in one call the buffered path.
     */
    @Test
    void everyCodeAtEveryNibbleDecodesExactly() {
        int n = 85; // five vectors of 16 lanes (a register tile of 4 and one more) and a ragged tail of 5
        int k = 64;
        int g = 16;
        int groups = k / g;
        int[] words = new int[k / 8 * n];
        for (int c = 0; c < k; c++) {
            for (int j = 0; j < n; j++) {
                words[(c / 8) * n + j] |= ((j + 3 * c) & 0xF) << (4 * (c % 8));
            }
        }
        SplittableRandom rnd = new SplittableRandom(5);
        float[] scales = new float[groups * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) rnd.nextDouble(1e-3, 1e-1);
        }
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = c / g;
        }
        Matrix.W4 w = Matrix.W4.of(words, scales, gIdx, n, k, g);
        for (int c = 0; c < k; c++) {
            for (int j = 0; j < n; j++) {
                assertEquals((j + 3 * c) & 0xF, w.code(j, c), "packing of the fixture");
            }
        }
        float[] all = new float[k * k];
        float[] yAll = new float[k * n];
        for (int c = 0; c < k; c++) {
            int e = (c * 7) % 41 - 20;
            float xc = ((c & 1) == 0 ? 1f : -1f) * Math.scalb(1f, e);
            all[c * k + c] = xc;
            float[] one = new float[k];
            one[c] = xc;
            for (Kernels kernels : new Kernels[] {VectorKernels.INSTANCE, ScalarKernels.INSTANCE}) {
                float[] y = new float[n];
                kernels.matmul(one, 1, w, null, y);
                for (int j = 0; j < n; j++) {
                    assertEquals(exact(w, j, c, xc), y[j], kernels.name() + ": y[" + j + "] for x = " + xc + "·e_" + c);
                }
            }
        }
        VectorKernels.INSTANCE.matmul(all, k, w, null, yAll);
        for (int c = 0; c < k; c++) {
            for (int j = 0; j < n; j++) {
                assertEquals(
                        exact(w, j, c, all[c * k + c]), yAll[c * n + j], "buffered: token " + c + ", y[" + j + "]");
            }
        }
    }

    /**
     * W[j, c]·xc, exact for xc = ±2^e; + 0f because a zero weight gives +0 in the sequence (acc − 8·sx =
     * 8·xc − 8·xc = +0), where the product with a negative xc would be −0.
     */
    private static float exact(Matrix.W4 w, int j, int c, float xc) {
        return w.get(j, c) * xc + 0f;
    }

    /** Random codes in [0, 15], scales in [0.001, 0.05) (typical GPTQ magnitudes), g_idx of the given kind. */
    /**
     * The group table a W4 matrix builds once, and its group sums of x: for contiguous groups the sums skip the
     * members' indirection, which must not change a bit (the same adds in the same order). Integer paths exact.
     */
    @ParameterizedTest
    @CsvSource({"MONOTONIC, 128", "MONOTONIC, 768", "PERMUTED, 128", "RANDOM, 128"})
    void groupTableAndGroupSums(GIdx kind, int g) {
        SplittableRandom rnd = new SplittableRandom(17L + g + kind.ordinal());
        int k = 768;
        int rows = 3;
        Matrix.W4 w = randomW4(rnd, 32, k, g, kind);
        W4Groups groups = w.groups();
        W4Groups built = W4Groups.of(w.gIdx(), g);
        assertArrayEquals(built.members(), groups.members());
        assertArrayEquals(built.start(), groups.start());
        assertEquals(kind == GIdx.MONOTONIC, groups.contiguous());
        for (int gr = 0; gr < groups.groups(); gr++) {
            for (int i = groups.start()[gr]; i < groups.start()[gr + 1]; i++) {
                assertEquals(gr, w.gIdx()[groups.members()[i]], "member " + i + " of group " + gr);
                if (i > groups.start()[gr]) {
                    assertTrue(groups.members()[i] > groups.members()[i - 1], "members in increasing k");
                }
            }
        }
        float[] x = gaussians(rnd, rows * k);
        float[] viaMembers = new W4Groups(groups.members(), groups.start(), false).groupSums(x, rows, k);
        assertArrayEquals(viaMembers, groups.groupSums(x, rows, k), "group sums, bit for bit");
    }

    static Matrix.W4 randomW4(SplittableRandom rnd, int n, int k, int g, GIdx kind) {
        int groups = k / g;
        int[] words = new int[k / 8 * n];
        for (int i = 0; i < words.length; i++) {
            words[i] = rnd.nextInt();
        }
        float[] scales = new float[groups * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) rnd.nextDouble(0.001, 0.05);
        }
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = kind == GIdx.RANDOM ? rnd.nextInt(groups) : c / g;
        }
        if (kind == GIdx.PERMUTED) {
            for (int c = k - 1; c > 0; c--) {
                int o = rnd.nextInt(c + 1);
                int tmp = gIdx[c];
                gIdx[c] = gIdx[o];
                gIdx[o] = tmp;
            }
        }
        return Matrix.W4.of(words, scales, gIdx, n, k, g);
    }

    private static float[] gaussians(SplittableRandom rnd, int count) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }
}
