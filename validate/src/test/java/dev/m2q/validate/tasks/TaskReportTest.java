package dev.m2q.validate.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The task section of validation.md and validation.json, and the plot, on a small case worked by hand. */
class TaskReportTest {
    @TempDir
    Path dir;

    /**
     * Ten items q1..q10: the reference right on q1..q8 (answer 0), wrong on q9, q10 (chose 1); the candidate right on
     * q1..q6 and q9, wrong on q7 (chose 1), q8 (chose 2), q10 (chose 1). Reference 2 s, candidate 4 s.
     */
    static TaskComparison small() {
        List<ItemResult> ref = new ArrayList<>();
        List<ItemResult> cand = new ArrayList<>();
        int[] candChose = {0, 0, 0, 0, 0, 0, 1, 2, 0, 1};
        for (int i = 1; i <= 10; i++) {
            ref.add(new ItemResult("q" + i, i <= 8 ? 0 : 1, i <= 8));
            cand.add(new ItemResult("q" + i, candChose[i - 1], candChose[i - 1] == 0));
        }
        return TaskStats.compare(
                new TaskRun("medqa", "acc", "reference", ref, 2.0),
                new TaskRun("medqa", "acc", "candidate", cand, 4.0),
                null);
    }

    @Test
    void markdownRowOfTheSmallCase() {
        TaskComparison c = small();
        AccuracyGate.Result gate = new AccuracyGate(2).check(c);
        String md = TaskReport.markdown(List.of(c), List.of(), List.of(gate), true);
        // Wilson by hand: 8/10 → centre 0.71674, half-width 0.22658 → [49.0, 94.3]; 7/10 → [39.7, 89.2].
        String row = String.format(
                Locale.ROOT,
                "| medqa | 10 | 80.0%% [49.0, 94.3] | 70.0%% [39.7, 89.2] | -10.0 [%+.1f, %+.1f] | 1.00 | 70.0%% |"
                        + " 2 (`q7`, `q8`) | 1 (`q9`) | 5.0 / 2.5 |\n",
                c.deltaInterval().low(),
                c.deltaInterval().high());
        assertTrue(md.startsWith("## Task accuracy\n\n"), md);
        assertTrue(md.contains("### acc\n\n| task | n | reference | candidate | Δ (points) |"), md);
        assertTrue(md.contains(row), "expected row\n" + row + "in\n" + md);
        assertTrue(md.contains("- " + gate.sentence() + "\n"), md);
        assertTrue(
                gate.sentence()
                        .startsWith("medqa (acc): `--max-acc-drop 2.00` gates on the upper end of the 95%"
                                + " interval of the drop: the drop is 10.00 points"),
                gate.sentence());
        assertFalse(gate.passed(), "10 points lost on 10 items is not shown to be within 2");
        assertTrue(md.contains("![task accuracy](" + TaskReport.PLOT + ")"), md);
        assertEquals(List.of(gate.sentence()), TaskReport.failures(List.of(c), List.of(), List.of(gate)));
    }

    /**
     * The small case with an RTN baseline right on q1..q4 and q9 only (chose 3 on q5..q8, 0 on q9, 1 on q10): by hand,
     * 5/10 correct, Δ = (5 − 8) / 10 = −30 points, r→w q5..q8 (b = 4), w→r q9 (c = 1), McNemar exact p = 2 · P(X ≤ 1 |
     * 5, ½) = 2 · 6/32 = 0.375, agreement q1..q4 and q10 = 50%.
     */
    static TaskComparison smallWithRtn() {
        TaskComparison c = small();
        List<ItemResult> ref = new ArrayList<>();
        List<ItemResult> cand = new ArrayList<>();
        List<ItemResult> rtn = new ArrayList<>();
        int[] candChose = {0, 0, 0, 0, 0, 0, 1, 2, 0, 1};
        int[] rtnChose = {0, 0, 0, 0, 3, 3, 3, 3, 0, 1};
        for (int i = 1; i <= 10; i++) {
            ref.add(new ItemResult("q" + i, i <= 8 ? 0 : 1, i <= 8));
            cand.add(new ItemResult("q" + i, candChose[i - 1], candChose[i - 1] == 0));
            rtn.add(new ItemResult("q" + i, rtnChose[i - 1], rtnChose[i - 1] == 0));
        }
        TaskComparison withRtn = TaskStats.compare(
                new TaskRun("medqa", "acc", "reference", ref, 2.0),
                new TaskRun("medqa", "acc", "candidate", cand, 4.0),
                new TaskRun("medqa", "acc", "rtn", rtn, 5.0));
        assertEquals(c.deltaInterval(), withRtn.deltaInterval(), "the candidate's figures do not depend on RTN");
        assertEquals(c.mcnemarP(), withRtn.mcnemarP(), 0);
        return withRtn;
    }

    @Test
    void theRtnBaselineGetsItsOwnPairedComparison() {
        TaskComparison c = smallWithRtn();
        TaskComparison.Paired p = c.rtnPaired();
        assertEquals(-30.0, p.deltaPoints(), 1e-12);
        assertEquals(0.375, p.mcnemarP(), 1e-15);
        assertEquals(5, p.agreed());
        assertEquals(4, p.rightToWrong());
        assertEquals(1, p.wrongToRight());
        assertEquals(List.of("q5", "q6", "q7", "q8"), p.rightToWrongExamples());
        assertEquals(List.of("q9"), p.wrongToRightExamples());
        boolean[] r = new boolean[10];
        boolean[] b = new boolean[10];
        for (int i = 0; i < 10; i++) {
            r[i] = i < 8;
            b[i] = i < 4 || i == 8;
        }
        // The same resamples and seed as the candidate's: the bootstrap of the RTN pairs, bit for bit.
        assertEquals(
                TaskStats.bootstrapDifference(r, b, TaskStats.DEFAULT_RESAMPLES, TaskStats.DEFAULT_SEED),
                p.deltaInterval());
        assertTrue(p.deltaInterval().contains(-30.0), p.deltaInterval().toString());

        TaskSection json = TaskReport.json(List.of(c), List.of(), List.of());
        TaskSection.Paired jp = json.perTask().getFirst().rtnVsReference();
        assertEquals(0.5, jp.agreement(), 0);
        assertEquals(p.deltaInterval().low(), jp.deltaLow(), 0);
        assertEquals(json, Json.read(Json.writePretty(json), TaskSection.class), "round trip");

        String md = TaskReport.markdown(json, true);
        String row = String.format(
                Locale.ROOT,
                "| medqa | 10 | 80.0%% [49.0, 94.3] | 50.0%% [23.7, 76.3] | -30.0 [%+.1f, %+.1f] | 0.375 | 50.0%% |"
                        + " 4 (`q5`, `q6`, `q7`, `q8`) | 1 (`q9`) |\n",
                p.deltaInterval().low(),
                p.deltaInterval().high());
        assertTrue(md.contains("RTN baseline against the reference (acc):\n\n| task | n | reference | RTN |"), md);
        assertTrue(md.contains(row), "expected row\n" + row + "in\n" + md);
        assertTrue(md.contains("| medqa | 10 | 80.0% [49.0, 94.3] | 70.0% [39.7, 89.2] | 50.0% [23.7, 76.3] |"), md);
    }

    @Test
    void jsonOfTheSmallCaseRoundTrips() {
        TaskComparison c = small();
        TaskRun r = new TaskRun("medqa", "acc", "reference", List.of(new ItemResult("q1", 0, true)), 1);
        TaskComparison overall = TaskStats.compare(r, new TaskRun("medqa", "acc", "candidate", r.items(), 1), null);
        Map<String, Object> j = Json.parseObject(Json.writePretty(
                TaskReport.json(List.of(c), List.of(overall), List.of(new AccuracyGate(50).check(c)))));
        @SuppressWarnings("unchecked")
        Map<String, Object> t = ((List<Map<String, Object>>) j.get("per_task")).getFirst();
        assertEquals("medqa", t.get("task"));
        assertEquals(10L, t.get("n"));
        @SuppressWarnings("unchecked")
        Map<String, Object> ref = (Map<String, Object>) t.get("reference");
        assertEquals(0.8, (Double) ref.get("accuracy"), 0);
        assertEquals(0.49016, (Double) ref.get("low"), 1e-5);
        assertEquals(0.94332, (Double) ref.get("high"), 1e-5);
        assertEquals(-10.0, (Double) t.get("delta_points"), 1e-12);
        assertEquals(c.deltaInterval().low(), (Double) t.get("delta_low"), 0);
        assertEquals(1.0, (Double) t.get("mcnemar_p"), 0);
        assertEquals(2L, t.get("right_to_wrong"));
        assertEquals(List.of("q7", "q8"), t.get("right_to_wrong_examples"));
        assertEquals(10_000L, t.get("bootstrap_resamples"));
        assertTrue(t.containsKey("rtn") && t.get("rtn") == null, "no RTN run: rtn is null");
        assertTrue(
                t.containsKey("rtn_vs_reference") && t.get("rtn_vs_reference") == null,
                "no RTN run: no paired RTN comparison");
        @SuppressWarnings("unchecked")
        Map<String, Object> g = ((List<Map<String, Object>>) j.get("gates")).getFirst();
        assertEquals(Boolean.TRUE, g.get("passed"));
        assertEquals(-c.deltaInterval().low(), (Double) g.get("value"), 0);
        assertEquals(1, ((List<?>) j.get("overall")).size());
    }

    @Test
    void anEmptyTaskIsAFailedCheckNotACrash() {
        TaskRun empty = new TaskRun("empty", "acc", "reference", List.of(), 0.5);
        TaskComparison c = TaskStats.compare(empty, new TaskRun("empty", "acc", "candidate", List.of(), 0.5), null);
        AccuracyGate.Result gate = new AccuracyGate(1).check(c);
        assertFalse(gate.passed(), "a NaN drop is not within any limit");
        assertTrue(gate.sentence().contains("not a number"), gate.sentence());
        List<String> failures = TaskReport.failures(List.of(c), List.of(), List.of(gate));
        assertTrue(
                failures.contains("task empty (acc): reference accuracy is NaN (not a finite number)"),
                failures.toString());
        assertTrue(failures.contains(gate.sentence()));
        String json = Json.writePretty(TaskReport.json(List.of(c), List.of(), List.of(gate)));
        @SuppressWarnings("unchecked")
        Map<String, Object> t =
                ((List<Map<String, Object>>) Json.parseObject(json).get("per_task")).getFirst();
        assertNull(t.get("delta_points"));
        assertFalse(TaskReport.plottable(List.of(c)));
        String md = TaskReport.markdown(List.of(c), List.of(), List.of(gate), false);
        assertTrue(md.contains("| empty | 0 | – [–, –] | – [–, –] | – [–, –] | 1.00 | – | 0 | 0 | 0.0 / 0.0 |"), md);
        assertTrue(md.contains("No plot"), md);
        assertTrue(md.contains("- **fail**: task empty (acc): Δ is NaN"), md);
    }

    @Test
    void plotDrawsEachModelInItsColour() throws IOException {
        TaskComparison a = small();
        List<ItemResult> items = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            items.add(new ItemResult("p" + i, 0, i % 5 != 0));
        }
        List<ItemResult> rtnItems = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            rtnItems.add(new ItemResult("p" + i, 0, i % 2 == 0));
        }
        TaskComparison b = TaskStats.compare(
                new TaskRun("pubmedqa", "acc", "reference", items, 1),
                new TaskRun("pubmedqa", "acc", "candidate", items, 1),
                new TaskRun("pubmedqa", "acc", "rtn", rtnItems, 1));
        assertEquals(0.5, b.rtn().accuracy(), 0);
        assertTrue(TaskReport.plottable(List.of(a, b)));
        Path png = TaskReport.plot(dir, List.of(a, b));
        assertEquals(dir.resolve(TaskReport.PLOT), png);
        byte[] bytes = Files.readAllBytes(png);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G'}, Arrays.copyOf(bytes, 4), "a PNG");
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(dev.m2q.validate.Plots.WIDTH, img.getWidth());
        assertTrue(count(img, 0x2b6cb0) > 50, "candidate points and bars drawn");
        assertTrue(count(img, 0x444444) > 50, "reference points and bars drawn");
        assertEquals(0, count(img, 0xdd7a2c), "RTN only when every plotted task has it");
        double[][] nan = {{Double.NaN}};
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(
                IllegalArgumentException.class,
                () -> dev.m2q.validate.Plots.taskAccuracy(
                        dir.resolve("nan.png"), "t", null, List.of("x"), List.of("m"), nan, nan, nan));
        assertTrue(e.getMessage().contains("NaN"), e.getMessage());
        try (var files = Files.list(dir)) {
            assertEquals(List.of(png), files.toList(), "nothing else left in the folder");
        }
    }

    private static int count(BufferedImage img, int rgb) {
        int n = 0;
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                if ((img.getRGB(x, y) & 0xffffff) == rgb) {
                    n++;
                }
            }
        }
        return n;
    }
}
