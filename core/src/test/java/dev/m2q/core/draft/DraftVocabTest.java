package dev.m2q.core.draft;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import org.junit.jupiter.api.Test;

/** The draft vocabulary and its engine tensors: integer paths, so every check is exact. */
class DraftVocabTest {
    @Test
    void mostFrequentTakesTheTopCountsLowerIdFirstOnTiesSortedAscending() {
        long[] counts = {5, 9, 0, 9, 7, 1, 7, 3};
        DraftVocab v = DraftVocab.mostFrequent(counts, 4);
        // 9 (ids 1, 3), then 7 (ids 4, 6): sorted ascending.
        assertArrayEquals(new int[] {1, 3, 4, 6}, v.targetIds());
        DraftVocab tie = DraftVocab.mostFrequent(counts, 3);
        assertArrayEquals(new int[] {1, 3, 4}, tie.targetIds(), "the tie at count 7 goes to the lower id");
        assertEquals(8, DraftVocab.mostFrequent(counts, 8).size());
        assertThrows(InputException.class, () -> DraftVocab.mostFrequent(counts, 9));
        assertThrows(InputException.class, () -> DraftVocab.mostFrequent(counts, 0));
    }

    @Test
    void d2tAndT2dDescribeTheSameIdsAndReadBack() {
        DraftVocab v = DraftVocab.of(new int[] {0, 2, 3, 7, 9}, 10);
        assertArrayEquals(new long[] {0, 1, 1, 4, 5}, v.d2t());
        boolean[] t2d = v.t2d();
        int trues = 0;
        for (int t = 0; t < t2d.length; t++) {
            trues += t2d[t] ? 1 : 0;
            assertEquals(t2d[t], v.draftId(t) >= 0, "t2d[" + t + "]");
        }
        assertEquals(5, trues);
        for (int i = 0; i < v.size(); i++) {
            assertEquals(i, v.draftId(v.targetId(i)));
        }
        assertEquals(v, DraftVocab.fromTensors(v.d2t(), t2d));
    }

    @Test
    void refusesEveryBrokenInvariant() {
        assertThrows(InputException.class, () -> DraftVocab.of(new int[] {3, 2}, 10), "descending");
        assertThrows(InputException.class, () -> DraftVocab.of(new int[] {2, 2}, 10), "repeated");
        assertThrows(InputException.class, () -> DraftVocab.of(new int[] {1, 10}, 10), "id = V");
        assertThrows(InputException.class, () -> DraftVocab.of(new int[] {}, 10), "empty");
        DraftVocab v = DraftVocab.of(new int[] {1, 4, 6}, 8);
        boolean[] extra = v.t2d();
        extra[0] = true;
        assertTrue(assertThrows(InputException.class, () -> DraftVocab.fromTensors(v.d2t(), extra))
                .getMessage()
                .contains("t2d[0]"));
        boolean[] missing = v.t2d();
        missing[4] = false;
        assertThrows(InputException.class, () -> DraftVocab.fromTensors(v.d2t(), missing));
        long[] outside = v.d2t();
        outside[2] = 5; // draft id 2 → target id 7, which t2d does not hold
        assertThrows(InputException.class, () -> DraftVocab.fromTensors(outside, v.t2d()));
        long[] beyond = v.d2t();
        beyond[2] = 6; // → target id 8 = V
        assertThrows(InputException.class, () -> DraftVocab.fromTensors(beyond, v.t2d()));
    }
}
