package dev.m2q.core.grad;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;

/**
 * Central finite differences in float64 against an analytic gradient, for every element of a tensor.
 *
 * <p>Step h = 1e−6·max(1, |θ|): the truncation error (h²/6)·|L'''| is ~1e−13, far below the tolerance, and the
 * cancellation error of L(θ + h) − L(θ − h) is about (rounding error of L)/h ≈ 1e−14·|L|/1e−6 = 1e−8·|L| (L is
 * a sum of a few hundred terms), an absolute error that does not shrink with the gradient element.
 *
 * <p>Pass: ‖g − g_fd‖₂/‖g_fd‖₂ ≤ 1e−6 over the tensor, and per element |g − g_fd| ≤ 1e−6·(|g_fd| + ‖g_fd‖∞).
 * The floor 1e−6·‖g_fd‖∞ keeps the per-element check meaningful for elements many orders below the tensor's
 * largest, whose finite difference is dominated by the absolute cancellation error above; every element the
 * size of the largest is still held to 1e−6 relative. A wrong formula (a missing term, a sign, a transposed
 * index) errs by O(1) relative and fails both.
 */
final class GradCheck {
    static final double STEP = 1e-6;
    static final double TOLERANCE = 1e-6;

    private GradCheck() {}

    /** The finite-difference gradient of loss w.r.t. every element of x, which it perturbs and restores. */
    static double[] finiteDifferences(Tensor.F64 x, DoubleSupplier loss) {
        double[] d = x.data();
        double[] fd = new double[d.length];
        for (int i = 0; i < d.length; i++) {
            double x0 = d[i];
            double h = STEP * Math.max(1, Math.abs(x0));
            d[i] = x0 + h;
            double plus = loss.getAsDouble();
            d[i] = x0 - h;
            double minus = loss.getAsDouble();
            fd[i] = (plus - minus) / ((x0 + h) - (x0 - h));
            d[i] = x0;
        }
        return fd;
    }

    /** Asserts the analytic gradient of loss w.r.t. x matches central differences; returns the norm-relative error. */
    static double check(String what, Tensor.F64 x, Tensor analytic, DoubleSupplier loss) {
        analytic.requireShape(x.rows(), x.cols(), what + " gradient");
        double[] fd = finiteDifferences(x, loss);
        double diff2 = 0;
        double ref2 = 0;
        double refMax = 0;
        for (int i = 0; i < fd.length; i++) {
            diff2 += (analytic.get(i) - fd[i]) * (analytic.get(i) - fd[i]);
            ref2 += fd[i] * fd[i];
            refMax = Math.max(refMax, Math.abs(fd[i]));
        }
        assertTrue(refMax > 0, what + ": the loss does not depend on it, so the check would prove nothing");
        double normRel = Math.sqrt(diff2 / ref2);
        assertTrue(normRel <= TOLERANCE, what + ": ‖g − g_fd‖/‖g_fd‖ = " + normRel);
        for (int i = 0; i < fd.length; i++) {
            double err = Math.abs(analytic.get(i) - fd[i]);
            double bound = TOLERANCE * (Math.abs(fd[i]) + refMax);
            int el = i;
            assertTrue(
                    err <= bound,
                    () -> what + "[" + el + "]: analytic " + analytic.get(el) + ", finite difference " + fd[el]);
        }
        return normRel;
    }

    /** Σ c_i·y_i: a scalar loss whose gradient w.r.t. y is c. */
    static double dot(Tensor c, Tensor y) {
        double s = 0;
        for (int i = 0; i < y.size(); i++) {
            s += c.get(i) * y.get(i);
        }
        return s;
    }

    /** [rows, cols] fp64 with elements mean + sd·N(0, 1), each rounded to fp32 so fp32 twins start equal. */
    static Tensor.F64 random(SplittableRandom r, int rows, int cols, double mean, double sd) {
        Tensor.F64 t = Tensor.f64(rows, cols);
        for (int i = 0; i < t.size(); i++) {
            t.set(i, (float) (mean + sd * r.nextGaussian()));
        }
        return t;
    }
}
