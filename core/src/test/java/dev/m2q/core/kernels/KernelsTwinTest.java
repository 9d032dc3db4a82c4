package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.tensor.Bf16;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The Vector API kernels against their scalar twin on seeded random data, aligned and ragged shapes. Both
 * accumulate in fp32 and differ only in summation order, so each result may differ by at most about
 * k·2⁻²⁴·Σ|x·w| (the classic bound for recursive summation); we allow 4·k·2⁻²⁴·Σ|x·w|, which real ordering
 * errors stay well under, while a wrong index or a dropped tail would be off by a whole term.
 */
class KernelsTwinTest {
    private static final double EPS = Math.ulp(1.0f) / 2;

    @ParameterizedTest
    @CsvSource({
        "1, 8, 16",
        "1, 33, 1000",
        "3, 7, 33",
        "4, 64, 256",
        "5, 96, 129",
        "9, 130, 768",
        "17, 31, 1000",
        "33, 24, 40",
        "70, 9, 300",
        "131, 16, 64"
    })
    void bf16MatmulMatchesScalar(int rows, int n, int k) {
        SplittableRandom rnd = new SplittableRandom(rows * 1000L + n * 10L + k);
        float[] x = randoms(rnd, rows * k);
        float[] bias = randoms(rnd, n);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(2L * n * k);
            float[] wf = new float[n * k];
            for (int i = 0; i < n * k; i++) {
                short b = Bf16.fromFloat((float) rnd.nextGaussian());
                seg.set(Matrix.LE_SHORT, 2L * i, b);
                wf[i] = Bf16.toFloat(b);
            }
            compare(x, rows, new Matrix.Bf16(seg, n, k), bias, wf);
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 8, 16", "3, 7, 33", "6, 40, 300", "33, 24, 40", "130, 9, 77"})
    void f32MatmulMatchesScalar(int rows, int n, int k) {
        SplittableRandom rnd = new SplittableRandom(7 + rows + n + k);
        float[] x = randoms(rnd, rows * k);
        float[] wf = randoms(rnd, n * k);
        compare(x, rows, new Matrix.F32(wf, n, k), null, wf);
    }

    /**
     * Each row's product is the same bits whether it runs alone (decoding) or in a tile with others (a speculative
     * verify of k + 1 rows, 2 or 3 rows left over): every row's sum runs in one fixed order. Integer-exact claim,
     * so compared bit for bit.
     */
    @ParameterizedTest
    @CsvSource({"2, 37, 300", "3, 16, 256", "5, 9, 70", "6, 40, 768", "7, 24, 33", "8, 11, 129"})
    void vectorRowsDoNotDependOnTheirTile(int rows, int n, int k) {
        SplittableRandom rnd = new SplittableRandom(31L * rows + n + k);
        float[] x = randoms(rnd, rows * k);
        float[] wf = randoms(rnd, n * k);
        float[] bias = randoms(rnd, n);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(2L * n * k);
            for (int i = 0; i < n * k; i++) {
                seg.set(Matrix.LE_SHORT, 2L * i, Bf16.fromFloat(wf[i]));
            }
            for (Matrix w : new Matrix[] {new Matrix.F32(wf, n, k), new Matrix.Bf16(seg, n, k)}) {
                float[] all = new float[rows * n];
                VectorKernels.INSTANCE.matmul(x, rows, w, bias, all);
                for (int t = 0; t < rows; t++) {
                    float[] one = new float[n];
                    VectorKernels.INSTANCE.matmul(java.util.Arrays.copyOfRange(x, t * k, (t + 1) * k), 1, w, bias, one);
                    for (int j = 0; j < n; j++) {
                        assertEquals(
                                Float.floatToRawIntBits(one[j]),
                                Float.floatToRawIntBits(all[t * n + j]),
                                w.getClass().getSimpleName() + " row " + t + " of " + rows + ", column " + j);
                    }
                }
            }
        }
    }

    /**
     * The bf16 and fp32 products of 1 to 8 rows follow, bit for bit, the per-row order {@link MultiRowBf16} and
     * {@link MultiRowF32} document (the
     * order the vector kernels have always used for one row): per lane l of V, one FMA chain over the columns
     * c ≡ l (mod V) below loopBound(K); the lanes summed in order from 0f; the ragged columns added unfused; then
     * the bias. Emulated here in scalar code, so the column blocks (K above one block of x for the row count: 768
     * columns of 8 rows, 1536 of 4, 6144 of 1), channel blocks (N above 16), spare rows, and one row's two loops (4
     * channels per pass on a matrix of at most 4 MiB, one above: 520 × 4100) must not show. Exact
     * claim, compared bit for bit.
     */
    @ParameterizedTest
    @CsvSource({
        "1, 20, 7000",
        "1, 37, 300",
        "1, 520, 4100",
        "2, 33, 2003",
        "3, 17, 1600",
        "4, 50, 3100",
        "5, 16, 800",
        "7, 40, 1543",
        "8, 41, 2000",
        "8, 3, 15"
    })
    void fewRowsFollowTheDocumentedOrder(int rows, int n, int k) {
        SplittableRandom rnd = new SplittableRandom(53L * rows + n + k);
        float[] x = randoms(rnd, rows * k);
        float[] bias = randoms(rnd, n);
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        int upper = k - k % lanes;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(2L * n * k);
            for (int i = 0; i < n * k; i++) {
                seg.set(Matrix.LE_SHORT, 2L * i, Bf16.fromFloat((float) rnd.nextGaussian()));
            }
            float[] wf = randoms(rnd, n * k);
            for (Matrix w : new Matrix[] {new Matrix.Bf16(seg, n, k), new Matrix.F32(wf, n, k)}) {
                for (float[] b : new float[][] {bias, null}) {
                    float[] y = new float[rows * n];
                    VectorKernels.INSTANCE.matmul(x, rows, w, b, y);
                    for (int t = 0; t < rows; t++) {
                        for (int j = 0; j < n; j++) {
                            float s = 0f;
                            for (int l = 0; l < lanes && upper > 0; l++) {
                                float chain = 0f;
                                for (int c = l; c < upper; c += lanes) {
                                    chain = Math.fma(x[t * k + c], w.get(j, c), chain);
                                }
                                s += chain;
                            }
                            for (int c = upper; c < k; c++) {
                                s += x[t * k + c] * w.get(j, c);
                            }
                            float expected = s + (b == null ? 0f : b[j]);
                            assertEquals(
                                    Float.floatToRawIntBits(expected),
                                    Float.floatToRawIntBits(y[t * n + j]),
                                    w.getClass().getSimpleName() + " row " + t + " of " + rows + ", column " + j
                                            + (b == null ? "" : ", with bias"));
                        }
                    }
                }
            }
        }
    }

    private static void compare(float[] x, int rows, Matrix w, float[] bias, float[] wf) {
        int n = w.rows();
        int k = w.cols();
        float[] ys = new float[rows * n];
        float[] yv = new float[rows * n];
        ScalarKernels.INSTANCE.matmul(x, rows, w, bias, ys);
        VectorKernels.INSTANCE.matmul(x, rows, w, bias, yv);
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < n; j++) {
                double exact = bias == null ? 0 : bias[j];
                double mag = Math.abs(exact);
                for (int c = 0; c < k; c++) {
                    exact += (double) x[t * k + c] * wf[j * k + c];
                    mag += Math.abs((double) x[t * k + c] * wf[j * k + c]);
                }
                double tol = 4 * k * EPS * mag + 1e-30;
                int i = t * n + j;
                assertTrue(Math.abs(ys[i] - exact) <= tol, "scalar " + ys[i] + " vs exact " + exact + " at " + i);
                assertTrue(Math.abs(yv[i] - exact) <= tol, "vector " + yv[i] + " vs exact " + exact + " at " + i);
                assertTrue(Math.abs(yv[i] - ys[i]) <= 2 * tol, "vector vs scalar at " + i);
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"1", "7", "8", "63", "64", "257"})
    void dotAndAxpyMatchScalar(int n) {
        SplittableRandom rnd = new SplittableRandom(n);
        float[] a = randoms(rnd, n + 3);
        float[] b = randoms(rnd, n + 5);
        double mag = 0;
        for (int i = 0; i < n; i++) {
            mag += Math.abs(a[i + 3] * b[i + 5]);
        }
        float s = ScalarKernels.INSTANCE.dot(a, 3, b, 5, n);
        float v = VectorKernels.INSTANCE.dot(a, 3, b, 5, n);
        assertEquals(s, v, 8 * n * EPS * mag, "dot of " + n);

        float[] ys = b.clone();
        float[] yv = b.clone();
        ScalarKernels.INSTANCE.axpy(0.37f, a, 3, ys, 5, n);
        VectorKernels.INSTANCE.axpy(0.37f, a, 3, yv, 5, n);
        for (int i = 0; i < ys.length; i++) {
            // One multiply-add per element, fused (vector) or rounded twice (scalar): they differ by at most the
            // product's rounding plus the sum's, i.e. 2⁻²⁴·(|αx| + |y|) each, whatever cancellation happens.
            int j = i - 5;
            double terms = Math.abs(b[i]) + (j >= 0 && j < n ? Math.abs(0.37 * a[j + 3]) : 0);
            assertEquals(ys[i], yv[i], 2 * EPS * terms * 2 + 1e-30, "axpy element " + i);
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 1", "3, 5", "7, 17", "16, 64", "5, 130", "33, 71", "300, 600"})
    void syrkUpperMatchesScalarBitForBit(int rows, int k) {
        // Both fold each element's chunk sum in the same order with fused multiply-adds: identical bits, not
        // merely close. The strict lower triangle must stay exactly as it was.
        SplittableRandom rnd = new SplittableRandom(17L * rows + k);
        float[] x = randoms(rnd, rows * k);
        float[] start = randoms(rnd, k * k);
        float[] cs = start.clone();
        float[] cv = start.clone();
        ScalarKernels.INSTANCE.syrkUpper(x, rows, k, cs);
        VectorKernels.INSTANCE.syrkUpper(x, rows, k, cv);
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                int e = i * k + j;
                assertEquals(Float.floatToRawIntBits(cs[e]), Float.floatToRawIntBits(cv[e]), "c[" + i + ", " + j + "]");
                if (j < i) {
                    assertEquals(Float.floatToRawIntBits(start[e]), Float.floatToRawIntBits(cv[e]), "lower touched");
                } else {
                    double exact = start[e];
                    double mag = Math.abs(start[e]);
                    for (int t = 0; t < rows; t++) {
                        exact += (double) x[t * k + i] * x[t * k + j];
                        mag += Math.abs((double) x[t * k + i] * x[t * k + j]);
                    }
                    // rows FMAs (one rounding each) plus the final add: recursive-summation bound.
                    assertEquals(exact, cv[e], 2 * (rows + 1) * EPS * mag + 1e-30, "vs double at " + i + ", " + j);
                }
            }
        }
    }

    @ParameterizedTest
    @CsvSource({
        "1, 1, 1, false",
        "3, 5, 7, false",
        "4, 64, 256, false",
        "9, 130, 300, true",
        "33, 71, 5, true",
        "40, 300, 600, false",
        "2, 513, 40, true"
    })
    void gemmAccMatchesScalarBitForBit(int m, int n, int depth, boolean transposedA) {
        // Both continue each element's value with one in-order FMA chain over p: identical bits, whatever the
        // tiling, cache blocking (depth > 256 crosses a slice) or thread split. Offsets and padded strides check
        // the addressing; elements outside C's m × n window must stay untouched.
        SplittableRandom rnd = new SplittableRandom(31L * m + 7L * n + depth);
        int aRow = transposedA ? 1 : depth + 3;
        int aCol = transposedA ? m + 2 : 1;
        float[] a = randoms(rnd, 5 + m * depth + 3 * depth + 2 * m + 8);
        int ldb = n + 1;
        float[] b = randoms(rnd, 2 + depth * ldb);
        int ldc = n + 4;
        float[] start = randoms(rnd, 3 + m * ldc);
        float[] cs = start.clone();
        float[] cv = start.clone();
        ScalarKernels.INSTANCE.gemmAcc(m, n, depth, a, 5, aRow, aCol, b, 2, ldb, cs, 3, ldc);
        VectorKernels.INSTANCE.gemmAcc(m, n, depth, a, 5, aRow, aCol, b, 2, ldb, cv, 3, ldc);
        for (int e = 0; e < start.length; e++) {
            assertEquals(Float.floatToRawIntBits(cs[e]), Float.floatToRawIntBits(cv[e]), "c[" + e + "]");
            int i = (e - 3) / ldc;
            int j = (e - 3) % ldc;
            if (e < 3 || j >= n) {
                assertEquals(Float.floatToRawIntBits(start[e]), Float.floatToRawIntBits(cv[e]), "outside touched");
            } else {
                double exact = start[e];
                double mag = Math.abs(start[e]);
                for (int p = 0; p < depth; p++) {
                    double t = (double) a[5 + i * aRow + p * aCol] * b[2 + p * ldb + j];
                    exact += t;
                    mag += Math.abs(t);
                }
                assertEquals(exact, cv[e], 2 * (depth + 1) * EPS * mag + 1e-30, "vs double at " + i + ", " + j);
            }
        }
    }

    @org.junit.jupiter.api.Test
    void vectorResultsAreTheSameBitsColdAndWarm() {
        // The first calls run in the interpreter (the Vector API's Java fallback), later ones JIT-compiled
        // intrinsics; m2q's outputs must not depend on which, so the bits must match exactly.
        SplittableRandom rnd = new SplittableRandom(99);
        float[] a = randoms(rnd, 1000);
        float[] b = randoms(rnd, 1000);
        float cold = VectorKernels.INSTANCE.dot(a, 0, b, 0, 1000);
        float warm = cold;
        for (int i = 0; i < 20_000; i++) {
            warm = VectorKernels.INSTANCE.dot(a, 0, b, 0, 1000);
        }
        assertEquals(Float.floatToRawIntBits(cold), Float.floatToRawIntBits(warm));
    }

    private static float[] randoms(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }
}
