package dev.m2q.kernels;

import dev.m2q.core.kernels.Matrix;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * Weights uploaded once per {@link Matrix} object and kept on the device while that object lives: keys are the
 * matrices' identities (not their record equality), held weakly, so a matrix the program drops is freed on the
 * device at the next cache access after the collector clears it. Entries are kept in least-recently-used order
 * and evicted from the oldest when an allocation runs out of device memory ({@link #evictOne()}), except the one
 * the running operation holds ({@link #acquire}).
 *
 * <p>Weights are assumed not to change while cached (mapped checkpoint tensors, quantized results): an F32 matrix
 * whose array is modified after its first use on the device would be served stale.
 *
 * <p>Not thread-safe: {@link CudaKernels} calls it under its own lock.
 */
final class WeightCache {
    /** A weak identity key: equal to another key only for the same live referent (or the same key object). */
    private static final class Key extends WeakReference<Matrix> {
        private final int hash;

        Key(Matrix m, ReferenceQueue<Matrix> queue) {
            super(m, queue);
            this.hash = System.identityHashCode(m);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public boolean equals(Object o) {
            if (o == this) {
                return true;
            }
            if (!(o instanceof Key other)) {
                return false;
            }
            Matrix m = get();
            return m != null && m == other.get();
        }
    }

    private final ReferenceQueue<Matrix> collected = new ReferenceQueue<>();
    private final LinkedHashMap<Key, DeviceWeights> entries = new LinkedHashMap<>(16, 0.75f, true);
    private Key held;
    private long bytes;

    /**
     * The device copy of {@code m}, uploaded by {@code upload} on first use, held (never evicted) until
     * {@link #release()}.
     */
    DeviceWeights acquire(Matrix m, Function<Matrix, DeviceWeights> upload) {
        if (held != null) {
            throw new IllegalStateException("a cached weight is already held: release it first");
        }
        purge();
        Key probe = new Key(m, null);
        DeviceWeights w = entries.get(probe);
        if (w == null) {
            w = upload.apply(m);
            Key key = new Key(m, collected);
            entries.put(key, w);
            bytes += w.bytes();
            held = key;
        } else {
            held = probe;
        }
        return w;
    }

    /** Ends the hold of the last {@link #acquire}. */
    void release() {
        held = null;
    }

    /** Frees the least recently used entry that is not held; false when there is none. */
    boolean evictOne() {
        purge();
        Iterator<Map.Entry<Key, DeviceWeights>> it = entries.entrySet().iterator();
        while (it.hasNext()) {
            Map.Entry<Key, DeviceWeights> e = it.next();
            if (held != null && e.getKey().equals(held)) {
                continue;
            }
            it.remove();
            bytes -= e.getValue().bytes();
            e.getValue().close();
            return true;
        }
        return false;
    }

    /** Frees every entry (the held one too: only for shutdown). */
    void clear() {
        for (DeviceWeights w : entries.values()) {
            w.close();
        }
        entries.clear();
        bytes = 0;
        held = null;
    }

    int size() {
        purge();
        return entries.size();
    }

    /** Device bytes held by the cache. */
    long bytes() {
        return bytes;
    }

    /** Frees the entries whose matrices were collected. */
    private void purge() {
        for (Reference<? extends Matrix> r; (r = collected.poll()) != null; ) {
            DeviceWeights w = entries.remove((Key) r);
            if (w != null) {
                bytes -= w.bytes();
                w.close();
            }
        }
    }
}
