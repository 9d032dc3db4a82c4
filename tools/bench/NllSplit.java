import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * Where a candidate's perplexity increase comes from, token by token: on the held-out text (the windows
 * {@code m2q validate} scores: {@code --seqlen} tokens each, every token but a window's last predicting the next), each
 * candidate's increase in next-token NLL over the reference is split between the tokens the reference's top-1 gets
 * right and those it gets wrong, beside the mean KL(P_ref ‖ P_cand) and the change of the mean entropy. The reference's
 * own perplexity is also printed at a few softmax temperatures: a minimum above T = 1 says the reference is
 * over-confident on this text, so that an error which only flattens a distribution lowers the perplexity; and each
 * candidate's increase is printed again with every model, the reference included, at its own best temperature of
 * that grid (what remains when no model gains from being flatter or sharper).
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp cli/target/m2q.jar tools/bench/NllSplit.java \
 *   fixtures/tiny-qwen2 fixtures/tiny-qwen2/heldout.txt RELEASE_A RELEASE_B ...
 * </pre>
 */
public final class NllSplit {
    private static final int SEQ_LEN = 512;
    private static final double[] TEMPERATURES = {0.97, 0.99, 1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.08};

    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: NllSplit REFERENCE TEXT [CANDIDATE...]");
            System.exit(2);
        }
        try {
            run(args);
        } catch (dev.m2q.core.InputException e) {
            // a missing or malformed model folder: one line, exit 2, as m2q's own commands
            System.err.println(e.getMessage());
            System.exit(2);
        } catch (java.io.IOException e) {
            System.err.println("cannot read " + e.getMessage());
            System.exit(2);
        }
    }

    private static void run(String[] args) throws java.io.IOException {
        Path refDir = Path.of(args[0]);
        int[] ids = Tokenizer.load(refDir.resolve("tokenizer.json")).encode(Files.readString(Path.of(args[1])));
        Kernels kernels = Kernels.byName("vector");
        int nc = args.length - 2;
        Qwen2Model ref = Qwen2Model.load(refDir, kernels);
        Qwen2Model[] cands = new Qwen2Model[nc];
        for (int j = 0; j < nc; j++) {
            cands[j] = Qwen2Model.load(Path.of(args[2 + j]), kernels);
        }
        int vocab = ref.config().vocabSize();
        double[] refNllAtT = new double[TEMPERATURES.length];
        double refEntropy = 0;
        long tokens = 0;
        long refRight = 0;
        Sums[] sums = new Sums[nc];
        Arrays.setAll(sums, j -> new Sums());
        for (int start = 0; start + 1 < ids.length; start += SEQ_LEN) {
            int[] w = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + SEQ_LEN));
            float[] lr = logits(ref, w);
            float[][] lc = new float[nc][];
            for (int j = 0; j < nc; j++) {
                lc[j] = logits(cands[j], w);
            }
            double[] pr = new double[vocab];
            double[] pc = new double[vocab];
            for (int t = 0; t + 1 < w.length; t++) {
                int target = w[t + 1];
                int off = t * vocab;
                for (int ti = 0; ti < TEMPERATURES.length; ti++) {
                    refNllAtT[ti] -= logSoftmax(lr, off, vocab, 1 / TEMPERATURES[ti], pr)[target];
                    for (int j = 0; j < nc; j++) {
                        sums[j].nllAtT[ti] -= logSoftmax(lc[j], off, vocab, 1 / TEMPERATURES[ti], pc)[target];
                    }
                }
                logSoftmax(lr, off, vocab, 1, pr);
                int argmax = 0;
                for (int v = 1; v < vocab; v++) {
                    if (pr[v] > pr[argmax]) {
                        argmax = v;
                    }
                }
                boolean right = argmax == target;
                double hr = entropy(pr);
                refEntropy += hr;
                for (int j = 0; j < nc; j++) {
                    logSoftmax(lc[j], off, vocab, 1, pc);
                    double kl = 0;
                    for (int v = 0; v < vocab; v++) {
                        kl += Math.exp(pr[v]) * (pr[v] - pc[v]);
                    }
                    sums[j].add(pr[target] - pc[target], right, kl, entropy(pc) - hr);
                }
                tokens++;
                if (right) {
                    refRight++;
                }
            }
        }
        System.out.printf(
                Locale.ROOT,
                "reference: %d tokens, top-1 right on %d (%.1f %%), mean entropy %.4f nats%n",
                tokens,
                refRight,
                100.0 * refRight / tokens,
                refEntropy / tokens);
        StringBuilder temps = new StringBuilder("reference perplexity at temperature T:");
        for (int ti = 0; ti < TEMPERATURES.length; ti++) {
            temps.append(String.format(Locale.ROOT, "  %.2f: %.3f", TEMPERATURES[ti], Math.exp(refNllAtT[ti] / tokens)));
        }
        System.out.println(temps);
        double refBest = Arrays.stream(refNllAtT).min().orElseThrow();
        for (int j = 0; j < nc; j++) {
            Sums s = sums[j];
            int best = 0;
            for (int ti = 1; ti < TEMPERATURES.length; ti++) {
                if (s.nllAtT[ti] < s.nllAtT[best]) {
                    best = ti;
                }
            }
            System.out.printf(
                    Locale.ROOT,
                    "%s: ΔPPL %+.3f %% (each at its best T: %+.3f %%, T %.2f), ΔNLL %+.6f nats/token (top-1 right %+.6f,"
                            + " wrong %+.6f), KL %.6f, Δentropy %+.6f%n",
                    args[2 + j],
                    100 * Math.expm1(s.dNll / tokens),
                    100 * Math.expm1((s.nllAtT[best] - refBest) / tokens),
                    TEMPERATURES[best],
                    s.dNll / tokens,
                    s.dNllRight / refRight,
                    (s.dNll - s.dNllRight) / (tokens - refRight),
                    s.kl / tokens,
                    s.dEntropy / tokens);
        }
        ref.close();
        for (Qwen2Model c : cands) {
            c.close();
        }
    }

    /** Per-token sums of one candidate's differences from the reference. */
    private static final class Sums {
        double dNll;
        double dNllRight;
        double kl;
        double dEntropy;
        final double[] nllAtT = new double[TEMPERATURES.length];

        void add(double dNllHere, boolean refRight, double klHere, double dEntropyHere) {
            dNll += dNllHere;
            if (refRight) {
                dNllRight += dNllHere;
            }
            kl += klHere;
            dEntropy += dEntropyHere;
        }
    }

    private static float[] logits(Qwen2Model m, int[] w) {
        float[] x = m.embed(w);
        for (int i = 0; i < m.numLayers(); i++) {
            x = m.layer(i).forward(x, 1, w.length, LayerObserver.NONE);
        }
        return m.logits(x, w.length);
    }

    /** log softmax(scale · logits[off, off + n)) into out, in double. */
    private static double[] logSoftmax(float[] logits, int off, int n, double scale, double[] out) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, scale * logits[off + i]);
        }
        double z = 0;
        for (int i = 0; i < n; i++) {
            z += Math.exp(scale * logits[off + i] - max);
        }
        double logZ = Math.log(z);
        for (int i = 0; i < n; i++) {
            out[i] = scale * logits[off + i] - max - logZ;
        }
        return out;
    }

    private static double entropy(double[] logp) {
        double h = 0;
        for (double l : logp) {
            h -= Math.exp(l) * l;
        }
        return h;
    }
}
