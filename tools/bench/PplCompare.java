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
 * <pre>
 * java --add-modules jdk.incubator.vector -cp cli/target/m2q.jar tools/bench/PplCompare.java A/validation.json B/validation.json
 * </pre>
 */
public final class PplCompare {
    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: PplCompare A/validation.json B/validation.json");
            System.exit(2);
        }
        ValidationReport.Accuracy a = accuracy(Path.of(args[0]));
        ValidationReport.Accuracy b = accuracy(Path.of(args[1]));
        ValidationReport.PplWindows wa = a.pplWindows();
        ValidationReport.PplWindows wb = b.pplWindows();
        if (!wa.referenceNll().equals(wb.referenceNll()) || !wa.tokens().equals(wb.tokens())) {
            System.err.println("the two reports scored different windows (another reference, text or --seqlen)");
            System.exit(2);
        }
        double[] ref = wa.referenceNllArray();
        int[] tokens = wa.tokensArray();
        double[] na = nll(a.candidate());
        double[] nb = nll(b.candidate());
        int resamples = wa.resamples();
        long seed = wa.seed();
        print(args[0], ref, na, tokens, resamples, seed);
        print(args[1], ref, nb, tokens, resamples, seed);
        double d = PplStats.increasePercent(ref, na, tokens) - PplStats.increasePercent(ref, nb, tokens);
        TaskStats.Interval i = PplStats.differenceInterval(ref, na, nb, tokens, resamples, seed);
        System.out.printf(
                Locale.ROOT,
                "A − B: %+.3f points [%+.3f, %+.3f] (paired bootstrap over %d windows, %d resamples, seed %d)%n",
                d,
                i.low(),
                i.high(),
                tokens.length,
                resamples,
                seed);
        klDifference(a.candidate(), b.candidate(), wa.positionsArray(), resamples, seed);
    }

    private static void klDifference(
            ValidationReport.ModelFigures a, ValidationReport.ModelFigures b, int[] positions, int resamples, long seed) {
        if (a.windowKl() == null || b.windowKl() == null) {
            return;
        }
        double[] ka = a.windowKl().stream().mapToDouble(Double::doubleValue).toArray();
        double[] kb = b.windowKl().stream().mapToDouble(Double::doubleValue).toArray();
        TaskStats.Interval i = PplStats.meanDifferenceInterval(ka, kb, positions, resamples, seed);
        System.out.printf(
                Locale.ROOT,
                "KL mean A − B: %+.6f nats [%+.6f, %+.6f] (A %.6f, B %.6f)%n",
                a.klMean() - b.klMean(),
                i.low(),
                i.high(),
                a.klMean(),
                b.klMean());
    }

    private static ValidationReport.Accuracy accuracy(Path file) {
        ValidationReport r = ValidationReport.read(file);
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
