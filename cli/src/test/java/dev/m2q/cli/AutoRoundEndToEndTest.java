package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q quantize --method autoround} on the bundled fixture: the auto_round release passes the loadability
 * checks and validate reads it; kill -9 + --resume gives the same files; the gptq label works after AutoRound; bad
 * AutoRound options exit 2 before any work.
 */
class AutoRoundEndToEndTest {
    static final Path FIXTURE = CliTest.FIXTURE;
    /** 8 SignRound steps on 2 of 4 sequences of 64 tokens per layer: a fraction of a second per fixture layer. */
    static final String[] SMALL = {
        "--method", "autoround", "--nsamples", "4", "--seqlen", "64", "--seed", "7", "--iters", "8", "--batch-size", "2"
    };

    /** quantize with {@link #SMALL}, an option of {@code extra} replacing SMALL's value for it. */
    static String[] args(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("quantize", "--model", FIXTURE.toString(), "--out", out.toString()));
        List<String> given = List.of(extra);
        for (int i = 0; i < SMALL.length; i += 2) {
            if (!given.contains(SMALL[i])) {
                a.addAll(List.of(SMALL[i], SMALL[i + 1]));
            }
        }
        a.addAll(given);
        return a.toArray(String[]::new);
    }

    @Test
    @SuppressWarnings("unchecked")
    void autoRoundReleaseLoadsValidatesAndResumesBitIdentically(@TempDir Path tmp) throws Exception {
        Path whole = tmp.resolve("whole");
        CliTest.Run w = CliTest.run(args(whole));
        assertEquals(0, w.code(), w.err());
        assertTrue(w.err().contains("layer 8/8: block loss"), w.err());

        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(whole.resolve("config.json"))).get("quantization_config");
        assertEquals("auto-round", qc.get("quant_method"));
        assertEquals("auto_round:auto_gptq", qc.get("packing_format"));
        assertEquals("int", qc.get("data_type"));
        assertEquals(8L, qc.get("iters"));
        assertEquals(4L, qc.get("nsamples"));
        assertEquals(64L, qc.get("seqlen"));
        assertEquals(1.0 / 8, (Double) qc.get("lr"), 0.0);
        assertEquals(1.0 / 8, (Double) qc.get("minmax_lr"), 0.0);
        assertEquals(qc, Json.parseObject(Files.readString(whole.resolve("quantization_config.json"))));
        assertFalse(Files.exists(whole.resolve("quantize_config.json")), "the GPTQ label's file belongs to gptq");
        assertEquals(
                "auto_round",
                Json.parseObject(Files.readString(whole.resolve("m2q-manifest.json")))
                        .get("format"));
        List<String> all = Files.readAllLines(whole.resolve("m2q-report.jsonl"));
        assertEquals(64, all.size(), "7 linears and 1 KV-range row per layer");
        List<String> rows = all.stream()
                .filter(l -> !String.valueOf(Json.parseObject(l).get("module")).endsWith(".self_attn"))
                .toList();
        assertEquals(56, rows.size());
        for (String line : rows) {
            Map<String, Object> row = Json.parseObject(line);
            assertTrue(((Number) row.get("loss")).doubleValue() > 0, line);
            assertTrue(((Number) row.get("loss_iter0")).doubleValue() > 0, line);
        }

        // The engines' rules (incl. the scales, some negative under AutoRound's rule) and validate's reader.
        CliTest.Run check = CliTest.run("inspect", "--check", whole.toString(), "--tp", "1,2");
        assertEquals(0, check.code(), check.out() + check.err());
        CliTest.Run v = CliTest.run(
                "validate",
                "--reference",
                FIXTURE.toString(),
                "--candidate",
                whole.toString(),
                "--text",
                FIXTURE.resolve("heldout.txt").toString(),
                "--max-tokens",
                "256",
                "--decode-tokens",
                "0",
                "--no-report",
                "--json");
        assertEquals(0, v.code(), v.err());
        Map<String, Object> acc =
                (Map<String, Object>) Json.parseObject(v.out()).get("accuracy");
        double kl = (Double) ((Map<String, Object>) acc.get("candidate")).get("kl_mean");
        assertTrue(kl > 0 && kl < 0.05, "KL(BF16 ‖ AutoRound) " + kl);

        Path cut = tmp.resolve("cut");
        Path progress = tmp.resolve("cut.m2q-partial").resolve("progress.json");
        List<String> cmd = CliTest.inAnotherJvm();
        cmd.addAll(List.of(args(cut)));
        Process p = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(tmp.resolve("log").toFile())
                .start();
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (QuantizeEndToEndTest.layersDone(progress) < 2) {
            assertTrue(
                    p.isAlive(),
                    "the run ended before it could be interrupted: " + Files.readString(tmp.resolve("log")));
            assertTrue(System.nanoTime() < deadline, "no progress within 120 s");
            Thread.sleep(5);
        }
        p.destroyForcibly().waitFor();
        int done = QuantizeEndToEndTest.layersDone(progress);
        assertTrue(done >= 2 && done < 8, "interrupted after " + done + " layers");

        CliTest.Run r = CliTest.run(args(cut, "--resume"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("replayed"), r.out());
        for (String f : List.of("model.safetensors", "config.json", "quantization_config.json")) {
            assertArrayEquals(Files.readAllBytes(whole.resolve(f)), Files.readAllBytes(cut.resolve(f)), f);
        }
        assertEquals(withoutTimes(whole), withoutTimes(cut), "report rows agree except for their times");
    }

    /** After AutoRound the GPTQ label: FORMATS §2's config with AutoRound's settings beside it, and loadable. */
    @Test
    @SuppressWarnings("unchecked")
    void gptqLabelAfterAutoRound(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("gptq");
        CliTest.Run w = CliTest.run(args(out, "--iters", "0", "--format", "gptq"));
        assertEquals(0, w.code(), w.err());
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        assertEquals("gptq", qc.get("quant_method"));
        assertEquals(false, qc.get("desc_act"));
        assertEquals(false, qc.get("true_sequential"));
        assertEquals("gptq", qc.get("checkpoint_format"));
        assertEquals(0L, qc.get("iters"));
        assertEquals("autoround", ((Map<String, Object>) qc.get("meta")).get("method"));
        assertEquals(qc, Json.parseObject(Files.readString(out.resolve("quantize_config.json"))));
        CliTest.Run check = CliTest.run("inspect", "--check", out.toString());
        assertEquals(0, check.code(), check.out() + check.err());
    }

    @Test
    void badAutoRoundOptionsExitTwoBeforeAnyWork(@TempDir Path tmp) {
        Path out = tmp.resolve("never");
        CliTest.assertBadInput(CliTest.run(args(out, "--iters", "-1")), "--iters -1");
        CliTest.assertBadInput(CliTest.run(args(out, "--lr", "0")), "--lr 0");
        CliTest.assertBadInput(CliTest.run(args(out, "--minmax-lr", "-1")), "--minmax-lr -1");
        CliTest.assertBadInput(CliTest.run(args(out, "--batch-size", "0")), "--batch-size 0");
        CliTest.assertBadInput(CliTest.run(args(out, "--batch-size", "5")), "--nsamples");
        CliTest.assertBadInput(CliTest.run(args(out, "--recipe", "fast")), "light, default, best");
        CliTest.assertBadInput(CliTest.run(args(out, "--format", "awq")), "gptq, auto_round");
        CliTest.assertBadInput(CliTest.run(args(out, "--damp", "0.1")), "--damp");
        CliTest.assertBadInput(CliTest.run(args(out, "--no-true-sequential")), "--no-true-sequential");
        String[] gptqWithIters = {"quantize", "--model", FIXTURE.toString(), "--out", out.toString(), "--iters", "5"};
        CliTest.assertBadInput(CliTest.run(gptqWithIters), "--iters");
        String[] rtnAutoRoundLabel = {
            "quantize",
            "--model",
            FIXTURE.toString(),
            "--out",
            out.toString(),
            "--method",
            "rtn",
            "--format",
            "auto_round"
        };
        CliTest.assertBadInput(CliTest.run(rtnAutoRoundLabel), "--method autoround");
        assertFalse(Files.exists(out));
        assertFalse(Files.exists(tmp.resolve("never.m2q-partial")));
    }

    static List<String> withoutTimes(Path release) throws IOException {
        return Files.readAllLines(release.resolve("m2q-report.jsonl")).stream()
                .map(l -> l.replaceAll("\"(tune|time)_s\":[0-9.eE+-]+", ""))
                .toList();
    }
}
