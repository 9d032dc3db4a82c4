package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.validate.tasks.AccuracyGate;
import dev.m2q.validate.tasks.ItemResult;
import dev.m2q.validate.tasks.TaskComparison;
import dev.m2q.validate.tasks.TaskReport;
import dev.m2q.validate.tasks.TaskRun;
import dev.m2q.validate.tasks.TaskSection;
import dev.m2q.validate.tasks.TaskStats;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * validation.json as a record tree: every part written and read back equal (NaN through null included), the key
 * names the documentation and other tools read, strict reading of damaged files (exit 2 naming the file), and a
 * non-finite task figure as a failed check rather than a crash.
 */
class ValidationReportTest {
    @TempDir
    Path tmp;

    /** A task run of n items, item i right when {@code right[i]}; chosen 0 when right, 1 otherwise. */
    private static TaskRun run(String model, boolean[] right, double seconds) {
        List<ItemResult> items = new ArrayList<>();
        for (int i = 0; i < right.length; i++) {
            items.add(new ItemResult("i" + i, right[i] ? 0 : 1, right[i]));
        }
        return new TaskRun("verses", "acc", model, items, seconds);
    }

    /** 40 items: the reference right on 30, the candidate on 28, RTN on 22, in a fixed seeded pattern. */
    static TaskComparison tasks() {
        boolean[] ref = new boolean[40];
        boolean[] cand = new boolean[40];
        boolean[] rtn = new boolean[40];
        java.util.SplittableRandom rng = new java.util.SplittableRandom(7);
        for (int i = 0; i < 40; i++) {
            ref[i] = i < 30;
            cand[i] = i < 28 || i == 35;
            rtn[i] = rng.nextInt(4) != 0;
        }
        return TaskStats.compare(run("reference", ref, 2), run("candidate", cand, 3), run("rtn", rtn, 3));
    }

    /** Every part of the file present, with the figures a NaN can reach set to NaN in places. */
    static ValidationReport full() {
        ValidationReport.Integrity integrity = new ValidationReport.Integrity(
                true, 6, 200, List.of(new ValidationReport.Problem("model.safetensors", "sha256", "bytes changed")));
        ValidationReport.FormatChecks format = new ValidationReport.FormatChecks(
                List.of(1, 2), List.of(new ValidationReport.Violation("a.qzeros", "v2", "zeros stored as v2")));
        ValidationReport.ModelFigures cand = new ValidationReport.ModelFigures(
                "candidate",
                12.5,
                1.25,
                List.of(0.5, 2.0),
                0.01,
                0.2,
                0.93,
                300,
                List.of(0.01, 0.02, Double.NaN),
                List.of(250.5, 251.25, 249.0),
                List.of(1.0, 0.75, 1.25));
        ValidationReport.ModelFigures rtn =
                new ValidationReport.ModelFigures("rtn", 13.0, 5.0, 0.02, 0.3, 0.9, 300, List.of(0.02, 0.03, 0.04));
        List<ValidationReport.Simulated> sims = List.of(
                new ValidationReport.Simulated("W4A16", 12.4, 1.2, 0.009, 0.1, 0.94, 0, 0, null),
                new ValidationReport.Simulated(
                        "W4A8-FP8 static + KV8",
                        12.5,
                        1.25,
                        0.01,
                        0.2,
                        0.93,
                        0.001,
                        0.05,
                        new ValidationReport.Saturation(Double.NaN, 1e-4, 0)));
        ValidationReport.PplWindows windows = new ValidationReport.PplWindows(
                List.of(250.0, 250.75, 248.5), List.of(99, 99, 99), 10_000, 20_260_101L);
        ValidationReport.Accuracy acc = new ValidationReport.Accuracy(3, 297, 12.345, cand, rtn, sims, 4.5, windows);
        Map<String, Double> tps = new LinkedHashMap<>();
        tps.put("BF16", 20.0);
        tps.put("W4A16 kernel", 50.0);
        ValidationReport.Throughput t = new ValidationReport.Throughput(1, 16, 32, "java", tps, 2.5);
        List<ValidationReport.Gate> gates = List.of(
                new ValidationReport.Gate("--max-kl", 0.1, true, 0.01, true),
                new ValidationReport.Gate("--min-top1", 0.85, false, Double.NaN, false));
        TaskComparison c = tasks();
        TaskSection ts = TaskReport.json(List.of(c), List.of(), List.of(new AccuracyGate(50).check(c)));
        List<String> failures = List.of("gate --min-top1: top-1 agreement is NaN, limit 0.85");
        SpecBench.Measurements spec = new SpecBench.Measurements(
                "cand",
                "draft",
                4096,
                List.of(1, 3, 5),
                "prompts.jsonl",
                "dequantized to fp32",
                "java",
                4,
                17.5,
                0,
                64,
                0,
                "sum of accepted / sum of reached",
                new SpecBench.Plain(256, 256, 30.0, 33.3),
                List.of(new SpecBench.SweepRow(
                        2,
                        100,
                        180,
                        1.8,
                        Double.NaN,
                        Double.NaN,
                        List.of(0.6, Double.NaN),
                        List.of(100L, 60L),
                        List.of(100L, 0L),
                        List.of(60L, 0L),
                        40.0,
                        30.0,
                        1.33,
                        Double.NaN,
                        0.1,
                        0.5,
                        30.0,
                        4)));
        return new ValidationReport(
                "0.1.0-test",
                "ref",
                "cand",
                integrity,
                format,
                "gptq",
                128,
                "dequantized to fp32",
                "java",
                "heldout.txt",
                300,
                128,
                "W4A8-FP8 static + KV8",
                null,
                acc,
                t,
                gates,
                ts,
                false,
                failures,
                "FAILED: 1 check(s) or gate(s)",
                spec);
    }

    @Test
    void aReportIsReadBackEqual() throws IOException {
        ValidationReport r = full();
        Path f = tmp.resolve(Report.JSON);
        Files.writeString(f, r.toJson());
        assertEquals(r, ValidationReport.read(f));

        ValidationReport only = ValidationReport.speculativeOnly("t", "cand", r.speculative());
        Files.writeString(f, only.toJson());
        assertEquals(only, ValidationReport.read(f));
    }

    @Test
    void theFileKeepsItsKeyNames() {
        Map<String, Object> j = Json.parseObject(full().toJson());
        assertEquals(
                List.of(
                        "m2q_version",
                        "reference",
                        "candidate",
                        "integrity",
                        "format_checks",
                        "format",
                        "group_size",
                        "candidate_path",
                        "kernels",
                        "text",
                        "tokens",
                        "seqlen",
                        "scheme",
                        "skipped",
                        "accuracy",
                        "throughput",
                        "gates",
                        "tasks",
                        "passed",
                        "failures",
                        "verdict",
                        "speculative"),
                List.copyOf(j.keySet()));
        Map<?, ?> acc = (Map<?, ?>) j.get("accuracy");
        assertEquals(
                List.of(
                        "windows",
                        "predictions",
                        "reference_ppl",
                        "candidate",
                        "baseline_rtn",
                        "simulated_8bit",
                        "seconds",
                        "ppl_windows"),
                List.copyOf(acc.keySet()));
        assertEquals(
                List.of("reference_nll", "tokens", "bootstrap_resamples", "bootstrap_seed"),
                List.copyOf(((Map<?, ?>) acc.get("ppl_windows")).keySet()));
        assertEquals(
                List.of(
                        "label",
                        "ppl",
                        "ppl_increase_percent",
                        "ppl_increase_ci95",
                        "kl_mean",
                        "kl_p99",
                        "top1_agreement",
                        "positions",
                        "layer_rel_error",
                        "window_nll",
                        "window_kl"),
                List.copyOf(((Map<?, ?>) acc.get("candidate")).keySet()));
        Map<?, ?> sat = (Map<?, ?>) ((Map<?, ?>) ((List<?>) acc.get("simulated_8bit")).get(1)).get("saturation");
        assertEquals(List.of("static_inputs", "keys", "values"), List.copyOf(sat.keySet()));
        assertEquals(
                List.of(
                        "batch",
                        "prompt_tokens",
                        "decode_tokens",
                        "kernels",
                        "tokens_per_second",
                        "w4_speedup_over_bf16"),
                List.copyOf(((Map<?, ?>) j.get("throughput")).keySet()));
        assertEquals(
                List.of("gate", "limit", "default", "value", "passed"),
                List.copyOf(((Map<?, ?>) ((List<?>) j.get("gates")).getFirst()).keySet()));
        Map<?, ?> integrity = (Map<?, ?>) j.get("integrity");
        assertEquals(
                List.of("manifest", "files_checked", "tensors_checked", "problems"), List.copyOf(integrity.keySet()));
        Map<?, ?> tasks = (Map<?, ?>) j.get("tasks");
        assertEquals(List.of("method", "per_task", "overall", "gates"), List.copyOf(tasks.keySet()));
        Map<?, ?> c = (Map<?, ?>) ((List<?>) tasks.get("per_task")).getFirst();
        assertEquals(
                List.of(
                        "task",
                        "metric",
                        "n",
                        "reference",
                        "candidate",
                        "rtn",
                        "delta_points",
                        "delta_low",
                        "delta_high",
                        "bootstrap_resamples",
                        "bootstrap_seed",
                        "mcnemar_p",
                        "agreement",
                        "right_to_wrong",
                        "wrong_to_right",
                        "right_to_wrong_examples",
                        "wrong_to_right_examples",
                        "rtn_vs_reference"),
                List.copyOf(c.keySet()));
        assertEquals(
                List.of(
                        "delta_points",
                        "delta_low",
                        "delta_high",
                        "mcnemar_p",
                        "agreement",
                        "right_to_wrong",
                        "wrong_to_right",
                        "right_to_wrong_examples",
                        "wrong_to_right_examples"),
                List.copyOf(((Map<?, ?>) c.get("rtn_vs_reference")).keySet()));
        Map<?, ?> spec = (Map<?, ?>) j.get("speculative");
        assertEquals(
                List.of(
                        "candidate",
                        "draft",
                        "draft_vocab_size",
                        "taps",
                        "prompts_file",
                        "candidate_path",
                        "kernels",
                        "prompts",
                        "prompt_tokens_mean",
                        "temperature",
                        "spec_tokens",
                        "seed",
                        "alpha_estimator",
                        "plain",
                        "sweep"),
                List.copyOf(spec.keySet()));
        Map<?, ?> row = (Map<?, ?>) ((List<?>) spec.get("sweep")).getFirst();
        assertEquals(
                List.of(
                        "k",
                        "rounds",
                        "emitted",
                        "tau",
                        "alpha",
                        "predicted_tau",
                        "acceptance",
                        "proposed",
                        "reached",
                        "accepted",
                        "tokens_per_second",
                        "plain_tokens_per_second",
                        "speedup",
                        "predicted_speedup",
                        "c",
                        "draft_step_ms",
                        "verify_forward_ms",
                        "greedy_identical_prompts"),
                List.copyOf(row.keySet()));
        // Non-finite figures are null, in records and in lists alike.
        assertTrue(row.containsKey("alpha") && row.get("alpha") == null);
        assertEquals(java.util.Arrays.asList(0.6, null), row.get("acceptance"));
        assertEquals(
                java.util.Arrays.asList(0.01, 0.02, null), ((Map<?, ?>) acc.get("candidate")).get("layer_rel_error"));
    }

    /** Writes {@code text} as a validation.json and expects exit 2 (an InputException) naming the file and {@code what}. */
    private void refused(String text, String what) throws IOException {
        Path f = tmp.resolve("damaged").resolve(Report.JSON);
        Files.createDirectories(f.getParent());
        Files.writeString(f, text);
        InputException e = assertThrows(InputException.class, () -> ValidationReport.read(f));
        assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(what), e.getMessage());
    }

    @Test
    void damagedFilesAreRefusedNamingTheFile() throws IOException {
        String good = full().toJson();
        refused(good.replace("\"group_size\": 128", "\"group_size\": 128,\n  \"groupsize\": 128"), "groupsize");
        refused(good.replace("  \"scheme\": \"W4A8-FP8 static + KV8\",\n", ""), "scheme");
        refused(good.replace("\"windows\": 3", "\"windows\": \"three\""), "line");
        refused(good.replace("\"group_size\": 128", "\"group_size\": 128,\n  \"group_size\": 64"), "group_size");
        refused(good + "{}", "line");
        refused(good.replace("\"passed\": false", "\"passed\": true"), "passed is true");
        refused(good.substring(0, good.length() / 2), "line");
        Path missing = tmp.resolve("nowhere").resolve(Report.JSON);
        InputException e = assertThrows(InputException.class, () -> ValidationReport.read(missing));
        assertTrue(e.getMessage().startsWith(missing.toString()), e.getMessage());
    }

    @Test
    void aNanTaskAccuracyIsAFailedCheckWrittenAsNull() throws IOException {
        TaskComparison c = TaskStats.compare(
                new TaskRun("empty", "acc", "reference", List.of(), 1),
                new TaskRun("empty", "acc", "candidate", List.of(), 1),
                new TaskRun("empty", "acc", "rtn", List.of(), 1));
        TaskSection ts = TaskReport.json(List.of(c), List.of(), List.of(new AccuracyGate(1).check(c)));
        List<String> failures = ts.failures();
        assertTrue(
                failures.contains("task empty (acc): candidate accuracy is NaN (not a finite number)"),
                failures.toString());
        assertTrue(failures.contains("task empty (acc): RTN Δ is NaN (not a finite number)"), failures.toString());
        assertTrue(failures.getLast().contains("not a number"), "the gate fails too: " + failures.getLast());

        Map<?, ?> t = (Map<?, ?>) ((List<?>) Json.parseObject(Json.write(ts)).get("per_task")).getFirst();
        assertTrue(t.containsKey("delta_points") && t.get("delta_points") == null, t.toString());
        assertTrue(((Map<?, ?>) t.get("candidate")).get("accuracy") == null, t.toString());
        TaskSection back = Json.read(Json.write(ts), TaskSection.class);
        assertEquals(ts, back, "null is read back as NaN");
        assertTrue(Double.isNaN(back.perTask().getFirst().candidate().accuracy()));
        assertEquals(failures, back.failures(), "the same failed checks from the file");
        assertFalse(TaskReport.plottable(back));
    }
}
