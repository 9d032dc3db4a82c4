package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The release's time-left arithmetic on a synthetic run. The figures are sums and products of small binary-exact
 * numbers (work counts, seconds), so the expected values are exact up to the rounding of a few divisions: 1e-9 s.
 */
class RunEtaTest {
    private static final double EPS = 1e-9;

    private static List<RunEta.Stage> stages(double... previous) {
        Map<String, Double> validate = new LinkedHashMap<>();
        validate.put("window", 40.0);
        validate.put("speculative run", 10.0);
        return List.of(
                new RunEta.Stage("quantize", Map.of("layer", 100.0), previous[0], false),
                new RunEta.Stage("eagle-data", Map.of("prompt", 50.0), previous[1]),
                new RunEta.Stage("eagle-train", Map.of("step", 200.0), previous[2]),
                new RunEta.Stage("attach", Map.of("attach", 0.0), previous[3]),
                new RunEta.Stage("validate", validate, previous[4]));
    }

    private static final double N = Double.NaN;

    @Test
    void aFirstRunHasNoEtaUntilTheFirstUnitsThenTheCostModelsAtTheMeasuredRate() {
        RunEta eta = new RunEta(stages(N, N, N, N, N));
        assertTrue(eta.runLeft(0).isEmpty(), "nothing measured, nothing recorded: unknown");
        eta.start(0, 0);
        assertTrue(eta.runLeft(5).isEmpty(), "started but no unit done: still unknown");
        assertTrue(eta.stageLeft(5).isEmpty());
        // 1 of 4 layers after 10 s: 25 work units in 10 s, 0.4 s per unit.
        eta.progress("layer", 1, 4);
        assertEquals(0.25, eta.stageFraction(), EPS);
        assertEquals(30, eta.stageLeft(10).orElseThrow(), EPS); // 75 units at 0.4 s
        // The run: the quantize stage's 30 s, then eagle-data 50, eagle-train 200, attach 0, validate 50 units,
        // all at 0.4 s per unit.
        assertEquals(30 + 0.4 * (50 + 200 + 0 + 50), eta.runLeft(10).orElseThrow(), EPS);

        // Quantize ends at 40 s: the rate is its whole 100 units in 40 s, again 0.4 s per unit.
        eta.finish(40);
        assertEquals(0.4 * 300, eta.runLeft(40).orElseThrow(), EPS);
        // Eagle data runs five times as slow per unit: after 10 of 50 prompts in 20 s (10 units of work, 2 s each)
        // its own rate says 80 s left; the stages not started now go at its rate alone, 2 s per unit, since
        // quantize's seconds per unit also hold its solves.
        eta.start(1, 40);
        for (int k = 1; k <= 10; k++) {
            eta.progress("prompt", k, 50);
        }
        double rate = 20.0 / 10;
        assertEquals(80, eta.stageLeft(60).orElseThrow(), EPS);
        assertEquals(80 + rate * (200 + 50), eta.runLeft(60).orElseThrow(), EPS);
    }

    @Test
    void anEarlierRunsTimesAreUsedForStagesNotStarted() {
        RunEta eta = new RunEta(stages(100, 20, 80, 1, 30));
        assertEquals(231, eta.runLeft(0).orElseThrow(), EPS);
        eta.start(0, 0);
        // Before its first unit the running stage counts its earlier time less what has passed.
        assertEquals(231 - 30, eta.runLeft(30).orElseThrow(), EPS);
        // Then its own rate: half done in 60 s leaves 60 s; the others keep their recorded times.
        eta.progress("layer", 1, 4);
        eta.progress("layer", 2, 4);
        assertEquals(60 + 20 + 80 + 1 + 30, eta.runLeft(60).orElseThrow(), EPS);
    }

    @Test
    void aSkippedStageCostsNothingAndAResumedStageIsTimedOnWhatItRan() {
        RunEta eta = new RunEta(stages(N, N, N, N, N));
        eta.skip(0);
        eta.skip(1);
        // Eagle train continues an interrupted run: its first report is step 151 of 200 after 4 s. Stages report
        // every unit, so one step (one unit of work) ran in this process: 4 s per unit, 49 units left in the stage.
        eta.start(2, 0);
        eta.progress("step", 151, 200);
        assertEquals(196, eta.stageLeft(4).orElseThrow(), EPS);
        // Attach has no work; validate's 50 units at the run's rate (4 s per unit).
        assertEquals(196 + 4 * 50, eta.runLeft(4).orElseThrow(), EPS);
    }

    @Test
    void aStageWithPhasesCountsTheWorkOfThePhasesBeforeTheRunningOne() {
        RunEta eta = new RunEta(stages(N, N, N, N, N));
        for (int i = 0; i < 4; i++) {
            eta.skip(i);
        }
        eta.start(4, 0);
        for (int k = 1; k <= 4; k++) {
            eta.progress("window", k, 4);
        }
        assertEquals(0.8, eta.stageFraction(), EPS);
        for (int k = 1; k <= 5; k++) {
            eta.progress("speculative run", k, 10);
        }
        assertEquals(0.9, eta.stageFraction(), EPS);
        // 45 units in 9 s: 0.2 s per unit, 5 units left.
        assertEquals(1, eta.stageLeft(9).orElseThrow(), EPS);
        assertEquals(1, eta.runLeft(9).orElseThrow(), EPS);
        eta.finish(10);
        assertEquals(0, eta.runLeft(10).orElseThrow(), EPS);
    }

    @Test
    void aStageTheCostModelCannotSizeLeavesTheRunUnknownUntilItIsMeasured() {
        List<RunEta.Stage> s = List.of(
                new RunEta.Stage("quantize", Map.of("layer", 100.0), N),
                new RunEta.Stage("validate", Map.of("validate", Double.NaN), N));
        RunEta eta = new RunEta(s);
        eta.start(0, 0);
        eta.progress("layer", 1, 2);
        assertFalse(eta.runLeft(1).isPresent());
        eta.finish(2);
        eta.start(1, 2);
        eta.progress("window", 1, 4); // not a phase the model knows: timed by the phase's own share
        assertEquals(3, eta.stageLeft(3).orElseThrow(), EPS);
        assertEquals(3, eta.runLeft(3).orElseThrow(), EPS);
    }
}
