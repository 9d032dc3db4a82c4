package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Permutations are index shuffles: everything here is exact. */
class ActOrderTest {
    @Test
    void descendingDiagonalStableOnTies() {
        // diag = 1, 5, 3, 5, 0
        float[] h = new float[25];
        float[] d = {1, 5, 3, 5, 0};
        for (int i = 0; i < 5; i++) {
            h[i * 5 + i] = d[i];
        }
        assertArrayEquals(new int[] {1, 3, 2, 0, 4}, ActOrder.permutation(h, 5));
    }

    @Test
    void permutationThenInverseIsIdentity() {
        SplittableRandom rnd = new SplittableRandom(2);
        int k = 37;
        int n = 5;
        float[] h = Fixtures.hessian(rnd, 80, k);
        int[] perm = ActOrder.permutation(h, k);
        int[] inv = ActOrder.inverse(perm);
        for (int i = 0; i < k; i++) {
            assertEquals(i, perm[inv[i]]);
        }
        float[] w = Fixtures.heavyTailedWeights(rnd, n, k);
        assertArrayEquals(w, ActOrder.permuteColumns(ActOrder.permuteColumns(w, n, k, perm), n, k, inv));
        float[] wt = Fixtures.heavyTailedWeights(rnd, k, n);
        assertArrayEquals(wt, ActOrder.permuteRows(ActOrder.permuteRows(wt, k, n, perm), k, n, inv));
        float[] hp = ActOrder.permuteSymmetric(h, k, perm);
        for (int i = 1; i < k; i++) {
            assertTrue(hp[(i - 1) * k + i - 1] >= hp[i * k + i], "diagonal descending after permuting");
        }
        assertArrayEquals(h, ActOrder.permuteSymmetric(hp, k, inv));
    }

    @Test
    void inverseRejectsNonPermutations() {
        assertThrows(IllegalArgumentException.class, () -> ActOrder.inverse(new int[] {0, 0, 1}));
        assertThrows(IllegalArgumentException.class, () -> ActOrder.inverse(new int[] {0, 3}));
    }
}
