package dev.m2q.validate;

import dev.m2q.validate.tasks.TaskStats;
import dev.m2q.validate.tasks.TaskStats.Interval;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * How far a perplexity increase can be trusted: the held-out text is scored in windows, and a model's increase over
 * the reference, 100·(exp(Σ_w (NLL_w − NLL_ref,w) / Σ_w n_w) − 1) %, moves with the windows drawn. The paired
 * bootstrap here resamples whole windows (the text's independent pieces: tokens within a window are not, since each
 * conditions on the ones before it), and both models' NLL of a window travel together, so the interval is of the
 * difference the two models make on the same text. The same bootstrap bounds a difference of two per-window means
 * ({@link #meanDifferenceInterval}: KL). Deterministic: the draws come from a {@link SplittableRandom} of
 * the given seed (the task statistics' defaults, {@link TaskStats#DEFAULT_RESAMPLES} and {@link
 * TaskStats#DEFAULT_SEED}).
 */
public final class PplStats {
    private PplStats() {}

    /**
     * 100·(exp(Σ (nll − ref) / Σ tokens) − 1): the increase in percent of the perplexity of the model whose
     * per-window summed NLL is {@code nll} over the one whose is {@code ref}, both over the same windows of {@code
     * tokens} predicted tokens each.
     */
    public static double increasePercent(double[] ref, double[] nll, int[] tokens) {
        require(ref, nll, tokens);
        double d = 0;
        long n = 0;
        for (int w = 0; w < tokens.length; w++) {
            d += nll[w] - ref[w];
            n += tokens[w];
        }
        return 100 * Math.expm1(d / n);
    }

    /**
     * The paired bootstrap 95% interval of {@link #increasePercent}, percentile method: {@code resamples} times, draw
     * as many windows as there are, with replacement, and take the increase on the draw; the interval runs from the
     * 2.5th to the 97.5th percentile of those (TaskStats.percentile, Hyndman–Fan type 7).
     *
     * @return NaN ends when there are no windows or a window's NLL is not finite
     */
    public static Interval increaseInterval(double[] ref, double[] nll, int[] tokens, int resamples, long seed) {
        require(ref, nll, tokens);
        return bootstrap(minus(nll, ref), null, tokens, resamples, seed, (d, unused, n) -> 100 * Math.expm1(d / n));
    }

    /**
     * The paired bootstrap 95% interval of increase(a) − increase(b), in percentage points, for two models scored on
     * the same windows against the same reference: the three NLLs of a window travel together. An interval that
     * lies below 0 says that a's increase is the smaller on this text beyond what the windows' draw explains.
     *
     * @return NaN ends when there are no windows
     */
    public static Interval differenceInterval(
            double[] ref, double[] a, double[] b, int[] tokens, int resamples, long seed) {
        require(ref, a, tokens);
        require(ref, b, tokens);
        return bootstrap(
                minus(a, ref),
                minus(b, ref),
                tokens,
                resamples,
                seed,
                (da, db, n) -> 100 * (Math.expm1(da / n) - Math.expm1(db / n)));
    }

    /**
     * The paired bootstrap 95% interval of mean(a) − mean(b) for two models' per-window sums (KL over each window's
     * positions, say) with {@code counts} items per window: per draw of as many windows as there are, (Σ a − Σ b) /
     * Σ counts over the drawn windows. An interval below 0 says that a's mean is the smaller on this text beyond what
     * the windows' draw explains.
     *
     * @return NaN ends when there are no windows
     */
    public static Interval meanDifferenceInterval(double[] a, double[] b, int[] counts, int resamples, long seed) {
        if (a.length != counts.length || b.length != counts.length) {
            throw new IllegalArgumentException(
                    "windows do not pair: " + a.length + " and " + b.length + " sums for " + counts.length + " counts");
        }
        return bootstrap(minus(a, b), null, counts, resamples, seed, (d, unused, n) -> d / n);
    }

    /** A statistic of one draw from its sums over the drawn windows: Σ x, Σ y (0 without y) and Σ n. */
    @FunctionalInterface
    private interface Statistic {
        double of(double sumX, double sumY, long sumN);
    }

    /** x[w] − y[w] per window. */
    private static double[] minus(double[] x, double[] y) {
        double[] d = new double[x.length];
        for (int w = 0; w < d.length; w++) {
            d[w] = x[w] - y[w];
        }
        return d;
    }

    /**
     * The percentile interval of {@code stat} over {@code resamples} draws of as many windows as there are, with
     * replacement, from a {@link SplittableRandom} of {@code seed}: per draw, the sums of x, y (when given) and n
     * over the drawn windows, in the order drawn.
     */
    private static Interval bootstrap(double[] x, double[] y, int[] n, int resamples, long seed, Statistic stat) {
        checkResamples(resamples);
        int m = n.length;
        if (m == 0 || !finite(x) || (y != null && !finite(y))) {
            return new Interval(Double.NaN, Double.NaN); // a NaN window would make some draws NaN and some not
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        double[] out = new double[resamples];
        for (int r = 0; r < resamples; r++) {
            double sx = 0;
            double sy = 0;
            long sn = 0;
            for (int i = 0; i < m; i++) {
                int w = rnd.nextInt(m);
                sx += x[w];
                if (y != null) {
                    sy += y[w];
                }
                sn += n[w];
            }
            out[r] = stat.of(sx, sy, sn);
        }
        Arrays.sort(out);
        return new Interval(TaskStats.percentile(out, 0.025), TaskStats.percentile(out, 0.975));
    }

    private static boolean finite(double[] v) {
        for (double d : v) {
            if (!Double.isFinite(d)) {
                return false;
            }
        }
        return true;
    }

    private static void checkResamples(int resamples) {
        if (resamples < 1) {
            throw new IllegalArgumentException("bootstrap: resamples = " + resamples + ", must be ≥ 1");
        }
    }

    private static void require(double[] ref, double[] nll, int[] tokens) {
        if (ref.length != tokens.length || nll.length != tokens.length) {
            throw new IllegalArgumentException("perplexity windows do not pair: " + ref.length + " reference, "
                    + nll.length + " model and " + tokens.length + " token counts");
        }
        for (int t : tokens) {
            if (t <= 0) {
                throw new IllegalArgumentException(
                        "a window predicts " + t + " tokens; each must predict at least one");
            }
        }
    }
}
