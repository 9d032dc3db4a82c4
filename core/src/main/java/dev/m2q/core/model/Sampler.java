package dev.m2q.core.model;

import java.util.random.RandomGenerator;

/**
 * The next token from a row of logits, the one way m2q chooses it: greedy at T = 0 (the largest logit, the lowest
 * id on ties), otherwise one draw from softmax(logits / T), computed in double and sampled by inverting its
 * cumulative sum at one uniform. Plain decoding, speculative decoding (its drafts, its verifier's residual and its
 * bonus token) and EAGLE-3's response generation all call it, so the same logits and the same uniform draw give the
 * same token in each of them.
 * {@link #choose} needs no buffer per token: the probabilities go to a per-thread scratch array.
 */
public final class Sampler {
    private Sampler() {}

    /** Each thread's probability buffer, [n] of the last n asked for. */
    private static final ThreadLocal<double[][]> SCRATCH =
            ThreadLocal.withInitial(() -> new double[][] {new double[0]});

    /**
     * The greedy token (T = 0) or a draw from softmax(row / T) of logits row [off, off + vocab), relative to off;
     * the probabilities in this thread's {@link #scratch}.
     */
    public static int choose(float[] logits, int off, int vocab, double temperature, RandomGenerator rng) {
        if (temperature == 0) {
            return argmax(logits, off, vocab);
        }
        return sample(softmax(logits, off, vocab, temperature, scratch(vocab)), rng);
    }

    /** {@link #choose} over the whole array. */
    public static int choose(float[] logits, double temperature, RandomGenerator rng) {
        return choose(logits, 0, logits.length, temperature, rng);
    }

    /**
     * This thread's buffer of exactly n doubles (made again only when n changes), so that choosing a token
     * allocates nothing. Its contents are the last caller's.
     */
    public static double[] scratch(int n) {
        double[][] holder = SCRATCH.get();
        if (holder[0].length != n) {
            holder[0] = new double[n];
        }
        return holder[0];
    }

    /** Index of the largest value (the first on ties): greedy decoding's choice. */
    public static int argmax(float[] v) {
        return argmax(v, 0, v.length);
    }

    /** Index of the largest of v[off, off + n) (the first on ties), relative to off. */
    public static int argmax(float[] v, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (v[off + i] > v[off + best]) {
                best = i;
            }
        }
        return best;
    }

    /** softmax(v[off, off + n) / T) in double, as a new array. */
    public static double[] softmax(float[] v, int off, int n, double temperature) {
        return softmax(v, off, n, temperature, new double[n]);
    }

    /** softmax(v[off, off + n) / T) in double, written into p[0, n); returns p. */
    public static double[] softmax(float[] v, int off, int n, double temperature, double[] p) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, v[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            p[i] = Math.exp((v[off + i] - max) / temperature);
            sum += p[i];
        }
        for (int i = 0; i < n; i++) {
            p[i] /= sum;
        }
        return p;
    }

    /**
     * An index drawn from the weights w (not necessarily normalized) by one uniform: the inverse of their
     * cumulative sum. A uniform that falls into the rounding gap at the top of the sum takes the last index with
     * weight, never one of weight 0.
     */
    public static int sample(double[] w, RandomGenerator rng) {
        double total = 0;
        for (double x : w) {
            total += x;
        }
        double u = rng.nextDouble() * total;
        double c = 0;
        int last = 0;
        for (int i = 0; i < w.length; i++) {
            if (w[i] > 0) {
                c += w[i];
                last = i;
                if (u < c) {
                    return i;
                }
            }
        }
        return last;
    }
}
