package dev.m2q.eagle.train;

import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.grad.Tensor;
import java.util.List;

/**
 * What the draft is trained towards at each position of a batch (ALGORITHMS §5): at position p the target
 * predicts token p + 1 with the distribution softmax(targetLogits[p]). A position counts when token p + 1 exists
 * and is an assistant token. Its label is the target's argmax over the full vocabulary (for top-1) and, when that
 * argmax lies in the draft vocabulary, the target's distribution restricted to the draft vocabulary and
 * renormalized (for the loss); a position whose argmax the draft cannot emit is a top-1 miss outside the loss.
 */
final class TargetLabels {
    /**
     * @param argmax the target's top-1 token over the full vocabulary (lowest id on ties)
     * @param probs [V_d] the renormalized restricted distribution by draft id, or null when argmax is not in the
     *     draft vocabulary
     */
    record Label(int argmax, double[] probs) {}

    private final Label[][] labels;

    private TargetLabels(Label[][] labels) {
        this.labels = labels;
    }

    static TargetLabels of(List<TrainingSequence> batch, DraftVocab vocab) {
        Label[][] labels = new Label[batch.size()][];
        int vd = vocab.size();
        for (int b = 0; b < batch.size(); b++) {
            TrainingSequence s = batch.get(b);
            int t = s.length();
            int v = s.targetLogits().length / t;
            if (v != vocab.targetVocab()) {
                throw new IllegalArgumentException("sequence " + b + " has target logits over " + v
                        + " tokens, the draft vocabulary maps into " + vocab.targetVocab());
            }
            float[] logits = s.targetLogits();
            labels[b] = new Label[t];
            for (int p = 0; p + 1 < t; p++) {
                if (!s.lossMask()[p + 1]) {
                    continue;
                }
                int off = p * v;
                int argmax = 0;
                for (int i = 1; i < v; i++) {
                    if (logits[off + i] > logits[off + argmax]) {
                        argmax = i;
                    }
                }
                double[] probs = null;
                if (vocab.draftId(argmax) >= 0) {
                    probs = new double[vd];
                    double max = logits[off + argmax];
                    double sum = 0;
                    for (int d = 0; d < vd; d++) {
                        probs[d] = Math.exp(logits[off + vocab.targetId(d)] - max);
                        sum += probs[d];
                    }
                    for (int d = 0; d < vd; d++) {
                        probs[d] /= sum;
                    }
                }
                labels[b][p] = new Label(argmax, probs);
            }
        }
        return new TargetLabels(labels);
    }

    /** The label at position p of sequence b, or null when that position does not count. */
    Label at(int b, int p) {
        return p < labels[b].length ? labels[b][p] : null;
    }

    /**
     * The soft cross-entropy −Σ_v p_v·log q_v of row {@code row} of z [rows, V_d] with q = softmax(z); when dz is
     * not null, adds coef·(q − p) to its row, the gradient of coef times that loss (Σ p = 1).
     */
    static double softCrossEntropy(Tensor z, int row, double[] p, Tensor dz, double coef) {
        int vd = z.cols();
        int off = row * vd;
        double max = Double.NEGATIVE_INFINITY;
        for (int d = 0; d < vd; d++) {
            max = Math.max(max, z.get(off + d));
        }
        double sum = 0;
        for (int d = 0; d < vd; d++) {
            sum += Math.exp(z.get(off + d) - max);
        }
        double logSum = max + Math.log(sum);
        double ce = 0;
        for (int d = 0; d < vd; d++) {
            double logQ = z.get(off + d) - logSum;
            ce -= p[d] * logQ;
            if (dz != null) {
                dz.add(off + d, coef * (Math.exp(logQ) - p[d]));
            }
        }
        return ce;
    }

    /** The first index of row {@code row}'s largest entry in z [rows, V_d]. */
    static int argmax(Tensor z, int row) {
        int vd = z.cols();
        int best = 0;
        for (int d = 1; d < vd; d++) {
            if (z.get(row * vd + d) > z.get(row * vd + best)) {
                best = d;
            }
        }
        return best;
    }
}
