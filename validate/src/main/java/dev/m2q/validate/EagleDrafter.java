package dev.m2q.validate;

import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;
import java.util.random.RandomGenerator;

/**
 * An EAGLE-3 head as {@link SpecDecode}'s drafter: rows g = fc(features) with the target's embedding of the next
 * token through {@link DraftModel#step}, one {@link DraftModel.Cache} per sequence; a chain continues from the last
 * row's hidden state h, each step reading the previous h and the embedding of the token it proposed.
 *
 * <p>Everything but the inputs and the logits stays on the head's backend: an append moves its features and
 * embedding rows in and nothing out (the last row's h stays resident); a chain step moves the logits of the draft
 * vocabulary out and the embedding row of the token it chose in. Every buffer, resident or host, is made by {@link
 * #reset} (or grown by an append of more rows than before) and reused, so a chain step allocates none: the draft
 * model's intermediate buffers live in its cache, the chain's hidden states alternate between two buffers, and at
 * T &gt; 0 the draft distributions are written into arrays kept per draft position. {@link #close()} frees them.
 */
public final class EagleDrafter implements SpecDecode.Drafter, AutoCloseable {
    private final DraftModel draft;
    private final Backend backend;
    private final Qwen2Model target;
    private final DraftVocab vocab;
    /** Target ids by draft id, ascending (the support of every draft distribution). */
    private final int[] targetIds;

    private final int hidden;
    private DraftModel.Cache cache;
    /** [H] the pre-norm hidden state of the last appended row, resident; meaningful only while {@link #hasLast} */
    private Buf last;

    private boolean hasLast;

    // Reused from step to step and round to round, so that a chain step allocates nothing (made in reset, grown for
    // appends of more rows than before, freed by close).
    /** [H] the chain's hidden states, written alternately (a step's output must not be its input) */
    private Buf chainA;

    private Buf chainB;
    /** [H] the embedding row a chain step reads, resident, and its host copy */
    private Buf embRow;

    private float[] embHost;
    /** [V_d] a chain step's logits, resident, and their host copy */
    private Buf logits;

    private float[] logitsHost;
    /** An append's features [rows, 3H], g [rows, H], embedding rows [rows, H] and output [rows, H], for appendRows */
    private Buf appendFeatures;

    private Buf appendG;
    private Buf appendEmb;
    private Buf appendOut;
    private float[] appendEmbHost;
    private int appendRows;
    /** The proposal's arrays, reused by every round of the same k (a proposal is read before the next is made) */
    private int[] tokens;

    private double[][] probs;
    private SpecDecode.Distribution[] dists;

    public EagleDrafter(DraftModel draft, Qwen2Model target) {
        this.draft = draft;
        this.backend = draft.backend();
        this.target = target;
        this.vocab = draft.head().vocab();
        this.targetIds = vocab.targetIds();
        this.hidden = draft.config().hiddenSize();
    }

    @Override
    public void reset(int capacity) {
        close();
        cache = draft.newCache(capacity);
        last = backend.alloc(hidden);
        chainA = backend.alloc(hidden);
        chainB = backend.alloc(hidden);
        embRow = backend.alloc(hidden);
        logits = backend.alloc(vocab.size());
        embHost = new float[hidden];
        logitsHost = new float[vocab.size()];
    }

    /** The append buffers for at least {@code rows} rows (remade only for more rows than any append before). */
    private void appendBuffers(int rows) {
        if (rows <= appendRows) {
            return;
        }
        freeAppendBuffers();
        appendFeatures = backend.alloc((long) rows * 3 * hidden);
        appendG = backend.alloc((long) rows * hidden);
        appendEmb = backend.alloc((long) rows * hidden);
        appendOut = backend.alloc((long) rows * hidden);
        appendEmbHost = new float[rows * hidden];
        appendRows = rows;
    }

    /**
     * {@inheritDoc} The first rows·3H values of {@code features} are read (it may hold more rows), and they and the
     * embedding rows cross in once each; the last row's hidden state stays resident.
     */
    @Override
    public void append(float[] features, int[] next, int rows) {
        int h = hidden;
        appendBuffers(rows);
        backend.write(features, 0, appendFeatures, 0, rows * 3 * h);
        for (int r = 0; r < rows; r++) {
            target.embedRow(next[r], appendEmbHost, r * h);
        }
        backend.write(appendEmbHost, 0, appendEmb, 0, rows * h);
        draft.project(appendFeatures, rows, appendG);
        draft.step(appendG, appendEmb, rows, cache, appendOut);
        backend.copy(appendOut, (long) (rows - 1) * h, last, 0, h);
        hasLast = true;
    }

    /**
     * {@inheritDoc} Each step reads its logits out into a reused host array and writes the chosen token's embedding row
     * in; the hidden states alternate between two resident buffers. The returned proposal's arrays are reused by the
     * next call with the same k: read it before proposing again.
     */
    @Override
    public SpecDecode.Proposal propose(int k, double temperature, RandomGenerator rng) {
        if (!hasLast) {
            throw new IllegalStateException("propose needs a row appended after the last truncation");
        }
        int length = cache.length();
        int vd = vocab.size();
        if (tokens == null || tokens.length != k) {
            tokens = new int[k];
            probs = new double[k][];
            dists = new SpecDecode.Distribution[k];
        }
        SpecDecode.Distribution[] q = temperature == 0 ? null : dists;
        Buf h = last;
        for (int j = 0; j < k; j++) {
            draft.logits(h, 1, cache, logits);
            backend.read(logits, 0, logitsHost, 0, vd);
            int id;
            if (temperature == 0) {
                id = Sampler.argmax(logitsHost, 0, vd);
            } else {
                if (probs[j] == null) {
                    probs[j] = new double[vd];
                    dists[j] = new SpecDecode.Distribution(targetIds, probs[j]);
                }
                Sampler.softmax(logitsHost, 0, vd, temperature, probs[j]);
                id = Sampler.sample(probs[j], rng);
            }
            tokens[j] = vocab.targetId(id);
            if (j + 1 < k) {
                target.embedRow(tokens[j], embHost, 0);
                backend.write(embHost, 0, embRow, 0, hidden);
                Buf next = h == chainA ? chainB : chainA;
                draft.step(h, embRow, 1, cache, next);
                h = next;
            }
        }
        cache.truncate(length);
        return new SpecDecode.Proposal(tokens, q);
    }

    @Override
    public int length() {
        return cache.length();
    }

    @Override
    public void truncate(int length) {
        cache.truncate(length);
        hasLast = false;
    }

    private void freeAppendBuffers() {
        for (Buf b : new Buf[] {appendFeatures, appendG, appendEmb, appendOut}) {
            if (b != null) {
                b.close();
            }
        }
        appendFeatures = appendG = appendEmb = appendOut = null;
        appendEmbHost = null;
        appendRows = 0;
    }

    /** Frees the cache and the resident buffers (a later {@link #reset} starts afresh). */
    @Override
    public void close() {
        freeAppendBuffers();
        for (Buf b : new Buf[] {last, chainA, chainB, embRow, logits}) {
            if (b != null) {
                b.close();
            }
        }
        last = chainA = chainB = embRow = logits = null;
        hasLast = false;
        if (cache != null) {
            cache.close();
            cache = null;
        }
    }
}
