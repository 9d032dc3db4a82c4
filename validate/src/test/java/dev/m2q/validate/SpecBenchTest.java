package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.InputException;
import org.junit.jupiter.api.Test;

/** The sweep's arithmetic: --k parsing, the α estimator and the speedup formula at values worked by hand. */
class SpecBenchTest {
    @Test
    void kListsAndRangesParse() {
        assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6, 7}, SpecBench.parseKs("1..7"));
        assertArrayEquals(new int[] {1, 3, 5}, SpecBench.parseKs("5,1,3"));
        assertArrayEquals(new int[] {1, 2, 3, 5}, SpecBench.parseKs("1..3, 5, 2"));
        for (String bad : new String[] {"0", "3..1", "x", "1..", "", "65"}) {
            assertThrows(InputException.class, () -> SpecBench.parseKs(bad), bad);
        }
    }

    @Test
    void theFormulaAtHandWorkedValues() {
        // α = 1/2, k = 2: τ = (1 − 1/8) / (1/2) = 7/4; with c = 1/4: 7/4 / (2/4 + 1) = 7/6. Exact in binary up to
        // the last rounding of each operation, hence 1e-15.
        assertEquals(1.75, SpecBench.predictedTau(0.5, 2), 1e-15);
        assertEquals(7.0 / 6, SpecBench.predictedSpeedup(0.5, 2, 0.25), 1e-15);
        assertEquals(4, SpecBench.predictedTau(1, 3));
        assertEquals(1, SpecBench.predictedTau(0, 5));
        // 3 of 4 first drafts and 1 of 3 second drafts accepted: α = 4 / 7.
        assertEquals(4.0 / 7, SpecBench.alphaOf(new long[] {4, 3}, new long[] {3, 1}), 1e-15);
        assertEquals(Double.NaN, SpecBench.alphaOf(new long[] {0, 0}, new long[] {0, 0}));
    }
}
