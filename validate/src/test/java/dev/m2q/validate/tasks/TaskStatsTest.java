package dev.m2q.validate.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The statistics against closed-form or published values, and the gate at its boundary. */
class TaskStatsTest {

    @Test
    void mcnemarMatchesTheClosedFormBinomial() {
        // p = min(1, 2·Σ_{i ≤ min(b, c)} C(b + c, i) / 2^(b + c)), exact fractions.
        assertEquals(0.0625, TaskStats.mcnemarExact(0, 5), 0); // 2/32
        assertEquals(0.0625, TaskStats.mcnemarExact(5, 0), 0);
        assertEquals(0.109375, TaskStats.mcnemarExact(2, 8), 1e-15); // 2·56/1024
        assertEquals(0.109375, TaskStats.mcnemarExact(8, 2), 1e-15);
        assertEquals(22.0 / 1024, TaskStats.mcnemarExact(1, 9), 1e-15);
        assertEquals(1, TaskStats.mcnemarExact(0, 0), 0, "no discordant pair: no evidence");
        assertEquals(1, TaskStats.mcnemarExact(3, 3), 0, "2·42/64 > 1 is capped at 1");
        assertEquals(0.5, TaskStats.mcnemarExact(0, 2), 0);
        assertThrows(IllegalArgumentException.class, () -> TaskStats.mcnemarExact(-1, 2));
    }

    @Test
    void mcnemarMatchesExactArithmeticOnLargeCounts() {
        // The log-space sum against BigInteger arithmetic where 2^-(b+c) underflows a double (b + c > 1074).
        int[][] cases = {{10, 20}, {45, 70}, {400, 470}, {900, 1000}, {2000, 2150}, {3000, 3000}};
        for (int[] bc : cases) {
            double exact = exactMcnemar(bc[0], bc[1]);
            double got = TaskStats.mcnemarExact(bc[0], bc[1]);
            assertEquals(exact, got, 1e-12 * Math.max(exact, 1e-300), "b = " + bc[0] + ", c = " + bc[1]);
        }
    }

    private static double exactMcnemar(int b, int c) {
        int n = b + c;
        BigInteger sum = BigInteger.ZERO;
        BigInteger term = BigInteger.ONE; // C(n, 0)
        for (int i = 0; i <= Math.min(b, c); i++) {
            if (i > 0) {
                term = term.multiply(BigInteger.valueOf(n - i + 1)).divide(BigInteger.valueOf(i));
            }
            sum = sum.add(term);
        }
        BigDecimal p = new BigDecimal(sum.shiftLeft(1))
                .divide(new BigDecimal(BigInteger.ONE.shiftLeft(n)), new MathContext(30));
        return Math.min(1, p.doubleValue());
    }

    @Test
    void wilsonMatchesNewcombesPublishedIntervals() {
        // Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (score interval without continuity correction),
        // printed to 4 decimals: a correct implementation is within half a unit of the last digit.
        double tol = 0.5e-4 + 1e-9;
        assertInterval(0.2553, 0.3662, TaskStats.wilson(81, 263), tol);
        assertInterval(0.0624, 0.1605, TaskStats.wilson(15, 148), tol);
        assertInterval(0.0000, 0.1611, TaskStats.wilson(0, 20), tol);
        assertInterval(0.0061, 0.1718, TaskStats.wilson(1, 29), tol);
        // Symmetry and the exact ends at 0/n and n/n.
        TaskStats.Interval all = TaskStats.wilson(20, 20);
        assertEquals(1, all.high(), 0);
        assertEquals(1 - 0.1611, all.low(), tol);
        assertEquals(0, TaskStats.wilson(0, 20).low(), 0);
        assertTrue(Double.isNaN(TaskStats.wilson(0, 0).low()), "no items, no interval");
        assertThrows(IllegalArgumentException.class, () -> TaskStats.wilson(5, 4));
    }

    private static void assertInterval(double low, double high, TaskStats.Interval got, double tol) {
        assertEquals(low, got.low(), tol, "low end");
        assertEquals(high, got.high(), tol, "high end");
    }

    @Test
    void bootstrapIsDeterministicForASeed() {
        SplittableRandom rnd = new SplittableRandom(7);
        boolean[] r = new boolean[300];
        boolean[] c = new boolean[300];
        for (int i = 0; i < r.length; i++) {
            r[i] = rnd.nextDouble() < 0.7;
            c[i] = rnd.nextDouble() < 0.1 ? !r[i] : r[i];
        }
        TaskStats.Interval a = TaskStats.bootstrapDifference(r, c, 10_000, 42);
        TaskStats.Interval b = TaskStats.bootstrapDifference(r, c, 10_000, 42);
        assertEquals(a, b, "same data, same seed: the same interval bit for bit");
        assertTrue(a.low() < a.high(), "mixed flips give an interval of positive width: " + a);
    }

    @Test
    void identicalPairsGiveAZeroInterval() {
        List<ItemResult> items = new ArrayList<>();
        for (int i = 0; i < 120; i++) {
            items.add(new ItemResult("q" + i, i % 4, i % 3 != 0));
        }
        TaskComparison c = TaskStats.compare(run("reference", items), run("candidate", items), null);
        assertEquals(new TaskStats.Interval(0, 0), c.deltaInterval());
        assertEquals(0, c.deltaPoints(), 0);
        assertEquals(1, c.mcnemarP(), 0);
        assertEquals(1, c.agreement(), 0);
        assertEquals(0, c.rightToWrong() + c.wrongToRight());
        assertTrue(new AccuracyGate(0).check(c).passed(), "a zero drop is within 0 points");
        assertFalse(new AccuracyGate(-0.01).check(c).passed(), "a gain of 0.01 points is not shown");
    }

    /** 400 items; the reference gets 320 right; the damaged candidate loses 130 of them and gains 10: Δ = −30. */
    private static TaskComparison damaged(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<ItemResult> ref = new ArrayList<>();
        List<ItemResult> cand = new ArrayList<>();
        List<Integer> right = new ArrayList<>();
        List<Integer> wrong = new ArrayList<>();
        for (int i = 0; i < 400; i++) {
            (i < 320 ? right : wrong).add(i);
        }
        java.util.Collections.shuffle(right, new java.util.Random(rnd.nextLong()));
        java.util.Collections.shuffle(wrong, new java.util.Random(rnd.nextLong()));
        boolean[] refOk = new boolean[400];
        boolean[] candOk = new boolean[400];
        for (int k = 0; k < 320; k++) {
            refOk[right.get(k)] = true;
            candOk[right.get(k)] = k >= 130;
        }
        for (int k = 0; k < 80; k++) {
            candOk[wrong.get(k)] = k < 10;
        }
        for (int i = 0; i < 400; i++) {
            ref.add(new ItemResult("item" + i, refOk[i] ? 0 : 1, refOk[i]));
            cand.add(new ItemResult("item" + i, candOk[i] ? 0 : 2, candOk[i]));
        }
        return TaskStats.compare(run("reference", ref), run("candidate", cand), null);
    }

    @Test
    void aDamagedCandidateIsFlaggedAndFailsTheGate() {
        TaskComparison c = damaged(3);
        assertEquals(-30, c.deltaPoints(), 1e-12);
        assertEquals(130, c.rightToWrong());
        assertEquals(10, c.wrongToRight());
        TaskStats.Interval ci = c.deltaInterval();
        assertTrue(ci.high() < 0, "the interval excludes 0: " + ci);
        assertTrue(ci.contains(-30), "and contains the true −30: " + ci);
        // The per-item differences are −1 (130), +1 (10), 0 (260): sd of the mean = √((140/400 − 0.09)/400), so the
        // normal interval is −30 ± 1.96·2.55 = ±5.0 points. The percentile bootstrap on 400 items must land within
        // 1 point of it at each end (its Monte Carlo error with 10,000 resamples is about 0.1 point, the grid of Δ
        // 0.25 point); a wrong level (68% or 99%) would miss by 2.4 points or more.
        double se = 100 * Math.sqrt((140.0 / 400 - 0.09) / 400);
        assertEquals(-30 - TaskStats.Z95 * se, ci.low(), 1.0);
        assertEquals(-30 + TaskStats.Z95 * se, ci.high(), 1.0);
        assertTrue(c.mcnemarP() < 1e-20, "McNemar: 130 against 10 is no accident: " + c.mcnemarP());
        assertEquals(5, c.rightToWrongExamples().size(), "up to 5 examples");
        assertEquals(5, c.wrongToRightExamples().size());

        AccuracyGate.Result fail = new AccuracyGate(5).check(c);
        assertFalse(fail.passed());
        assertEquals(-ci.low(), fail.value(), 0, "the gate reads the upper end of the drop's interval");
        assertTrue(fail.sentence().contains("gates on the upper end of the 95% interval of the drop"), fail.sentence());
        assertTrue(fail.sentence().endsWith("**fail**"), fail.sentence());
        assertTrue(new AccuracyGate(40).check(c).passed(), "a drop of at most ~35 points is within 40");
        // Not enough that the point estimate is within: a limit between the drop and its upper end fails.
        assertFalse(new AccuracyGate(31).check(c).passed());
    }

    @Test
    void theGatesBoundaryIsInclusive() {
        TaskComparison c = damaged(11);
        double upper = c.dropInterval().high();
        assertTrue(new AccuracyGate(upper).check(c).passed(), "upper end = limit passes");
        assertFalse(new AccuracyGate(Math.nextDown(upper)).check(c).passed(), "just below fails");

        // Every answer lost: every resample has Δ = −100 exactly, so the drop's interval is [100, 100].
        List<ItemResult> ref = new ArrayList<>();
        List<ItemResult> cand = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            ref.add(new ItemResult("q" + i, 0, true));
            cand.add(new ItemResult("q" + i, 1, false));
        }
        TaskComparison lost = TaskStats.compare(run("reference", ref), run("candidate", cand), null);
        assertEquals(new TaskStats.Interval(100, 100), lost.dropInterval());
        assertTrue(new AccuracyGate(100).check(lost).passed());
        assertFalse(new AccuracyGate(Math.nextDown(100.0)).check(lost).passed());
        assertEquals(
                List.of(true, false),
                new AccuracyGate(upper)
                        .check(List.of(c, lost)).stream()
                                .map(AccuracyGate.Result::passed)
                                .toList());
        assertThrows(IllegalArgumentException.class, () -> new AccuracyGate(Double.NaN));
    }

    @Test
    void bootstrapCoversTheTrueDifference() {
        // 200 simulated paired data sets of 200 items: the reference right w.p. 0.7; a right answer flips to wrong
        // w.p. 0.15, a wrong one to right w.p. 0.1, so the true Δ = −0.7·0.15 + 0.3·0.1 = −7.5 points. A 95%
        // interval should cover it in about 95% of the sets (binomial sd over 200 sets: 1.5%; the percentile method
        // runs a little short at this n). Outside [88%, 99%] the level is wrong.
        SplittableRandom rnd = new SplittableRandom(2026);
        int covered = 0;
        int sets = 200;
        for (int s = 0; s < sets; s++) {
            boolean[] r = new boolean[200];
            boolean[] c = new boolean[200];
            for (int i = 0; i < r.length; i++) {
                r[i] = rnd.nextDouble() < 0.7;
                c[i] = r[i] ? rnd.nextDouble() >= 0.15 : rnd.nextDouble() < 0.1;
            }
            if (TaskStats.bootstrapDifference(r, c, 1000, s).contains(-7.5)) {
                covered++;
            }
        }
        double coverage = (double) covered / sets;
        assertTrue(coverage >= 0.88 && coverage <= 0.99, "coverage " + coverage);
    }

    @Test
    void flipsAgreementAndExamplesFollowTheItems() {
        // The reference right on q1..q8; the candidate right on q1..q6 and q9.
        TaskComparison c = TaskReportTest.small();
        assertEquals(List.of("q7", "q8"), c.rightToWrongExamples());
        assertEquals(List.of("q9"), c.wrongToRightExamples());
        assertEquals(2, c.rightToWrong());
        assertEquals(1, c.wrongToRight());
        assertEquals(7, c.agreed(), "q1..q6 and q10 (both chose 1)");
        assertEquals(1, c.mcnemarP(), 0, "2·P(X ≤ 1 | n = 3) = 1");
        assertEquals(-10, c.deltaPoints(), 1e-12);
        assertEquals(5.0, c.reference().itemsPerSecond(), 0);
        // A generative output with no extracted answer agrees with nothing, not even another such output.
        List<ItemResult> a = List.of(new ItemResult("g1", -1, false), new ItemResult("g2", 0, true));
        TaskComparison g = TaskStats.compare(run("reference", a), run("candidate", a), null);
        assertEquals(0.5, g.agreement(), 0);
    }

    @Test
    void mismatchedRunsAreRefused() {
        List<ItemResult> a = List.of(new ItemResult("1", 0, true), new ItemResult("2", 1, false));
        List<ItemResult> swapped = List.of(new ItemResult("2", 1, false), new ItemResult("1", 0, true));
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> TaskStats.compare(run("reference", a), run("candidate", swapped), null));
        assertTrue(e.getMessage().contains("item 1 is \"1\" for reference but \"2\" for candidate"), e.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> TaskStats.compare(run("reference", a), run("candidate", a.subList(0, 1)), null));
        assertThrows(
                IllegalArgumentException.class,
                () -> TaskStats.compare(run("reference", a), new TaskRun("other", "acc", "candidate", a, 1), null));
        assertThrows(
                IllegalArgumentException.class,
                () -> TaskStats.compare(run("reference", a), run("candidate", a), run("rtn", swapped)));
    }

    @Test
    void overallPoolsEveryItemOnce() {
        List<ItemResult> x = List.of(new ItemResult("1", 0, true), new ItemResult("2", 0, true));
        List<ItemResult> xc = List.of(new ItemResult("1", 1, false), new ItemResult("2", 0, true));
        List<ItemResult> y = List.of(
                new ItemResult("1", 0, false),
                new ItemResult("2", 0, true),
                new ItemResult("3", 2, true),
                new ItemResult("4", 0, false));
        TaskRun rx = new TaskRun("x", "acc", "reference", x, 1);
        TaskRun cx = new TaskRun("x", "acc", "candidate", xc, 2);
        TaskRun ry = new TaskRun("y", "acc", "reference", y, 1);
        TaskRun cy = new TaskRun("y", "acc", "candidate", y, 2);
        TaskComparison all = TaskStats.overall("acc", List.of(rx, ry), List.of(cx, cy), null);
        assertEquals(TaskStats.OVERALL, all.task());
        assertEquals(6, all.n());
        assertEquals(4, all.reference().correct());
        assertEquals(3, all.candidate().correct());
        assertEquals(List.of("x/1"), all.rightToWrongExamples(), "ids carry their task");
        assertEquals(3.0, all.reference().itemsPerSecond(), 0, "6 items in 2 s");
        assertEquals(1.5, all.candidate().itemsPerSecond(), 0);
        assertThrows(
                IllegalArgumentException.class, () -> TaskStats.overall("acc_norm", List.of(rx), List.of(cx), null));
    }

    static TaskRun run(String model, List<ItemResult> items) {
        return new TaskRun("t", "acc", model, items, 1);
    }
}
