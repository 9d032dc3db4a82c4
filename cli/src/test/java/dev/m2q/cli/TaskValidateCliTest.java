package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import dev.m2q.validate.ValidationReport;
import dev.m2q.validate.tasks.TaskSection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q validate --tasks} and {@code --generate} end to end on one RTN release of the fixture (quantized once,
 * on few calibration tokens, as {@link ValidateContractTest} does), with the first {@value #ITEMS} items of the bundled
 * verse-endings task and a short text so the run stays a few seconds.
 */
class TaskValidateCliTest {
    static final Path BUNDLED = Path.of("..", "fixtures", "tasks", "verse-endings.jsonl");
    static final int ITEMS = 40;

    @TempDir
    static Path tmp;

    static Path release;
    static Path task;

    @BeforeAll
    static void quantize() throws IOException {
        release = CliTest.rtnRelease(tmp.resolve("release"));
        task = tmp.resolve("verses.jsonl");
        Files.write(task, Files.readAllLines(BUNDLED).subList(0, ITEMS));
    }

    static CliTest.Run validate(String... extra) {
        return CliTest.validateBrief(CliTest.FIXTURE, release, extra);
    }

    @Test
    @SuppressWarnings("unchecked")
    void tasksEndToEnd() throws IOException {
        Path report = tmp.resolve("report");
        CliTest.Run r = validate("--report-dir", report.toString(), "--tasks", task.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        for (String metric : List.of("acc", "acc_norm", "acc_bytes")) {
            assertTrue(r.out().contains("task verses (" + metric + ", " + ITEMS + " items)"), r.out());
        }
        Map<String, Object> j = Json.parseObject(Files.readString(report.resolve("validation.json")));
        Map<String, Object> tasks =
                assertInstanceOf(Map.class, j.get("tasks"), j.keySet().toString());
        List<Map<String, Object>> perTask = (List<Map<String, Object>>) tasks.get("per_task");
        assertEquals(
                List.of("acc", "acc_norm", "acc_bytes"),
                perTask.stream().map(m -> m.get("metric")).toList());
        for (Map<String, Object> m : perTask) {
            assertEquals("verses", m.get("task"));
            assertEquals((long) ITEMS, m.get("n"));
            assertTrue(m.get("delta_points") instanceof Double, m.toString());
            assertTrue(m.get("mcnemar_p") instanceof Double, m.toString());
        }
        assertEquals(List.of(), tasks.get("overall"), "one task: nothing pooled");
        assertEquals(List.of(), tasks.get("gates"), "no --max-acc-drop: no task gate");
        assertEquals(true, j.get("passed"));
        String md = Files.readString(report.resolve("validation.md"));
        assertTrue(md.contains("## Task accuracy"), md);
        assertTrue(md.contains("validation-task-accuracy.png"), md);
        assertTrue(Files.size(report.resolve("validation-task-accuracy.png")) > 0);
        assertTrue(r.out().contains("validation-task-accuracy.png"), r.out());
    }

    /**
     * {@code --max-acc-drop 0} passes only when the drop's interval's upper end is ≤ 0, i.e. when no item flips from
     * right to wrong. The RTN release flips at least one of these items (measured; deterministic on the CPU), so the
     * gate fails with exit 1 and its sentence among the failures; the json records the gate.
     */
    @Test
    @SuppressWarnings("unchecked")
    void aZeroDropGateFailsWhenAnItemFlips() throws IOException {
        Path report = tmp.resolve("report-gate");
        CliTest.Run r = validate("--report-dir", report.toString(), "--tasks", task.toString(), "--max-acc-drop", "0");
        Map<String, Object> j = Json.parseObject(Files.readString(report.resolve("validation.json")));
        Map<String, Object> tasks = (Map<String, Object>) j.get("tasks");
        Map<String, Object> acc = ((List<Map<String, Object>>) tasks.get("per_task")).getFirst();
        assertTrue((Long) acc.get("right_to_wrong") > 0, "the setup needs a right → wrong flip: " + acc);
        assertEquals(1, r.code(), r.out() + r.err());
        List<Map<String, Object>> gates = (List<Map<String, Object>>) tasks.get("gates");
        assertEquals(1, gates.size(), gates.toString());
        Map<String, Object> g = gates.getFirst();
        assertEquals("max-acc-drop", g.get("gate"));
        assertEquals("acc", g.get("metric"));
        assertEquals(false, g.get("passed"));
        assertTrue((Double) g.get("value") > 0, g.toString());
        String sentence = (String) g.get("sentence");
        assertTrue(((List<String>) j.get("failures")).stream().anyMatch(f -> f.contains(sentence)), j.toString());
        assertTrue(r.out().contains(sentence), r.out());
    }

    /**
     * With {@code --baseline rtn} the RTN baseline gets the candidate's paired comparison with the reference: in
     * validation.json ({@code rtn_vs_reference}, read back through the typed report), in validation.md (its own
     * table) and in the summary (one line under each task line). The figures obey the identities of paired counts:
     * Δ = 100 (rtn correct − reference correct) / n = 100 (w→r − r→w) / n, and Δ lies in its interval.
     */
    @Test
    void theRtnBaselineIsComparedWithTheReferenceToo() throws IOException {
        Path report = tmp.resolve("report-rtn");
        CliTest.Run r = validate("--report-dir", report.toString(), "--tasks", task.toString(), "--baseline", "rtn");
        assertEquals(0, r.code(), r.out() + r.err());
        ValidationReport back = ValidationReport.read(report.resolve("validation.json"));
        List<TaskSection.Comparison> perTask = back.tasks().perTask();
        assertEquals(3, perTask.size(), perTask.toString());
        for (TaskSection.Comparison c : perTask) {
            TaskSection.Paired p = c.rtnVsReference();
            assertNotNull(p, c.toString());
            assertEquals(c.n(), ITEMS);
            double byCorrect = 100.0 * (c.rtn().correct() - c.reference().correct()) / c.n();
            double byFlips = 100.0 * (p.wrongToRight() - p.rightToWrong()) / c.n();
            // Exact: the same integer counts divided by the same n.
            assertEquals(byCorrect, p.deltaPoints(), 0, c.toString());
            assertEquals(byFlips, p.deltaPoints(), 0, c.toString());
            assertTrue(p.deltaLow() <= p.deltaPoints() && p.deltaPoints() <= p.deltaHigh(), p.toString());
            assertTrue(p.mcnemarP() > 0 && p.mcnemarP() <= 1, p.toString());
            String line = String.format(
                    Locale.ROOT,
                    "  RTN %.1f%%, Δ %+.1f points [%+.1f, %+.1f], McNemar p %.3g, flips r→w %d, w→r %d",
                    100 * c.rtn().accuracy(),
                    p.deltaPoints(),
                    p.deltaLow(),
                    p.deltaHigh(),
                    p.mcnemarP(),
                    p.rightToWrong(),
                    p.wrongToRight());
            assertTrue(r.out().contains(line), "expected\n" + line + "\nin\n" + r.out());
        }
        String md = Files.readString(report.resolve("validation.md"));
        for (String metric : List.of("acc", "acc_norm", "acc_bytes")) {
            assertTrue(md.contains("RTN baseline against the reference (" + metric + "):"), md);
        }
    }

    @Test
    void aTaskLineThatIsNotJsonIsBadInput() throws IOException {
        Path bad = tmp.resolve("bad.jsonl");
        List<String> lines = new ArrayList<>(Files.readAllLines(BUNDLED).subList(0, 2));
        lines.add("this is not json");
        Files.write(bad, lines);
        CliTest.Run r = validate("--no-report", "--tasks", bad.toString());
        CliTest.assertBadInput(r, bad + ":3:");
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertFalse(r.out().contains("perplexity"), "nothing runs on bad input: " + r.out());
    }

    @Test
    void taskOptionsWithoutTasksAreBadInput() {
        CliTest.assertBadInput(validate("--no-report", "--max-acc-drop", "1"), "--max-acc-drop");
        CliTest.assertBadInput(validate("--no-report", "--task-chat"), "--tasks");
    }

    @Test
    void generateWritesBothAnswersPerPrompt() throws IOException {
        Path prompts = tmp.resolve("prompts.txt");
        Files.writeString(prompts, "In the beginning God created\nAnd the earth was without form\n");
        Path out = tmp.resolve("side-by-side.jsonl");
        String[] args = {
            "validate",
            "--reference",
            CliTest.FIXTURE.toString(),
            "--candidate",
            release.toString(),
            "--generate",
            prompts.toString(),
            "--out",
            out.toString(),
            "--task-max-new-tokens",
            "4"
        };
        CliTest.Run r = CliTest.run(args);
        assertEquals(0, r.code(), r.out() + r.err());
        List<String> lines = Files.readAllLines(out);
        assertEquals(2, lines.size(), lines.toString());
        for (int i = 0; i < lines.size(); i++) {
            Map<String, Object> o = Json.parseObject(lines.get(i));
            assertEquals((long) (i + 1), o.get("id"));
            assertInstanceOf(List.class, o.get("prompt"));
            assertInstanceOf(String.class, o.get("reference"));
            assertInstanceOf(String.class, o.get("candidate"));
            assertFalse(((String) o.get("reference")).isEmpty(), o.toString());
        }
        String before = Files.readString(out);
        CliTest.assertBadInput(CliTest.run(args), "--overwrite");
        assertEquals(before, Files.readString(out), "a refused run leaves --out alone");

        List<String> inside = new ArrayList<>(List.of(args));
        inside.set(
                inside.indexOf(out.toString()), release.resolve("answers.jsonl").toString());
        CliTest.Run guarded = CliTest.run(inside.toArray(String[]::new));
        CliTest.assertBadInput(guarded, "--out");
        assertFalse(Files.exists(release.resolve("answers.jsonl")));
    }
}
