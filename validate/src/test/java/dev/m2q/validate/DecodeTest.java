package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** When {@link Decode#tokensPerSecond} stops timing runs. */
class DecodeTest {
    @Test
    void theFirstRunsAreAlwaysTimed() {
        for (int runs = 0; runs < Decode.TIMED_RUNS; runs++) {
            assertTrue(Decode.moreRuns(runs, 5, Long.MAX_VALUE), "run " + runs);
        }
    }

    @Test
    void timingGoesOnWhileRunsGetFasterAndStopsThreeRunsAfterTheLastGain() {
        assertTrue(Decode.moreRuns(Decode.TIMED_RUNS, 0, 0));
        assertTrue(Decode.moreRuns(7, Decode.STALE_RUNS - 1, 1_000_000));
        assertFalse(Decode.moreRuns(7, Decode.STALE_RUNS, 1_000_000));
    }

    @Test
    void timingStopsAtTheRunAndTimeLimitsEvenWhileRunsGetFaster() {
        assertTrue(Decode.moreRuns(Decode.MAX_TIMED_RUNS - 1, 0, Decode.MAX_TIMED_NANOS - 1));
        assertFalse(Decode.moreRuns(Decode.MAX_TIMED_RUNS, 0, 0));
        assertFalse(Decode.moreRuns(Decode.TIMED_RUNS, 0, Decode.MAX_TIMED_NANOS));
    }
}
