package dev.m2q.validate.tasks;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.SplittableRandom;

/**
 * The paired statistics that compare a candidate's task accuracy with the reference's on the same items: each
 * model's accuracy with a 95% Wilson interval, the difference Δ = candidate − reference with a paired bootstrap 95%
 * interval, McNemar's exact test on the discordant pairs, the agreement rate and the flips.
 *
 * <p>Everything here is deterministic: the bootstrap draws from a {@link SplittableRandom} seeded by the caller, so
 * the same runs and the same seed give the same interval bit for bit.
 */
public final class TaskStats {
    /** Resamples of the paired bootstrap unless the caller asks for another number. */
    public static final int DEFAULT_RESAMPLES = 10_000;
    /** The bootstrap's seed unless the caller gives one. */
    public static final long DEFAULT_SEED = 20_260_101L;
    /** Example item ids kept per flip direction. */
    public static final int EXAMPLES = 5;
    /** The two-sided 95% normal quantile Φ⁻¹(0.975). */
    static final double Z95 = 1.959963984540054;

    private TaskStats() {}

    /**
     * A closed interval {@code [low, high]}; NaN ends when the figure it bounds is undefined (an empty task).
     *
     * @param low lower end
     * @param high upper end
     */
    public record Interval(double low, double high) {
        /** Whether both ends are finite numbers. */
        public boolean finite() {
            return Double.isFinite(low) && Double.isFinite(high);
        }

        /** Whether {@code x} lies in the closed interval. */
        public boolean contains(double x) {
            return low <= x && x <= high;
        }

        /** The interval scaled by {@code k} (k ≥ 0), for example to points. */
        Interval times(double k) {
            return new Interval(low * k, high * k);
        }
    }

    /**
     * The 95% Wilson score interval of a proportion, as a fraction in [0, 1].
     *
     * <p>Why Wilson: the textbook Wald interval p ± z·√(p(1 − p)/n) collapses to a single point at 0/n and n/n, can
     * leave [0, 1], and covers well below 95% when accuracy is near 0 or 1 or n is a few hundred, which is exactly
     * where quantized models' task scores live. Wilson's interval inverts the score test instead: it stays inside
     * [0, 1], is never empty, and its coverage stays close to the nominal 95% for all p at these n (Newcombe 1998;
     * Brown, Cai and DasGupta 2001). Clopper–Pearson would also be valid but is conservative (wider than needed).
     *
     * @param successes correct items, 0 ≤ successes ≤ n
     * @param n items; 0 gives a NaN interval (no data, no claim)
     */
    public static Interval wilson(int successes, int n) {
        if (n < 0 || successes < 0 || successes > n) {
            throw new IllegalArgumentException("wilson: " + successes + " successes of " + n);
        }
        if (n == 0) {
            return new Interval(Double.NaN, Double.NaN);
        }
        double p = (double) successes / n;
        double z2 = Z95 * Z95;
        double denominator = 1 + z2 / n;
        double centre = (p + z2 / (2.0 * n)) / denominator;
        double half = Z95 / denominator * Math.sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
        // Round-off can push an end a hair past 0 or 1 at 0/n and n/n, where the exact ends are 0 and 1.
        return new Interval(
                successes == 0 ? 0 : Math.max(0, centre - half), successes == n ? 1 : Math.min(1, centre + half));
    }

    /**
     * McNemar's exact test, two-sided: under the null hypothesis (both models equally accurate) each discordant pair
     * is equally likely to go either way, so the smaller count follows Binomial(b + c, ½), and
     * p = min(1, 2·P(X ≤ min(b, c))). With no discordant pair there is no evidence of a difference: p = 1.
     *
     * <p>The largest binomial term is computed in log space and the others as ratios to it, so b + c in the millions
     * neither underflows to NaN nor loses precision (a p-value below the smallest double is reported as 0).
     *
     * @param b pairs the reference got right and the candidate wrong
     * @param c pairs the reference got wrong and the candidate right
     */
    public static double mcnemarExact(int b, int c) {
        if (b < 0 || c < 0) {
            throw new IllegalArgumentException("mcnemar: discordant counts b = " + b + ", c = " + c);
        }
        int n = b + c;
        if (n == 0) {
            return 1;
        }
        int k = Math.min(b, c);
        // log P(X = k) = Σ_{i=1..k} log((n − i + 1)/i) − n log 2, the sum compensated (Kahan) so that its error stays
        // near one rounding of the result instead of growing with k.
        double sum = 0;
        double carry = 0;
        for (int i = 1; i <= k; i++) {
            double y = Math.log((double) (n - i + 1) / i) - carry;
            double t = sum + y;
            carry = (t - sum) - y;
            sum = t;
        }
        double logPeak = sum - n * Math.log(2);
        // P(X ≤ k) = P(X = k)·(1 + r_k + r_k·r_{k−1} + …) with r_i = i/(n − i + 1) ≤ 1 for k ≤ n/2: the terms fall
        // away from the peak, so the sum is taken from the largest down until the rest cannot change it.
        double ratioSum = 1;
        double term = 1;
        for (int i = k; i >= 1; i--) {
            term *= (double) i / (n - i + 1);
            ratioSum += term;
            if (term < 1e-17 * ratioSum) {
                break;
            }
        }
        double tail = Math.exp(logPeak) * ratioSum;
        return Math.min(1, 2 * tail);
    }

    /**
     * The paired bootstrap 95% interval of Δ = candidate accuracy − reference accuracy, in percentage points, by the
     * percentile method: {@code resamples} times, draw n item indices with replacement (one draw per item, both
     * models' answers on that item travel together, which is what makes it paired), take Δ on the draw; the interval
     * runs from the 2.5th to the 97.5th percentile of those Δ (linear interpolation between order statistics,
     * "type 7" of Hyndman and Fan).
     *
     * @param reference per item: whether the reference was right
     * @param candidate per item, same order: whether the candidate was right
     * @param resamples ≥ 1
     * @param seed the seed of the {@link SplittableRandom}; the same inputs and seed give the same interval
     * @return NaN ends for n = 0
     */
    public static Interval bootstrapDifference(boolean[] reference, boolean[] candidate, int resamples, long seed) {
        if (reference.length != candidate.length) {
            throw new IllegalArgumentException("bootstrap: " + reference.length + " reference items, "
                    + candidate.length + " candidate items; the runs must pair item by item");
        }
        if (resamples < 1) {
            throw new IllegalArgumentException("bootstrap: resamples = " + resamples + ", must be ≥ 1");
        }
        int n = reference.length;
        if (n == 0) {
            return new Interval(Double.NaN, Double.NaN);
        }
        int[] d = new int[n];
        for (int i = 0; i < n; i++) {
            d[i] = (candidate[i] ? 1 : 0) - (reference[i] ? 1 : 0);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        double[] deltas = new double[resamples];
        for (int r = 0; r < resamples; r++) {
            long sum = 0;
            for (int i = 0; i < n; i++) {
                sum += d[rnd.nextInt(n)];
            }
            deltas[r] = 100.0 * sum / n;
        }
        Arrays.sort(deltas);
        return new Interval(percentile(deltas, 0.025), percentile(deltas, 0.975));
    }

    /** Linear interpolation between the order statistics of sorted {@code x} at fraction q (Hyndman–Fan type 7). */
    public static double percentile(double[] sorted, double q) {
        double h = q * (sorted.length - 1);
        int lo = (int) Math.floor(h);
        int hi = Math.min(lo + 1, sorted.length - 1);
        double frac = h - lo;
        return frac == 0 ? sorted[lo] : sorted[lo] + frac * (sorted[hi] - sorted[lo]);
    }

    /**
     * Compares a candidate's run with the reference's on one task and metric, with the default resamples and seed.
     *
     * @see #compare(TaskRun, TaskRun, TaskRun, int, long)
     */
    public static TaskComparison compare(TaskRun reference, TaskRun candidate, TaskRun rtn) {
        return compare(reference, candidate, rtn, DEFAULT_RESAMPLES, DEFAULT_SEED);
    }

    /**
     * Compares a candidate's run with the reference's on one task and metric.
     *
     * @param reference the reference model's run
     * @param candidate the candidate's run on the same task and metric, the same items in the same order
     * @param rtn the RTN baseline's run on the same items, or null; it gets its accuracy and interval, and its own
     *     paired comparison with the reference ({@link TaskComparison#rtnPaired}, same resamples and seed)
     * @throws IllegalArgumentException when the runs are of different tasks or metrics, or their items do not pair
     *     (different counts, or a different id at some position)
     */
    public static TaskComparison compare(TaskRun reference, TaskRun candidate, TaskRun rtn, int resamples, long seed) {
        Objects.requireNonNull(reference);
        Objects.requireNonNull(candidate);
        requirePaired(reference, candidate);
        if (rtn != null) {
            requirePaired(reference, rtn);
        }
        return build(
                reference.task(),
                reference.metric(),
                reference.items(),
                candidate.items(),
                rtn == null ? null : rtn.items(),
                reference.seconds(),
                candidate.seconds(),
                rtn == null ? Double.NaN : rtn.seconds(),
                resamples,
                seed);
    }

    /** The name of the pooled comparison of all tasks. */
    public static final String OVERALL = "all tasks";

    /**
     * Pools every task's items of one metric into one comparison named {@value #OVERALL}, with the default resamples
     * and seed. @see #overall(String, List, List, List, int, long)
     */
    public static TaskComparison overall(
            String metric, List<TaskRun> references, List<TaskRun> candidates, List<TaskRun> rtns) {
        return overall(metric, references, candidates, rtns, DEFAULT_RESAMPLES, DEFAULT_SEED);
    }

    /**
     * Pools every task's items of one metric into one comparison named {@value #OVERALL}: each item counts once
     * (a large task weighs more than a small one, as in a micro average). Example ids are prefixed with their task
     * ({@code task/id}), as ids repeat across task files.
     *
     * @param references the reference's runs of {@code metric}, one per task
     * @param candidates the candidate's runs, in the same task order
     * @param rtns the RTN baseline's runs in the same order, or null when there is none
     */
    public static TaskComparison overall(
            String metric,
            List<TaskRun> references,
            List<TaskRun> candidates,
            List<TaskRun> rtns,
            int resamples,
            long seed) {
        Objects.requireNonNull(metric);
        if (references.size() != candidates.size() || (rtns != null && rtns.size() != references.size())) {
            throw new IllegalArgumentException("overall " + metric + ": " + references.size() + " reference tasks, "
                    + candidates.size() + " candidate tasks" + (rtns == null ? "" : ", " + rtns.size() + " rtn tasks"));
        }
        List<ItemResult> ref = new ArrayList<>();
        List<ItemResult> cand = new ArrayList<>();
        List<ItemResult> base = rtns == null ? null : new ArrayList<>();
        double refSeconds = 0;
        double candSeconds = 0;
        double rtnSeconds = 0;
        for (int t = 0; t < references.size(); t++) {
            TaskRun r = references.get(t);
            TaskRun c = candidates.get(t);
            if (!r.metric().equals(metric)) {
                throw new IllegalArgumentException(
                        "overall " + metric + ": task " + r.task() + " was scored with " + r.metric());
            }
            requirePaired(r, c);
            ref.addAll(prefixed(r));
            cand.addAll(prefixed(c));
            refSeconds += r.seconds();
            candSeconds += c.seconds();
            if (rtns != null) {
                requirePaired(r, rtns.get(t));
                base.addAll(prefixed(rtns.get(t)));
                rtnSeconds += rtns.get(t).seconds();
            }
        }
        return build(
                OVERALL,
                metric,
                ref,
                cand,
                base,
                refSeconds,
                candSeconds,
                rtns == null ? Double.NaN : rtnSeconds,
                resamples,
                seed);
    }

    private static List<ItemResult> prefixed(TaskRun run) {
        List<ItemResult> out = new ArrayList<>(run.items().size());
        for (ItemResult r : run.items()) {
            out.add(new ItemResult(run.task() + "/" + r.id(), r.chosen(), r.correct()));
        }
        return out;
    }

    private static void requirePaired(TaskRun a, TaskRun b) {
        Objects.requireNonNull(b);
        if (!a.task().equals(b.task()) || !a.metric().equals(b.metric())) {
            throw new IllegalArgumentException("cannot pair " + a.model() + "'s run of " + a.task() + " (" + a.metric()
                    + ") with " + b.model() + "'s run of " + b.task() + " (" + b.metric() + ")");
        }
        if (a.items().size() != b.items().size()) {
            throw new IllegalArgumentException(a.task() + " (" + a.metric() + "): " + a.model() + " has "
                    + a.items().size() + " items, " + b.model() + " has "
                    + b.items().size()
                    + "; both must answer the same items");
        }
        for (int i = 0; i < a.items().size(); i++) {
            String x = a.items().get(i).id();
            String y = b.items().get(i).id();
            if (!x.equals(y)) {
                throw new IllegalArgumentException(a.task() + " (" + a.metric() + "): item " + (i + 1) + " is \"" + x
                        + "\" for " + a.model() + " but \"" + y + "\" for " + b.model()
                        + "; the runs must list the same items in the same order");
            }
        }
    }

    private static TaskComparison build(
            String task,
            String metric,
            List<ItemResult> ref,
            List<ItemResult> cand,
            List<ItemResult> rtn,
            double refSeconds,
            double candSeconds,
            double rtnSeconds,
            int resamples,
            long seed) {
        int n = ref.size();
        TaskComparison.Model refModel = model("reference", ref, refSeconds);
        TaskComparison.Model candModel = model("candidate", cand, candSeconds);
        TaskComparison.Model rtnModel = rtn == null ? null : model("rtn", rtn, rtnSeconds);
        TaskComparison.Paired c = paired(ref, cand, refModel, candModel, resamples, seed);
        return new TaskComparison(
                task,
                metric,
                n,
                refModel,
                candModel,
                rtnModel,
                c.deltaPoints(),
                c.deltaInterval(),
                resamples,
                seed,
                c.mcnemarP(),
                c.agreed(),
                c.rightToWrong(),
                c.wrongToRight(),
                c.rightToWrongExamples(),
                c.wrongToRightExamples(),
                rtn == null ? null : paired(ref, rtn, refModel, rtnModel, resamples, seed));
    }

    /**
     * One model against the reference, item by item: Δ in points, its paired bootstrap interval, McNemar's exact
     * p-value, agreement and flips (b = right → wrong, c = wrong → right).
     */
    private static TaskComparison.Paired paired(
            List<ItemResult> ref,
            List<ItemResult> other,
            TaskComparison.Model refModel,
            TaskComparison.Model otherModel,
            int resamples,
            long seed) {
        int n = ref.size();
        boolean[] r = new boolean[n];
        boolean[] c = new boolean[n];
        int agreed = 0;
        List<String> rightToWrong = new ArrayList<>();
        List<String> wrongToRight = new ArrayList<>();
        int b = 0;
        int cc = 0;
        for (int i = 0; i < n; i++) {
            ItemResult x = ref.get(i);
            ItemResult y = other.get(i);
            r[i] = x.correct();
            c[i] = y.correct();
            if (x.chosen() >= 0 && x.chosen() == y.chosen()) {
                agreed++;
            }
            if (r[i] && !c[i]) {
                b++;
                if (rightToWrong.size() < EXAMPLES) {
                    rightToWrong.add(x.id());
                }
            } else if (!r[i] && c[i]) {
                cc++;
                if (wrongToRight.size() < EXAMPLES) {
                    wrongToRight.add(x.id());
                }
            }
        }
        double delta = n == 0 ? Double.NaN : 100.0 * (otherModel.correct() - refModel.correct()) / n;
        return new TaskComparison.Paired(
                delta,
                bootstrapDifference(r, c, resamples, seed),
                mcnemarExact(b, cc),
                agreed,
                b,
                cc,
                rightToWrong,
                wrongToRight);
    }

    private static TaskComparison.Model model(String name, List<ItemResult> items, double seconds) {
        int correct = 0;
        for (ItemResult i : items) {
            if (i.correct()) {
                correct++;
            }
        }
        int n = items.size();
        return new TaskComparison.Model(
                name,
                correct,
                n,
                n == 0 ? Double.NaN : (double) correct / n,
                wilson(correct, n),
                seconds > 0 ? n / seconds : Double.NaN);
    }
}
