package dev.m2q.core.draft;

import dev.m2q.core.InputException;
import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * The draft vocabulary: V_d target token ids, ascending; draft id i is target id {@link #targetId(int) ids[i]}. The
 * engines read it as two tensors (FORMATS §5): {@code d2t} [V_d] I64 with target = i + d2t[i], and {@code t2d} [V]
 * BOOL, true exactly at the target ids in the draft vocabulary. Every constructor checks the invariants.
 */
public final class DraftVocab {
    private final int[] ids;
    private final int targetVocab;

    private DraftVocab(int[] ids, int targetVocab) {
        if (ids.length == 0) {
            throw new InputException("draft vocabulary is empty");
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= targetVocab) {
                throw new InputException(
                        "draft id " + i + " maps to target id " + ids[i] + ", outside [0, " + targetVocab + ")");
            }
            if (i > 0 && ids[i] <= ids[i - 1]) {
                throw new InputException("draft vocabulary is not strictly ascending at draft id " + i + " (target ids "
                        + ids[i - 1] + ", " + ids[i] + ")");
            }
        }
        this.ids = ids;
        this.targetVocab = targetVocab;
    }

    /** The vocabulary of these target ids (strictly ascending, each below {@code targetVocab}). */
    public static DraftVocab of(int[] targetIds, int targetVocab) {
        return new DraftVocab(targetIds.clone(), targetVocab);
    }

    /**
     * The {@code size} most frequent target ids by {@code counts} [V] (ties: the lower id first), sorted ascending.
     */
    public static DraftVocab mostFrequent(long[] counts, int size) {
        if (size <= 0 || size > counts.length) {
            throw new InputException("draft vocabulary size " + size + " must be in [1, " + counts.length + "]");
        }
        int[] top = IntStream.range(0, counts.length)
                .boxed()
                .sorted(Comparator.<Integer>comparingLong(i -> -counts[i]).thenComparingInt(i -> i))
                .limit(size)
                .mapToInt(Integer::intValue)
                .sorted()
                .toArray();
        return new DraftVocab(top, counts.length);
    }

    /**
     * Reads the engines' tensors, checking that t2d's true positions are exactly {i + d2t[i]}, ascending, V_d of them.
     */
    public static DraftVocab fromTensors(long[] d2t, boolean[] t2d) {
        int[] ids = new int[d2t.length];
        for (int i = 0; i < d2t.length; i++) {
            long t = i + d2t[i];
            if (t < 0 || t >= t2d.length) {
                throw new InputException("d2t[" + i + "] = " + d2t[i] + " maps draft id " + i + " to target id " + t
                        + ", outside [0, " + t2d.length + ")");
            }
            ids[i] = (int) t;
        }
        DraftVocab v = new DraftVocab(ids, t2d.length);
        int trues = 0;
        for (int t = 0; t < t2d.length; t++) {
            if (t2d[t]) {
                trues++;
                if (v.draftId(t) < 0) {
                    throw new InputException("t2d[" + t + "] is true but no draft id maps to target id " + t);
                }
            }
        }
        for (int i = 0; i < ids.length; i++) {
            if (!t2d[ids[i]]) {
                throw new InputException(
                        "draft id " + i + " maps to target id " + ids[i] + " but t2d[" + ids[i] + "] is false");
            }
        }
        if (trues != ids.length) {
            throw new InputException("t2d has " + trues + " true entries, d2t " + ids.length);
        }
        return v;
    }

    public int size() {
        return ids.length;
    }

    public int targetVocab() {
        return targetVocab;
    }

    public int targetId(int draftId) {
        return ids[draftId];
    }

    /** The draft id of {@code targetId}, or −1 when the draft vocabulary lacks it. */
    public int draftId(int targetId) {
        int i = Arrays.binarySearch(ids, targetId);
        return i >= 0 ? i : -1;
    }

    /** Target ids by draft id (a copy). */
    public int[] targetIds() {
        return ids.clone();
    }

    /** d2t [V_d]: target id − draft id. */
    public long[] d2t() {
        long[] d = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            d[i] = ids[i] - i;
        }
        return d;
    }

    /** t2d [V]: membership of each target id. */
    public boolean[] t2d() {
        boolean[] t = new boolean[targetVocab];
        for (int id : ids) {
            t[id] = true;
        }
        return t;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DraftVocab v && v.targetVocab == targetVocab && Arrays.equals(v.ids, ids);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(ids) + targetVocab;
    }
}
