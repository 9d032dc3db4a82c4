package dev.m2q.kernels;

/**
 * A row-major product as the column-major BLAS call that computes it. BLAS reads a row-major [r, c] buffer as the
 * column-major [c, r] matrix, its transpose, so C = op(A)·op(B) row-major is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ
 * column-major: the operands swap, each keeps its own transpose flag, and every leading dimension is a row length
 * of the row-major buffers.
 *
 * @param first the operand BLAS calls A: the row-major B
 * @param transFirst whether BLAS transposes it (B was given transposed)
 * @param m BLAS's m: the row-major C's columns n
 * @param n BLAS's n: the row-major C's rows m
 * @param k the inner dimension
 * @param ldFirst the row length of the row-major B's buffer
 * @param transSecond whether BLAS transposes the row-major A (A was given transposed)
 * @param ldSecond the row length of the row-major A's buffer
 * @param ldc the row length of C: n
 */
record GemmPlan(
        Operand first,
        boolean transFirst,
        boolean transSecond,
        int m,
        int n,
        int k,
        int ldFirst,
        int ldSecond,
        int ldc) {

    /** Which row-major operand goes where. */
    enum Operand {
        A,
        B
    }

    /**
     * C [m, n] = op(A)·op(B), row-major: A is [m, k], or [k, m] when {@code aTransposed}; B is [k, n], or [n, k]
     * when {@code bTransposed}.
     */
    static GemmPlan rowMajor(int m, int n, int k, boolean aTransposed, boolean bTransposed) {
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("GemmPlan: m " + m + ", n " + n + ", k " + k + " must be >= 0");
        }
        return new GemmPlan(Operand.B, bTransposed, aTransposed, n, m, k, bTransposed ? k : n, aTransposed ? m : k, n);
    }

    /** y [rows, n] = x [rows, k]·Wᵀ for W [n, k], the linear layer: B = W given transposed. */
    static GemmPlan linear(int rows, int n, int k) {
        return rowMajor(rows, n, k, false, true);
    }

    /**
     * The Hessian's rank-k update c += xᵀ·x for x [rows, k] row-major, upper triangle of c [k, k] row-major: x is
     * the column-major [k, rows] matrix X and c's upper triangle is the column-major lower one, so it is
     * syrk(LOWER, no transpose, n = k, k = rows, lda = k, ldc = k) of C += X·Xᵀ.
     */
    record Syrk(boolean lower, boolean trans, int n, int k, int lda, int ldc) {
        static Syrk upperOfXtX(int rows, int k) {
            return new Syrk(true, false, k, rows, k, k);
        }
    }
}
