package dev.m2q.validate;

import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;
import java.util.Arrays;
import java.util.random.RandomGenerator;

/**
 * EAGLE-3 speculative decoding of one sequence (batch 1, ALGORITHMS §6), and plain decoding on the same target for
 * the baseline. With prompt x_0..x_{n−1}:
 *
 * <pre>
 * prefill   target.forwardTapped(x_0..x_{n−1}) → features f_t, logits; x_n chosen from the last logits
 *           draft rows t = 0..n−1: (f_t, x_{t+1})                               positions 0..n−1
 * round     d_1..d_k = drafter.propose(k)                                       chain from the draft's last row
 *           target.forwardTapped([x_n, d_1..d_k])                               positions n..n+k, one verify forward
 *           m = accepted drafts, y = the target's token at the first mismatch (or the bonus after all k)
 *           emit d_1..d_m, y; target cache truncated to n+m+1
 *           draft rows (f_{n+i}, next token) for i = 0..m, the features from the verify forward; x_n ← y, n ← n+m+1
 * </pre>
 *
 * At T = 0 a draft is accepted while it equals the target's argmax, so the output is the target's greedy output
 * token for token. At T > 0 the {@link Verifier#SPECULATIVE speculative sampling} rule keeps the output distributed
 * exactly as the target's tempered sampling.
 */
public final class SpecDecode {
    private final Qwen2Model target;
    private final int[] taps;
    private final Drafter drafter;
    private final Verifier verifier;

    /** The target as it decodes with {@code drafter}, which reads the target's residual stream entering {@code taps}. */
    public SpecDecode(Qwen2Model target, int[] taps, Drafter drafter) {
        this(target, taps, drafter, Verifier.SPECULATIVE);
    }

    SpecDecode(Qwen2Model target, int[] taps, Drafter drafter, Verifier verifier) {
        this.target = target;
        this.taps = taps.clone();
        this.drafter = drafter;
        this.verifier = verifier;
    }

    /**
     * A draft model as the loop drives it. Rows are appended at positions {@code length()}..; the row of position t
     * reads the target's features at t and the token at t + 1, and a chain of proposals continues from the last row.
     */
    public interface Drafter {
        /** Starts a new sequence of at most {@code capacity} rows. */
        void reset(int capacity);

        /**
         * Appends {@code rows} rows: the target's features of their positions, the first rows·F values of {@code
         * features} (it may hold more rows), and the token after each, next[0, rows).
         */
        void append(float[] features, int[] next, int rows);

        /**
         * Proposes k tokens after the last row's next token (greedy at T = 0, sampled from the draft's tempered
         * distribution otherwise). Leaves {@code length()} as it was: the chain's own rows are dropped.
         */
        Proposal propose(int k, double temperature, RandomGenerator rng);

        int length();

        /** Drops the rows from position {@code length} on. */
        void truncate(int length);
    }

    /**
     * A drafted chain.
     *
     * @param tokens [k] target token ids
     * @param q the distribution each token was drawn from, [k]; null when the drafter proposed deterministically
     *     (greedy, or an oracle): each proposal is then a point mass
     */
    public record Proposal(int[] tokens, Distribution[] q) {
        public Proposal {
            if (q != null && q.length != tokens.length) {
                throw new IllegalArgumentException(tokens.length + " tokens but " + q.length + " distributions");
            }
        }

        /** q_j(token): the probability the drafter gave {@code token} at draft position j (0-based). */
        double q(int j, int token) {
            if (q == null) {
                return token == tokens[j] ? 1 : 0;
            }
            return q[j].probability(token);
        }

        /** Whether p_i &gt; q_j(i) for some target id i: whether max(0, p − q_j) has positive mass. */
        boolean exceeds(int j, double[] p) {
            if (q == null) {
                int token = tokens[j];
                for (int i = 0; i < p.length; i++) {
                    if (p[i] > (i == token ? 1 : 0)) {
                        return true;
                    }
                }
                return false;
            }
            int[] ids = q[j].ids();
            double[] probs = q[j].probs();
            int next = 0;
            for (int i = 0; i < p.length; i++) {
                double qi = 0;
                if (next < ids.length && ids[next] == i) {
                    qi = probs[next++];
                }
                if (p[i] > qi) {
                    return true;
                }
            }
            return false;
        }

        /** w ← max(0, w − q_j) over the target vocabulary. */
        void subtract(int j, double[] w) {
            if (q == null) {
                w[tokens[j]] = Math.max(0, w[tokens[j]] - 1);
                return;
            }
            int[] ids = q[j].ids();
            double[] probs = q[j].probs();
            for (int i = 0; i < ids.length; i++) {
                w[ids[i]] = Math.max(0, w[ids[i]] - probs[i]);
            }
        }
    }

    /**
     * A distribution over target ids that is zero outside {@code ids}.
     *
     * @param ids target ids, strictly ascending (a draft vocabulary's)
     * @param probs [ids.length], summing to 1
     */
    public record Distribution(int[] ids, double[] probs) {
        public Distribution {
            if (ids.length != probs.length) {
                throw new IllegalArgumentException(ids.length + " ids but " + probs.length + " probabilities");
            }
        }

        double probability(int token) {
            int i = Arrays.binarySearch(ids, token);
            return i >= 0 ? probs[i] : 0;
        }
    }

    /**
     * How one decoding run is asked for.
     *
     * @param k drafts per round (ignored by {@link #plain})
     * @param temperature 0: greedy; otherwise sampling from softmax(logits / T) ({@link Sampler})
     * @param maxNewTokens tokens to generate, the first included
     * @param eos token ids that end the sequence (emitted, then decoding stops)
     */
    public record Settings(int k, double temperature, int maxNewTokens, int[] eos) {
        public Settings {
            if (k < 1) {
                throw new IllegalArgumentException("k must be ≥ 1, got " + k);
            }
            if (!(temperature >= 0) || Double.isInfinite(temperature)) {
                throw new IllegalArgumentException("temperature must be finite and ≥ 0, got " + temperature);
            }
            if (maxNewTokens < 1) {
                throw new IllegalArgumentException("max new tokens must be ≥ 1, got " + maxNewTokens);
            }
            eos = eos.clone();
        }

        boolean isEos(int token) {
            for (int e : eos) {
                if (e == token) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * One speculative run.
     *
     * @param tokens the new tokens, the first (chosen from the prefill's logits) included
     * @param rounds target verify forwards
     * @param roundTokens tokens the rounds emitted (tokens.length − 1): τ = roundTokens / rounds
     * @param proposed [k] rounds in which draft j was proposed
     * @param reached [k] rounds in which draft j was verified (every draft before it accepted)
     * @param accepted [k] rounds in which draft j was accepted
     * @param prefillNanos the target's prompt forward and the draft's prompt rows
     * @param targetNanos the verify forwards
     * @param draftNanos proposing and appending draft rows after the prefill
     */
    public record Result(
            int[] tokens,
            int rounds,
            int roundTokens,
            long[] proposed,
            long[] reached,
            long[] accepted,
            long prefillNanos,
            long targetNanos,
            long draftNanos) {
        /** Decode time: everything after the prefill. */
        public long decodeNanos() {
            return targetNanos + draftNanos;
        }
    }

    /**
     * One plain run: one target forward per token after the prefill.
     *
     * @param forwards target decode forwards (tokens.length − 1 unless stopped at eos)
     */
    public record PlainResult(int[] tokens, int forwards, long prefillNanos, long decodeNanos) {}

    /**
     * A prompt's target prefill and draft rows, kept so that many continuations can start from it. {@link #close()}
     * frees its target cache (device memory on a device backend).
     */
    public final class Prefilled implements AutoCloseable {
        private final int[] prompt;
        private final KvCache cache;
        /** [V] the logits after the last prompt token */
        private final float[] lastLogits;
        /** [F] the target's features at the last prompt position */
        private final float[] lastFeatures;

        private final long nanos;

        private Prefilled(int[] prompt, KvCache cache, float[] lastLogits, float[] lastFeatures, long nanos) {
            this.prompt = prompt;
            this.cache = cache;
            this.lastLogits = lastLogits;
            this.lastFeatures = lastFeatures;
            this.nanos = nanos;
        }

        public int[] prompt() {
            return prompt.clone();
        }

        @Override
        public void close() {
            cache.close();
        }
    }

    /**
     * Runs the target over {@code prompt} and appends the draft rows of positions 0..n−2 (the last row needs
     * x_n, which each continuation chooses). {@code capacity}: the most positions a continuation reaches.
     */
    public Prefilled prefill(int[] prompt, int capacity) {
        int n = prompt.length;
        if (n < 1) {
            throw new IllegalArgumentException("an empty prompt");
        }
        long t0 = System.nanoTime();
        KvCache cache = target.newCache(capacity);
        try {
            Qwen2Model.Tapped t = target.forwardTapped(prompt, cache, taps);
            float[] features = t.features();
            int f = features.length / n;
            int vocab = target.config().vocabSize();
            drafter.reset(capacity);
            if (n > 1) {
                drafter.append(features, Arrays.copyOfRange(prompt, 1, n), n - 1);
            }
            return new Prefilled(
                    prompt.clone(),
                    cache,
                    Arrays.copyOfRange(t.logits(), (n - 1) * vocab, n * vocab),
                    Arrays.copyOfRange(features, (n - 1) * f, n * f),
                    System.nanoTime() - t0);
        } catch (RuntimeException | Error e) {
            cache.close();
            throw e;
        }
    }

    /** Prefills {@code prompt} and decodes it speculatively. */
    public Result generate(int[] prompt, Settings s, RandomGenerator rng) {
        try (Prefilled p = prefill(prompt, capacity(prompt.length, s))) {
            return generate(p, s, rng);
        }
    }

    /** Positions a run of {@code s} from a prompt of n tokens can reach: the last round may overshoot by k. */
    public static int capacity(int n, Settings s) {
        return n + s.maxNewTokens() + s.k() + 1;
    }

    /**
     * Decodes one continuation of {@code p} speculatively; afterwards the target cache and the drafter are back at
     * the prefill's state, so {@code p} can start another.
     */
    public Result generate(Prefilled p, Settings s, RandomGenerator rng) {
        int n = p.prompt.length;
        if (p.cache.capacity() < capacity(n, s)) {
            throw new IllegalArgumentException("the prefill's cache holds " + p.cache.capacity()
                    + " positions, this run" + " may reach " + capacity(n, s));
        }
        int k = s.k();
        int vocab = target.config().vocabSize();
        long[] proposed = new long[k];
        long[] reached = new long[k];
        long[] accepted = new long[k];
        int[] out = new int[s.maxNewTokens()];
        int count = 0;
        int rounds = 0;
        long targetNanos = 0;
        long draftNanos = 0;
        try {
            int x = Sampler.choose(p.lastLogits, 0, vocab, s.temperature(), rng);
            out[count++] = x;
            if (count == out.length || s.isEos(x)) {
                return result(out, count, 0, proposed, reached, accepted, p.nanos, 0, 0);
            }
            long t0 = System.nanoTime();
            drafter.append(p.lastFeatures, new int[] {x}, 1);
            draftNanos += System.nanoTime() - t0;
            boolean done = false;
            // reused every round: the verify ids and the tokens a round appends (the drafter reads next[0, m + 1))
            int[] verify = new int[k + 1];
            int[] next = new int[k + 1];
            while (!done) {
                t0 = System.nanoTime();
                Proposal d = drafter.propose(k, s.temperature(), rng);
                long t1 = System.nanoTime();
                verify[0] = x;
                System.arraycopy(d.tokens(), 0, verify, 1, k);
                int start = p.cache.length();
                Qwen2Model.Tapped t = target.forwardTapped(verify, p.cache, taps);
                Verdict v = verifier.verify(t.logits(), vocab, d, s.temperature(), rng);
                int m = v.accepted();
                p.cache.truncate(start + m + 1);
                long t2 = System.nanoTime();
                rounds++;
                for (int j = 0; j < k; j++) {
                    proposed[j]++;
                }
                for (int j = 0; j <= Math.min(m, k - 1); j++) {
                    reached[j]++;
                }
                for (int j = 0; j < m; j++) {
                    accepted[j]++;
                }
                System.arraycopy(d.tokens(), 0, next, 0, m);
                next[m] = v.next();
                for (int i = 0; i <= m; i++) {
                    int token = next[i];
                    out[count++] = token;
                    if (count == out.length || s.isEos(token)) {
                        done = true;
                        break;
                    }
                }
                if (!done) {
                    // the verify forward's features of all k + 1 rows: the drafter reads the first m + 1
                    drafter.append(t.features(), next, m + 1);
                    x = v.next();
                }
                long t3 = System.nanoTime();
                draftNanos += (t1 - t0) + (t3 - t2);
                targetNanos += t2 - t1;
            }
            return result(out, count, rounds, proposed, reached, accepted, p.nanos, targetNanos, draftNanos);
        } finally {
            p.cache.truncate(n);
            drafter.truncate(n - 1);
        }
    }

    private static Result result(
            int[] out,
            int count,
            int rounds,
            long[] proposed,
            long[] reached,
            long[] accepted,
            long prefill,
            long target,
            long draft) {
        return new Result(
                Arrays.copyOf(out, count), rounds, count - 1, proposed, reached, accepted, prefill, target, draft);
    }

    /** Plain decoding of {@code prompt} on the target alone: one forward per token, the same sampling rule. */
    public PlainResult plain(int[] prompt, Settings s, RandomGenerator rng) {
        int vocab = target.config().vocabSize();
        long t0 = System.nanoTime();
        try (KvCache cache = target.newCache(prompt.length + s.maxNewTokens())) {
            float[] logits = target.forward(prompt, cache, true);
            long prefill = System.nanoTime() - t0;
            int[] out = new int[s.maxNewTokens()];
            int count = 0;
            int forwards = 0;
            int[] id = new int[1];
            t0 = System.nanoTime();
            while (true) {
                int x = Sampler.choose(logits, 0, vocab, s.temperature(), rng);
                out[count++] = x;
                if (count == out.length || s.isEos(x)) {
                    break;
                }
                id[0] = x;
                logits = target.forward(id, cache, true);
                forwards++;
            }
            return new PlainResult(Arrays.copyOf(out, count), forwards, prefill, System.nanoTime() - t0);
        }
    }

    /**
     * A round's outcome.
     *
     * @param accepted drafts accepted, 0..k
     * @param next the target's token after them: the correction at the first rejection, or the bonus
     */
    record Verdict(int accepted, int next) {}

    /** Judges a proposal against the target's logits of the verify forward, [k+1, V]. */
    interface Verifier {
        Verdict verify(float[] logits, int vocab, Proposal d, double temperature, RandomGenerator rng);

        /**
         * T = 0: accept d_j while it is the target's argmax; the argmax at the first mismatch (or after d_k) follows.
         * T > 0 (Leviathan et al. 2023, Chen et al. 2023): accept d_j with probability min(1, p(d_j) / q(d_j)),
         * p = softmax(target logits / T) over the whole vocabulary and q the drafter's distribution; on rejection
         * draw from normalize(max(0, p − q)) and stop; after k acceptances draw the bonus from p of the last row.
         * Each emitted token is then distributed as p given the tokens before it.
         */
        Verifier SPECULATIVE = (logits, vocab, d, temperature, rng) -> {
            int k = d.tokens().length;
            for (int j = 0; j < k; j++) {
                int token = d.tokens()[j];
                if (temperature == 0) {
                    int best = Sampler.argmax(logits, j * vocab, vocab);
                    if (token != best) {
                        return new Verdict(j, best);
                    }
                    continue;
                }
                double[] p = Sampler.softmax(logits, j * vocab, vocab, temperature, Sampler.scratch(vocab));
                double q = d.q(j, token);
                if (rng.nextDouble() * q < p[token]) {
                    continue;
                }
                // The residual max(0, p − q) is formed in p itself (p is not needed after it). Its mass is 0 only
                // when p ≤ q everywhere (p = q), where rejection has probability 0; a rejection by rounding there is
                // answered with a draw from p, the limit of the residual. Whether the mass is positive is whether
                // some p_i > q_i (a sum of non-negative doubles is 0 only when each term is), checked before p is
                // overwritten.
                if (d.exceeds(j, p)) {
                    d.subtract(j, p);
                }
                return new Verdict(j, Sampler.sample(p, rng));
            }
            return new Verdict(k, Sampler.choose(logits, k * vocab, vocab, temperature, rng));
        };
    }
}
