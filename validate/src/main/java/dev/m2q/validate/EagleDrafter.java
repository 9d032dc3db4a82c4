package dev.m2q.validate;

import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.model.Qwen2Model;
import java.util.random.RandomGenerator;

/**
 * An EAGLE-3 head as {@link SpecDecode}'s drafter: rows g = fc(features) with the target's embedding of the next
 * token through {@link DraftModel#step}, one {@link DraftModel.Cache} per sequence; a chain continues from the last
 * row's hidden state h, each step reading the previous h and the embedding of the token it proposed.
 *
 * <p>Everything but the inputs and the logits stays on the head's backend: an append moves its features and
 * embedding rows in and nothing out (the last row's h stays resident); a chain step moves the logits of the draft
 * vocabulary out and the embedding row of the token it chose in. {@link #close()} frees the cache and h.
 */
public final class EagleDrafter implements SpecDecode.Drafter, AutoCloseable {
    private final DraftModel draft;
    private final Backend backend;
    private final Qwen2Model target;
    private final DraftVocab vocab;
    /** Target ids by draft id, ascending (the support of every draft distribution). */
    private final int[] targetIds;

    private DraftModel.Cache cache;
    /** [H] the pre-norm hidden state of the last appended row, resident; null when no row follows a truncation */
    private Buf last;

    public EagleDrafter(DraftModel draft, Qwen2Model target) {
        this.draft = draft;
        this.backend = draft.backend();
        this.target = target;
        this.vocab = draft.head().vocab();
        this.targetIds = vocab.targetIds();
    }

    @Override
    public void reset(int capacity) {
        close();
        cache = draft.newCache(capacity);
    }

    @Override
    public void append(float[] features, int[] next, int rows) {
        int h = draft.config().hiddenSize();
        Buf out;
        try (Buf f = backend.wrap(features.clone());
                Buf g = draft.project(f, rows);
                Buf e = backend.wrap(target.embed(next))) {
            out = draft.step(g, e, rows, cache);
        }
        try (out) {
            Buf row = backend.alloc(h);
            backend.copy(out, (long) (rows - 1) * h, row, 0, h);
            forget();
            last = row;
        }
    }

    @Override
    public SpecDecode.Proposal propose(int k, double temperature, RandomGenerator rng) {
        if (last == null) {
            throw new IllegalStateException("propose needs a row appended after the last truncation");
        }
        int length = cache.length();
        int vd = vocab.size();
        int[] tokens = new int[k];
        SpecDecode.Distribution[] q = temperature == 0 ? null : new SpecDecode.Distribution[k];
        Buf h = last;
        try {
            for (int j = 0; j < k; j++) {
                float[] logits = backend.take(draft.logits(h, 1));
                int id;
                if (temperature == 0) {
                    id = SpecDecode.argmax(logits, 0, vd);
                } else {
                    double[] p = SpecDecode.softmax(logits, 0, vd, temperature);
                    id = SpecDecode.sample(p, rng);
                    q[j] = new SpecDecode.Distribution(targetIds, p);
                }
                tokens[j] = vocab.targetId(id);
                if (j + 1 < k) {
                    Buf next;
                    try (Buf e = backend.wrap(target.embed(new int[] {tokens[j]}))) {
                        next = draft.step(h, e, 1, cache);
                    }
                    if (h != last) {
                        h.close();
                    }
                    h = next;
                }
            }
        } finally {
            if (h != last) {
                h.close();
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
        forget();
    }

    private void forget() {
        if (last != null) {
            last.close();
            last = null;
        }
    }

    /** Frees the cache and the resident hidden state (a later {@link #reset} starts afresh). */
    @Override
    public void close() {
        forget();
        if (cache != null) {
            cache.close();
            cache = null;
        }
    }
}
