package dev.m2q.core.tokenizer;

import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Byte-pair encoding of one pre-token: start from single characters and repeatedly merge the adjacent pair with
 * the lowest merge rank (leftmost first among equal ranks) until no adjacent pair has a merge.
 *
 * <p>The symbols form a linked list over an array and candidate merges wait in a priority queue ordered by (rank,
 * position), so a pre-token of n characters costs O(n log n) even when it is long. A candidate is checked when it
 * leaves the queue: since every pair has exactly one rank, a pair that still has the queued rank is still valid.
 * Results are cached per pre-token; the cache stops growing at {@link #CACHE_CAPACITY} entries.
 */
final class Bpe {
    private static final int CACHE_CAPACITY = 100_000;
    private static final int CACHE_MAX_WORD = 64;

    /** One merge rule: the pair (left, right) of token ids becomes {@code merged}; lower rank merges first. */
    record Merge(int rank, int merged) {}

    private final Map<String, Integer> vocab;
    private final Map<Long, Merge> merges;
    private final boolean ignoreMerges;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @param vocab token string (byte-level form) to id; must hold every single byte-level character
     * @param merges keyed by {@link #pair(int, int)}
     * @param ignoreMerges when true a pre-token that is itself in the vocabulary becomes that one id
     */
    Bpe(Map<String, Integer> vocab, Map<Long, Merge> merges, boolean ignoreMerges) {
        this.vocab = vocab;
        this.merges = merges;
        this.ignoreMerges = ignoreMerges;
    }

    static long pair(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFFFFFFL);
    }

    /** Token ids of one pre-token given in byte-level form (one character per UTF-8 byte). */
    int[] encode(String word) {
        int[] cached = cache.get(word);
        if (cached != null) {
            return cached;
        }
        int[] ids = merge(word);
        if (word.length() <= CACHE_MAX_WORD && cache.size() < CACHE_CAPACITY) {
            cache.put(word, ids);
        }
        return ids;
    }

    private int[] merge(String word) {
        if (ignoreMerges) {
            Integer whole = vocab.get(word);
            if (whole != null) {
                return new int[] {whole};
            }
        }
        int n = word.length();
        if (n == 0) {
            return new int[0];
        }
        /* [n]: token id at each live position, -1 once merged into its left neighbour */
        int[] sym = new int[n];
        /* [n]: previous / next live position, -1 at the ends */
        int[] prev = new int[n];
        int[] next = new int[n];
        for (int i = 0; i < n; i++) {
            sym[i] = vocab.get(String.valueOf(word.charAt(i)));
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        PriorityQueue<Long> queue = new PriorityQueue<>();
        for (int i = 0; i + 1 < n; i++) {
            offer(queue, sym, next, i);
        }
        int live = n;
        while (!queue.isEmpty()) {
            long entry = queue.poll();
            int rank = (int) (entry >>> 32);
            int i = (int) entry;
            if (sym[i] < 0 || next[i] < 0) {
                continue;
            }
            Merge m = merges.get(pair(sym[i], sym[next[i]]));
            if (m == null || m.rank() != rank) {
                continue;
            }
            int j = next[i];
            sym[i] = m.merged();
            sym[j] = -1;
            next[i] = next[j];
            if (next[j] >= 0) {
                prev[next[j]] = i;
            }
            live--;
            if (prev[i] >= 0) {
                offer(queue, sym, next, prev[i]);
            }
            if (next[i] >= 0) {
                offer(queue, sym, next, i);
            }
        }
        int[] out = new int[live];
        for (int i = 0, k = 0; i >= 0; i = next[i]) {
            out[k++] = sym[i];
        }
        return out;
    }

    private void offer(PriorityQueue<Long> queue, int[] sym, int[] next, int i) {
        Merge m = merges.get(pair(sym[i], sym[next[i]]));
        if (m != null) {
            queue.add(((long) m.rank() << 32) | i);
        }
    }
}
