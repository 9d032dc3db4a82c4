package dev.m2q.autoround;

import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Parallel;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Signed gradient descent with AutoRound's schedule (ALGORITHMS.md §3): at step i of n, p ← p − lrᵢ·sign(∂L/∂p)
 * with lrᵢ = lr·(1 − i/n) — torch's LinearLR from factor 1 to 0 over n steps — for V, and the same with minmax lr
 * for α and β, which are then clamped into [0, 1] (the quantizer clamps them on use; clamping the stored values
 * keeps a factor from drifting far past a bound). sign(0) = 0. Each update is computed in double and rounded to
 * fp32 once.
 */
public final class SignSgd {
    /** Double lanes, and floats with as many lanes (half the width) to widen into them. */
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;

    private static final VectorSpecies<Float> FD =
            VectorSpecies.of(float.class, VectorShape.forBitSize(D.vectorBitSize() / 2));

    private final double lr;
    private final double minmaxLr;
    private final int steps;

    public SignSgd(double lr, double minmaxLr, int steps) {
        if (steps < 1 || !(lr > 0) || !(minmaxLr > 0)) {
            throw new IllegalArgumentException(
                    "SignSGD needs steps ≥ 1 and positive rates, got " + steps + ", " + lr + ", " + minmaxLr);
        }
        this.lr = lr;
        this.minmaxLr = minmaxLr;
        this.steps = steps;
    }

    /** The schedule's factor at step i: 1 − i/n, linear from 1 at step 0 to 1/n at the last step. */
    public double factor(int step) {
        if (step < 0 || step >= steps) {
            throw new IllegalArgumentException("step " + step + " outside [0, " + steps + ")");
        }
        return 1.0 - (double) step / steps;
    }

    /** Updates one linear's parameters {@code p} by step {@code step}'s rates against the signs of {@code grad}. */
    public void step(int step, RoundingParams.Linear p, RoundingParams.Linear grad) {
        double f = factor(step);
        descend(p.v(), grad.v(), lr * f, Double.NEGATIVE_INFINITY, Double.POSITIVE_INFINITY);
        descend(p.alpha(), grad.alpha(), minmaxLr * f, 0, 1);
        descend(p.beta(), grad.beta(), minmaxLr * f, 0, 1);
    }

    /** p ← clamp(p − rate·sign(g), lo, hi), rows in parallel. */
    static void descend(Tensor p, Tensor g, double rate, double lo, double hi) {
        g.requireShape(p.rows(), p.cols(), "gradient");
        if (p instanceof Tensor.F32 pf && g instanceof Tensor.F32 gf) {
            descendF32(pf.data(), gf.data(), p.rows(), p.cols(), rate, lo, hi);
            return;
        }
        descendTwin(p, g, rate, lo, hi);
    }

    /**
     * The fp32 fast path of {@link #descend}, on the arrays, with the twin's bits: p and g widened to double lanes
     * (exact), rate·sign(g) as ±rate where g ≠ 0 and g itself where g is ±0 or NaN (rate·signum(g) is then g:
     * rate is positive and finite, and the sign of a zero matters, since −0 − (−0) = +0 but −0 − (+0) = −0), one
     * double subtraction, the clamp by lanewise max and min (which order −0 below +0, as {@link Math#clamp}
     * does) and one rounding to float per element. The elements past the last whole vector run the twin's
     * expression.
     */
    private static void descendF32(float[] p, float[] g, int rows, int cols, double rate, double lo, double hi) {
        int lanes = D.length();
        Parallel.forRange(rows, cols, (from, to) -> {
            int end = to * cols;
            int i = from * cols;
            for (; i <= end - lanes; i += lanes) {
                FloatVector gf = FloatVector.fromArray(FD, g, i);
                DoubleVector gd = (DoubleVector) gf.convertShape(VectorOperators.F2D, D, 0);
                DoubleVector step = gd.blend(rate, gd.compare(VectorOperators.GT, 0))
                        .blend(-rate, gd.compare(VectorOperators.LT, 0));
                DoubleVector pd =
                        (DoubleVector) FloatVector.fromArray(FD, p, i).convertShape(VectorOperators.F2D, D, 0);
                ((FloatVector) pd.sub(step).max(lo).min(hi).convertShape(VectorOperators.D2F, FD, 0)).intoArray(p, i);
            }
            for (; i < end; i++) {
                p[i] = (float) Math.clamp(p[i] - rate * Math.signum(g[i]), lo, hi);
            }
        });
    }

    /** The scalar twin of {@link #descend}, through {@link Tensor}, any precision. */
    static void descendTwin(Tensor p, Tensor g, double rate, double lo, double hi) {
        g.requireShape(p.rows(), p.cols(), "gradient");
        int cols = p.cols();
        Parallel.forRange(p.rows(), cols, (from, to) -> {
            for (int i = from * cols; i < to * cols; i++) {
                p.set(i, Math.clamp(p.get(i) - rate * Math.signum(g.get(i)), lo, hi));
            }
        });
    }
}
