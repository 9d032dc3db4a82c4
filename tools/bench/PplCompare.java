import dev.m2q.validate.PplStats;
import dev.m2q.validate.ValidationReport;
import dev.m2q.validate.tasks.TaskStats;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Two releases' perplexity increases (and mean KL, where the reports keep it per window) compared window by window: each {@code validation.json} (m2q validate, same
 * reference, text and --seqlen, so the same windows) holds the reference's per-window NLL and its candidate's, and
 * the paired bootstrap of {@link PplStats#differenceInterval} says whether A's increase is below B's beyond what the
 * draw of windows explains (an interval below 0: A is better on this text; one across 0: they cannot be told apart).
 *
 * <p>Each side may also be a comma-separated list of reports of the same method quantized with different
 * calibration seeds (A's i-th beside B's i-th): each window's NLL and KL sum are then averaged over the seeds before the
 * same bootstrap, so the interval is of the seed-averaged difference (the windows' draw; the seeds are not
 * resampled), and each seed's own difference is printed beside it.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp cli/target/m2q.jar tools/bench/PplCompare.java A/validation.json B/validation.json
 * java --add-modules jdk.incubator.vector -cp cli/target/m2q.jar tools/bench/PplCompare.java A0/validation.json,A1/validation.json B0/validation.json,B1/validation.json
 * </pre>
 */
public final class PplCompare {
    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: PplCompare A/validation.json[,A2/validation.json...] B/validation.json[,...]");
            System.exit(2);
        }
        String[] as = args[0].split(",");
        String[] bs = args[1].split(",");
        if (as.length != bs.length) {
            System.err.println("A has " + as.length + " reports, B " + bs.length + ": they pair seed by seed");
            System.exit(2);
        }
        ValidationReport.Accuracy[] a = new ValidationReport.Accuracy[as.length];
        ValidationReport.Accuracy[] b = new ValidationReport.Accuracy[bs.length];
        for (int i = 0; i < as.length; i++) {
            a[i] = accuracy(Path.of(as[i]));
            b[i] = accuracy(Path.of(bs[i]));
        }
        ValidationReport.PplWindows wa = a[0].pplWindows();
        for (ValidationReport.Accuracy r : concat(a, b)) {
            ValidationReport.PplWindows w = r.pplWindows();
            if (!wa.referenceNll().equals(w.referenceNll()) || !wa.tokens().equals(w.tokens())) {
                System.err.println("the reports scored different windows (another reference, text or --seqlen)");
                System.exit(2);
            }
        }
        double[] ref = wa.referenceNllArray();
        int[] tokens = wa.tokensArray();
        int resamples = wa.resamples();
        long seed = wa.seed();
        for (int i = 0; i < as.length; i++) {
            double[] na = nll(a[i].candidate());
            double[] nb = nll(b[i].candidate());
            print(as[i], ref, na, tokens, resamples, seed);
            print(bs[i], ref, nb, tokens, resamples, seed);
            if (as.length > 1) {
                System.out.printf(
                        Locale.ROOT,
                        "  A − B, this pair: %+.3f points%n",
                        PplStats.increasePercent(ref, na, tokens) - PplStats.increasePercent(ref, nb, tokens));
            }
        }
        double[] na = mean(a, r -> nll(r.candidate()));
        double[] nb = mean(b, r -> nll(r.candidate()));
        double d = PplStats.increasePercent(ref, na, tokens) - PplStats.increasePercent(ref, nb, tokens);
        TaskStats.Interval i = PplStats.differenceInterval(ref, na, nb, tokens, resamples, seed);
        System.out.printf(
                Locale.ROOT,
                "A − B%s: %+.3f points [%+.3f, %+.3f] (paired bootstrap over %d windows, %d resamples, seed %d)%n",
                as.length > 1 ? ", NLL averaged over " + as.length + " seeds" : "",
                d,
                i.low(),
                i.high(),
                tokens.length,
                resamples,
                seed);
        if (java.util.Arrays.stream(concat(a, b)).allMatch(r -> r.candidate().windowKl() != null)) {
            klDifference(a, b, wa.positionsArray(), resamples, seed);
        }
    }

    private static ValidationReport.Accuracy[] concat(ValidationReport.Accuracy[] a, ValidationReport.Accuracy[] b) {
        ValidationReport.Accuracy[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    /** Each window's figure averaged over the reports. */
    private static double[] mean(
            ValidationReport.Accuracy[] reports, java.util.function.Function<ValidationReport.Accuracy, double[]> f) {
        double[] sum = null;
        for (ValidationReport.Accuracy r : reports) {
            double[] v = f.apply(r);
            if (sum == null) {
                sum = new double[v.length];
            }
            for (int w = 0; w < v.length; w++) {
                sum[w] += v[w];
            }
        }
        for (int w = 0; w < sum.length; w++) {
            sum[w] /= reports.length;
        }
        return sum;
    }

    private static void klDifference(
            ValidationReport.Accuracy[] a, ValidationReport.Accuracy[] b, int[] positions, int resamples, long seed) {
        double[] ka = mean(a, r -> kl(r.candidate()));
        double[] kb = mean(b, r -> kl(r.candidate()));
        double meanA = java.util.Arrays.stream(a).mapToDouble(r -> r.candidate().klMean()).average().orElseThrow();
        double meanB = java.util.Arrays.stream(b).mapToDouble(r -> r.candidate().klMean()).average().orElseThrow();
        TaskStats.Interval i = PplStats.meanDifferenceInterval(ka, kb, positions, resamples, seed);
        System.out.printf(
                Locale.ROOT,
                "KL mean A − B: %+.6f nats [%+.6f, %+.6f] (A %.6f, B %.6f)%n",
                meanA - meanB,
                i.low(),
                i.high(),
                meanA,
                meanB);
    }

    private static double[] kl(ValidationReport.ModelFigures m) {
        return m.windowKl().stream().mapToDouble(Double::doubleValue).toArray();
    }

    private static ValidationReport.Accuracy accuracy(Path file) {
        ValidationReport r;
        try {
            r = ValidationReport.read(file);
        } catch (dev.m2q.core.InputException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return null;
        }
        if (r.accuracy() == null || r.accuracy().pplWindows() == null) {
            System.err.println(file + ": no per-window perplexity figures (validate it again with this m2q)");
            System.exit(2);
        }
        return r.accuracy();
    }

    private static double[] nll(ValidationReport.ModelFigures m) {
        List<Double> w = m.windowNll();
        return w.stream().mapToDouble(Double::doubleValue).toArray();
    }

    private static void print(String name, double[] ref, double[] nll, int[] tokens, int resamples, long seed) {
        TaskStats.Interval i = PplStats.increaseInterval(ref, nll, tokens, resamples, seed);
        System.out.printf(
                Locale.ROOT,
                "%s: Δ perplexity %+.3f%% [%+.3f, %+.3f]%n",
                name,
                PplStats.increasePercent(ref, nll, tokens),
                i.low(),
                i.high());
    }
}
