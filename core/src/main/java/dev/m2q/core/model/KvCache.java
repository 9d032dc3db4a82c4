package dev.m2q.core.model;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Kernels;

/**
 * Keys (after RoPE) and values of the tokens seen so far, for incremental decoding of one sequence, resident on a
 * {@link Backend} (device memory under CUDA): they never cross to the host. Per layer: k, v [capacity,
 * kvHeads·headDim] fp32 row-major. {@link #close()} frees them.
 */
public final class KvCache implements AutoCloseable {
    private final Backend backend;
    private final Backend.Buf[] keys;
    private final Backend.Buf[] values;
    private final int capacity;
    private final int kvDim;
    private int length;

    /** A cache on the Java backend of {@link Kernels#fromProperty()}. */
    public KvCache(ModelConfig config, int capacity) {
        this(Kernels.fromProperty().backend(), config, capacity);
    }

    public KvCache(Backend backend, ModelConfig config, int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("KV cache capacity must be positive, got " + capacity);
        }
        this.backend = backend;
        this.capacity = capacity;
        this.kvDim = config.kvDim();
        keys = new Backend.Buf[config.numLayers()];
        values = new Backend.Buf[config.numLayers()];
        try {
            for (int l = 0; l < config.numLayers(); l++) {
                keys[l] = backend.alloc((long) capacity * kvDim);
                values[l] = backend.alloc((long) capacity * kvDim);
            }
        } catch (RuntimeException | Error e) {
            close();
            throw e;
        }
    }

    /** Tokens cached (every layer holds the same count once a forward step has finished). */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /** The backend holding the cache. */
    public Backend backend() {
        return backend;
    }

    /** Forgets every token. */
    public void clear() {
        length = 0;
    }

    /**
     * Drops tokens from position {@code newLength} on (speculative decoding rolls back rejected drafts): only the length
     * moves; nothing is copied or cleared, and the next forward overwrites the dropped rows in place.
     */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate a cache of " + length + " tokens to " + newLength);
        }
        length = newLength;
    }

    Backend.Buf keys(int layer) {
        return keys[layer];
    }

    Backend.Buf values(int layer) {
        return values[layer];
    }

    int kvDim() {
        return kvDim;
    }

    void advance(int tokens) {
        length += tokens;
    }

    @Override
    public void close() {
        for (Backend.Buf[] bufs : new Backend.Buf[][] {keys, values}) {
            for (Backend.Buf b : bufs) {
                if (b != null) {
                    b.close();
                }
            }
        }
    }
}
