package dev.m2q.core.model;

/**
 * Perplexity over a token sequence in non-overlapping windows: ids are cut into consecutive windows of
 * {@code seqLen} tokens; each window of n ≥ 2 tokens starts at position 0 with no carried state and contributes
 * its n − 1 next-token predictions; ppl = exp(total NLL / predictions). Log-softmax in double.
 */
public final class Perplexity {
    /** @param tokens ids scored; predicted = next-token predictions; nll = their summed negative log-likelihood */
    public record Result(int tokens, long predicted, double nll, int windows) {
        public double ppl() {
            return Math.exp(nll / predicted);
        }

        public double meanNll() {
            return nll / predicted;
        }
    }

    private Perplexity() {}

    public static Result evaluate(Qwen2Model model, int[] ids, int seqLen) {
        if (seqLen < 2) {
            throw new IllegalArgumentException("seqlen must be at least 2, got " + seqLen);
        }
        if (ids.length < 2) {
            throw new IllegalArgumentException("need at least 2 tokens for a perplexity, got " + ids.length);
        }
        int vocab = model.config().vocabSize();
        double nll = 0;
        long predicted = 0;
        int windows = 0;
        for (int start = 0; start < ids.length; start += seqLen) {
            int n = Math.min(seqLen, ids.length - start);
            if (n < 2) {
                break;
            }
            int[] window = new int[n];
            System.arraycopy(ids, start, window, 0, n);
            float[] logits = model.forward(window);
            for (int t = 0; t < n - 1; t++) {
                nll -= logSoftmax(logits, t * vocab, vocab, window[t + 1]);
            }
            predicted += n - 1;
            windows++;
        }
        return new Result(ids.length, predicted, nll, windows);
    }

    /** log p(target) under softmax of logits[off, off + n). */
    public static double logSoftmax(float[] logits, int off, int n, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(logits[off + i] - max);
        }
        return logits[off + target] - max - Math.log(sum);
    }
}
