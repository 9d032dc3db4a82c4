package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Epochs without replacement, reproducible from the seed. */
class BatchSamplerTest {
    @Test
    void everySampleOncePerEpochThenAFreshShuffle() {
        BatchSampler s = new BatchSampler(10, 3, 42);
        for (int epoch = 0; epoch < 4; epoch++) {
            Set<Integer> seen = new HashSet<>();
            for (int b = 0; b < 3; b++) { // 3 batches of 3 per epoch; the tenth index waits for the next shuffle
                for (int i : s.next()) {
                    assertTrue(i >= 0 && i < 10, "index " + i);
                    assertTrue(seen.add(i), "index " + i + " twice in epoch " + epoch);
                }
            }
            assertEquals(9, seen.size());
        }
    }

    @Test
    void theSeedDeterminesTheBatches() {
        BatchSampler a = new BatchSampler(16, 4, 7);
        BatchSampler b = new BatchSampler(16, 4, 7);
        BatchSampler c = new BatchSampler(16, 4, 8);
        boolean differs = false;
        for (int i = 0; i < 12; i++) {
            int[] x = a.next();
            assertArrayEquals(x, b.next());
            differs |= !Arrays.equals(x, c.next());
        }
        assertTrue(differs, "another seed draws other batches");
        int[] whole = new BatchSampler(5, 5, 1).next();
        Arrays.sort(whole);
        assertArrayEquals(new int[] {0, 1, 2, 3, 4}, whole, "batch = samples: all of them every step");
        assertFalse(Arrays.equals(new BatchSampler(8, 8, 1).next(), new int[] {0, 1, 2, 3, 4, 5, 6, 7}));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(4, 5, 1));
    }
}
