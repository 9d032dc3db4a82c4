package dev.m2q.validate;

import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.model.Qwen2Model;
import java.util.Arrays;
import java.util.random.RandomGenerator;

/**
 * An EAGLE-3 head as {@link SpecDecode}'s drafter: rows g = fc(features) with the target's embedding of the next
 * token through {@link DraftModel#step}, one {@link DraftModel.Cache} per sequence; a chain continues from the last
 * row's hidden state h, each step reading the previous h and the embedding of the token it proposed.
 */
public final class EagleDrafter implements SpecDecode.Drafter {
    private final DraftModel draft;
    private final Qwen2Model target;
    private final DraftVocab vocab;
    /** Target ids by draft id, ascending (the support of every draft distribution). */
    private final int[] targetIds;

    private DraftModel.Cache cache;
    /** [H] the pre-norm hidden state of the last appended row; null when no row follows a truncation */
    private float[] last;

    public EagleDrafter(DraftModel draft, Qwen2Model target) {
        this.draft = draft;
        this.target = target;
        this.vocab = draft.head().vocab();
        this.targetIds = vocab.targetIds();
    }

    @Override
    public void reset(int capacity) {
        cache = draft.newCache(capacity);
        last = null;
    }

    @Override
    public void append(float[] features, int[] next, int rows) {
        int h = draft.config().hiddenSize();
        float[] out = draft.step(draft.project(features, rows), target.embed(next), rows, cache);
        last = Arrays.copyOfRange(out, (rows - 1) * h, rows * h);
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
        float[] h = last;
        for (int j = 0; j < k; j++) {
            float[] logits = draft.logits(h, 1);
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
                h = draft.step(h, target.embed(new int[] {tokens[j]}), 1, cache);
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
        last = null;
    }
}
