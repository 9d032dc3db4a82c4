package dev.m2q.validate;

import dev.m2q.validate.tasks.TaskStats;
import java.util.Arrays;
import java.util.List;

/**
 * How closely one quantized model follows the reference on the same tokens (ALGORITHMS.md §6), accumulated window
 * by window: next-token NLL (for perplexity), per-token KL(P_ref ‖ P_q), top-1 agreement, and per-layer relative
 * output error ‖h_q − h_ref‖ / ‖h_ref‖ over all positions (root of summed squares, so long windows weigh by their
 * tokens). Everything is accumulated in double.
 */
final class Agreement {
    private final String label;
    private final double[] diffSq;
    private final double[] refSq;
    private double[] kl = new double[1024];
    private int positions;
    private int top1;
    private double nll;
    private long predicted;
    /** Per finished window: its summed next-token NLL (for the bootstrap of {@link PplStats}). */
    private double[] windowNll = new double[16];
    /** Per finished window: the sum of its positions' KL (every position, the last included). */
    private double[] windowKl = new double[16];

    private int windows;
    private double openNll;
    private double openKl;

    Agreement(String label, int layers) {
        this.label = label;
        this.diffSq = new double[layers];
        this.refSq = new double[layers];
    }

    String label() {
        return label;
    }

    /** Hidden states after layer {@code layer}: h [rows·dim] of both models on the same tokens. */
    void layer(int layer, float[] ref, float[] q) {
        double d = 0;
        double r = 0;
        for (int i = 0; i < ref.length; i++) {
            double e = (double) q[i] - ref[i];
            d += e * e;
            r += (double) ref[i] * ref[i];
        }
        diffSq[layer] += d;
        refSq[layer] += r;
    }

    /** A logit row's max, log Σ exp(l − max) and argmax: its log-softmax is l − max − logZ. */
    record Row(double max, double logZ, int argmax) {
        static Row of(float[] logits, int off, int n) {
            double max = Double.NEGATIVE_INFINITY;
            int arg = 0;
            for (int i = 0; i < n; i++) {
                if (logits[off + i] > max) {
                    max = logits[off + i];
                    arg = i;
                }
            }
            double sum = 0;
            for (int i = 0; i < n; i++) {
                sum += Math.exp(logits[off + i] - max);
            }
            return new Row(max, Math.log(sum), arg);
        }

        double logProb(float[] logits, int off, int i) {
            return logits[off + i] - max - logZ;
        }
    }

    /**
     * One position: the reference's logits (with their {@link Row}, computed once per position for every model
     * compared) and this model's; {@code target} is the next token, or −1 at a window's last position, which has
     * no next token but still counts for KL and top-1.
     */
    void position(float[] refLogits, Row ref, float[] qLogits, int off, int vocab, int target) {
        Row q = Row.of(qLogits, off, vocab);
        double k = 0;
        for (int i = 0; i < vocab; i++) {
            double lp = ref.logProb(refLogits, off, i);
            k += Math.exp(lp) * (lp - q.logProb(qLogits, off, i));
        }
        if (positions == kl.length) {
            kl = Arrays.copyOf(kl, 2 * kl.length);
        }
        double klHere = Math.max(0, k);
        kl[positions++] = klHere;
        openKl += klHere;
        if (ref.argmax() == q.argmax()) {
            top1++;
        }
        if (target >= 0) {
            double lp = q.logProb(qLogits, off, target);
            nll -= lp;
            openNll -= lp;
            predicted++;
        } else {
            if (windows == windowNll.length) {
                windowNll = Arrays.copyOf(windowNll, 2 * windows);
                windowKl = Arrays.copyOf(windowKl, 2 * windows);
            }
            windowNll[windows] = openNll;
            windowKl[windows++] = openKl;
            openNll = 0;
            openKl = 0;
        }
    }

    /** Each finished window's summed next-token NLL, in window order (a window ends at its target −1 position). */
    double[] windowNll() {
        return Arrays.copyOf(windowNll, windows);
    }

    /** Each finished window's summed per-position KL, in window order (its positions: its predictions + 1). */
    double[] windowKl() {
        return Arrays.copyOf(windowKl, windows);
    }

    double ppl() {
        return Math.exp(nll / predicted);
    }

    double[] kl() {
        return Arrays.copyOf(kl, positions);
    }

    double klMean() {
        double s = 0;
        for (int i = 0; i < positions; i++) {
            s += kl[i];
        }
        return s / positions;
    }

    /** The 99th percentile, nearest-rank: the smallest value with at least 99% of the positions at or below it. */
    double klP99() {
        double[] sorted = kl();
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(0.99 * sorted.length);
        return sorted[Math.max(0, rank - 1)];
    }

    double top1() {
        return (double) top1 / positions;
    }

    double[] layerErrors() {
        double[] e = new double[diffSq.length];
        for (int i = 0; i < e.length; i++) {
            e[i] = Math.sqrt(diffSq[i] / refSq[i]);
        }
        return e;
    }

    /** The figures as validation.json writes them, with the reference perplexity for the increase. */
    ValidationReport.ModelFigures figures(double refPpl) {
        return figures(refPpl, null);
    }

    /**
     * {@link #figures(double)} with the increase's paired bootstrap interval over the windows (when {@code ref} is
     * given: the reference's per-window NLL and predicted tokens, the same windows) and this model's per-window NLL
     * and KL sums.
     */
    ValidationReport.ModelFigures figures(double refPpl, ValidationReport.PplWindows ref) {
        List<Double> ci = null;
        List<Double> perWindow = null;
        List<Double> perWindowKl = null;
        if (ref != null) {
            double[] mine = windowNll();
            TaskStats.Interval i = PplStats.increaseInterval(
                    ref.referenceNllArray(), mine, ref.tokensArray(), ref.resamples(), ref.seed());
            ci = List.of(i.low(), i.high());
            perWindow = Arrays.stream(mine).boxed().toList();
            perWindowKl = Arrays.stream(windowKl()).boxed().toList();
        }
        return new ValidationReport.ModelFigures(
                label,
                ppl(),
                100 * (ppl() / refPpl - 1),
                ci,
                klMean(),
                klP99(),
                top1(),
                positions,
                Arrays.stream(layerErrors()).boxed().toList(),
                perWindow,
                perWindowKl);
    }
}
