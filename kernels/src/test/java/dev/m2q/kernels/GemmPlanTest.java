package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The row-major → column-major mapping handed to cuBLAS, checked without a GPU: a column-major reference GEMM and
 * SYRK (BLAS's definitions, read literally) run on the plan's operands, transposes and leading dimensions, and must
 * give the row-major product. Both sides sum p = 0, 1, … in the same order in double, so they agree exactly; a
 * swapped operand, a wrong flag or leading dimension reads other elements and fails.
 */
class GemmPlanTest {
    /** BLAS gemm, column-major: C[i + j·ldc] = beta·C + Σ_p op(A)[i, p]·op(B)[p, j]. */
    static void gemmColumnMajor(
            boolean ta,
            boolean tb,
            int m,
            int n,
            int k,
            double[] a,
            int lda,
            double[] b,
            int ldb,
            double beta,
            double[] c,
            int ldc) {
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    double av = ta ? a[p + i * lda] : a[i + p * lda];
                    double bv = tb ? b[j + p * ldb] : b[p + j * ldb];
                    s += av * bv;
                }
                c[i + j * ldc] = beta * c[i + j * ldc] + s;
            }
        }
    }

    static double[] random(SplittableRandom r, int n) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = r.nextInt(-8, 9); // small integers: every sum exact, whatever the order
        }
        return a;
    }

    @Test
    void everyTransposeCombinationGivesTheRowMajorProduct() {
        SplittableRandom r = new SplittableRandom(5);
        for (int[] s : new int[][] {{1, 1, 1}, {3, 5, 7}, {7, 2, 9}, {4, 6, 1}, {16, 3, 5}}) {
            int m = s[0];
            int n = s[1];
            int k = s[2];
            for (boolean at : new boolean[] {false, true}) {
                for (boolean bt : new boolean[] {false, true}) {
                    double[] a = random(r, m * k); // [m, k] or, transposed, [k, m]
                    double[] b = random(r, k * n); // [k, n] or, transposed, [n, k]
                    double[] want = new double[m * n];
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double sum = 0;
                            for (int p = 0; p < k; p++) {
                                sum += (at ? a[p * m + i] : a[i * k + p]) * (bt ? b[j * k + p] : b[p * n + j]);
                            }
                            want[i * n + j] = sum;
                        }
                    }
                    GemmPlan plan = GemmPlan.rowMajor(m, n, k, at, bt);
                    assertEquals(GemmPlan.Operand.B, plan.first());
                    double[] c = new double[m * n];
                    gemmColumnMajor(
                            plan.transFirst(),
                            plan.transSecond(),
                            plan.m(),
                            plan.n(),
                            plan.k(),
                            b,
                            plan.ldFirst(),
                            a,
                            plan.ldSecond(),
                            0,
                            c,
                            plan.ldc());
                    assertArrayEquals(want, c, "m " + m + ", n " + n + ", k " + k + ", aT " + at + ", bT " + bt);
                }
            }
        }
    }

    @Test
    void theLinearLayerIsXTimesWTransposed() {
        SplittableRandom r = new SplittableRandom(6);
        int rows = 5;
        int n = 4;
        int k = 3;
        double[] x = random(r, rows * k);
        double[] w = random(r, n * k); // [n, k], as the checkpoint stores it
        double[] bias = random(r, n);
        double[] want = new double[rows * n];
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < n; j++) {
                double s = bias[j];
                for (int p = 0; p < k; p++) {
                    s += x[t * k + p] * w[j * k + p];
                }
                want[t * n + j] = s;
            }
        }
        // VendorBlas.linear: the bias fills y through bias·1ᵀ, then the product adds to it (beta = 1)
        double[] ones = new double[rows];
        java.util.Arrays.fill(ones, 1);
        double[] y = new double[rows * n];
        GemmPlan fill = GemmPlan.rowMajor(rows, n, 1, false, false);
        gemmColumnMajor(
                fill.transFirst(),
                fill.transSecond(),
                fill.m(),
                fill.n(),
                fill.k(),
                bias,
                fill.ldFirst(),
                ones,
                fill.ldSecond(),
                0,
                y,
                fill.ldc());
        GemmPlan p = GemmPlan.linear(rows, n, k);
        assertEquals(new GemmPlan(GemmPlan.Operand.B, true, false, n, rows, k, k, k, n), p);
        gemmColumnMajor(
                p.transFirst(), p.transSecond(), p.m(), p.n(), p.k(), w, p.ldFirst(), x, p.ldSecond(), 1, y, p.ldc());
        assertArrayEquals(want, y);
    }

    /** BLAS syrk, column-major, no transpose: C[i + j·ldc] += Σ_p A[i + p·lda]·A[j + p·lda] on one triangle. */
    @Test
    void theHessianUpdateIsTheColumnMajorLowerTriangleAndLeavesTheRestAlone() {
        SplittableRandom r = new SplittableRandom(7);
        int rows = 6;
        int k = 5;
        double[] x = random(r, rows * k);
        double[] c = random(r, k * k);
        double[] want = c.clone();
        for (int i = 0; i < k; i++) {
            for (int j = i; j < k; j++) {
                for (int t = 0; t < rows; t++) {
                    want[i * k + j] += x[t * k + i] * x[t * k + j];
                }
            }
        }
        GemmPlan.Syrk s = GemmPlan.Syrk.upperOfXtX(rows, k);
        assertEquals(false, s.trans());
        for (int j = 0; j < s.n(); j++) {
            for (int i = 0; i < s.n(); i++) {
                if (s.lower() ? i < j : i > j) {
                    continue; // the other triangle is not referenced
                }
                double sum = 0;
                for (int p = 0; p < s.k(); p++) {
                    sum += x[i + p * s.lda()] * x[j + p * s.lda()];
                }
                c[i + j * s.ldc()] += sum;
            }
        }
        assertArrayEquals(want, c, "upper triangle updated, strict lower triangle untouched");
    }

    @Test
    void negativeShapesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> GemmPlan.rowMajor(-1, 1, 1, false, false));
    }
}
