package dev.m2q.core.model;

/**
 * Keys (after RoPE) and values of the tokens seen so far, for incremental decoding of one sequence.
 * Per layer: k, v [capacity, kvHeads·headDim] fp32 row-major.
 */
public final class KvCache {
    private final float[][] keys;
    private final float[][] values;
    private final int capacity;
    private final int kvDim;
    private int length;

    public KvCache(ModelConfig config, int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("KV cache capacity must be positive, got " + capacity);
        }
        this.capacity = capacity;
        this.kvDim = config.kvDim();
        keys = new float[config.numLayers()][];
        values = new float[config.numLayers()][];
        for (int l = 0; l < config.numLayers(); l++) {
            keys[l] = new float[capacity * kvDim];
            values[l] = new float[capacity * kvDim];
        }
    }

    /** Tokens cached (every layer holds the same count once a forward step has finished). */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /** Forgets every token. */
    public void clear() {
        length = 0;
    }

    /** Drops tokens from position {@code newLength} on (speculative decoding rolls back rejected drafts). */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate a cache of " + length + " tokens to " + newLength);
        }
        length = newLength;
    }

    float[] keys(int layer) {
        return keys[layer];
    }

    float[] values(int layer) {
        return values[layer];
    }

    int kvDim() {
        return kvDim;
    }

    void advance(int tokens) {
        length += tokens;
    }
}
