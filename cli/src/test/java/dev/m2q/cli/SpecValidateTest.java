package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q validate --draft}: a head that does not fit the candidate is refused with exit 2 and the reason; a
 * speculative-only run (no --reference) writes its JSON and Markdown sections; with --reference both run.
 */
class SpecValidateTest {
    @TempDir
    static Path tmp;

    static Path release;
    static Path head;
    static Path prompts;

    @BeforeAll
    static void prepare() throws IOException {
        release = tmp.resolve("release");
        CliTest.Run q = CliTest.run(QuantizeEndToEndTest.args(release, "--method", "rtn"));
        assertEquals(0, q.code(), q.err());
        head = tmp.resolve("draft");
        randomHead(ModelConfig.load(release)).write(head);
        prompts = tmp.resolve("prompts.txt");
        Files.writeString(prompts, "Tell me about the sea.\n\nWhat is a prime number?\n");
    }

    /** A seeded random head over every other target id (the weights only need to run, not to draft well). */
    static DraftHead randomHead(ModelConfig target) {
        int[] ids = java.util.stream.IntStream.range(0, target.vocabSize() / 2)
                .map(i -> 2 * i)
                .toArray();
        DraftConfig cfg = DraftConfig.forTarget(target, null, ids.length, null);
        SplittableRandom r = new SplittableRandom(1);
        Map<String, float[]> w = new LinkedHashMap<>();
        DraftHead.shapes(cfg).forEach((name, shape) -> {
            float[] v = new float[(int) Arrays.stream(shape).reduce(1, (a, b) -> a * b)];
            double a = shape.length == 1 ? 0 : Math.sqrt(3.0 / shape[1]);
            for (int i = 0; i < v.length; i++) {
                v[i] = shape.length == 1 ? 1f : (float) r.nextDouble(-a, a);
            }
            w.put(name, v);
        });
        return new DraftHead(cfg, DraftVocab.of(ids, target.vocabSize()), w);
    }

    static String[] spec(Path reportDir, String k, String... extra) {
        List<String> a = new java.util.ArrayList<>(List.of(
                "validate",
                "--candidate",
                release.toString(),
                "--draft",
                head.toString(),
                "--prompts",
                prompts.toString(),
                "--k",
                k,
                "--spec-tokens",
                "8",
                "--report-dir",
                reportDir.toString()));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    /** inspect --check also checks an attached head (on a copy of the release, so the other tests are unaffected). */
    @Test
    void inspectCheckCoversTheAttachedHead() throws IOException {
        Path copy = tmp.resolve("release-with-draft");
        Files.createDirectories(copy);
        try (var files = Files.list(release)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                Files.copy(f, copy.resolve(f.getFileName()));
            }
        }
        CliTest.Run a = CliTest.run("eagle", "attach", "--draft", head.toString(), "--release", copy.toString());
        assertEquals(0, a.code(), a.err());
        CliTest.Run ok = CliTest.run("inspect", "--check", copy.toString());
        assertEquals(0, ok.code(), ok.out() + ok.err());
        assertTrue(
                ok.out().contains("EAGLE-3 head, draft vocabulary 1024 of 2048, taps [2, 4, 5]: loadable"), ok.out());

        Path cfg = copy.resolve("draft").resolve(DraftConfig.FILE);
        String written = Files.readString(cfg);
        assertTrue(written.contains("\"norm_before_residual\": false"), written);
        // A head whose config leaves norm_before_residual to the engine (vLLM's speculators path reads true, SpecForge
        // false) is a violation naming the key.
        Files.writeString(cfg, written.replace("\"norm_before_residual\": false,", ""));
        CliTest.Run implicit = CliTest.run("inspect", "--check", copy.toString());
        assertEquals(1, implicit.code(), implicit.out() + implicit.err());
        assertTrue(implicit.out().contains("leaves norm_before_residual to the engine's default"), implicit.out());
        // true is the other forward, which m2q's head does not compute.
        Files.writeString(cfg, written.replace("\"norm_before_residual\": false", "\"norm_before_residual\": true"));
        CliTest.Run other = CliTest.run("inspect", "--check", copy.toString());
        assertEquals(1, other.code(), other.out() + other.err());
        assertTrue(other.out().contains("norm_before_residual must be false"), other.out());
        Files.writeString(cfg, written);

        Files.writeString(
                cfg, Files.readString(cfg).replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4"));
        CliTest.Run bad = CliTest.run("inspect", "--check", copy.toString());
        assertEquals(1, bad.code(), bad.out() + bad.err());
        assertTrue(bad.out().contains("EAGLE-3 head:"), bad.out());
    }

    @Test
    void aHeadThatDoesNotFitTheCandidateIsRefused() throws IOException {
        Path bad = tmp.resolve("bad-draft");
        Files.createDirectories(bad);
        Files.copy(head.resolve(DraftHead.FILE), bad.resolve(DraftHead.FILE));
        String cfg = Files.readString(head.resolve(DraftConfig.FILE));
        assertTrue(cfg.contains("\"rope_theta\": 10000.0"), cfg);
        // Trained for another rotary base: every tensor reads, but the positions would be encoded differently.
        Files.writeString(bad.resolve(DraftConfig.FILE), cfg.replace("\"rope_theta\": 10000.0", "\"rope_theta\": 1e6"));
        CliTest.Run r = CliTest.run(
                "validate",
                "--candidate",
                release.toString(),
                "--draft",
                bad.toString(),
                "--prompts",
                prompts.toString());
        CliTest.assertBadInput(r, "rope_theta");
        assertTrue(r.err().contains(bad.toString()), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());

        // A head whose manifest no longer matches its weights (one byte changed after it was written).
        Path damaged = tmp.resolve("damaged-draft");
        Files.createDirectories(damaged);
        Files.copy(head.resolve(DraftConfig.FILE), damaged.resolve(DraftConfig.FILE));
        Files.copy(head.resolve(DraftHead.FILE), damaged.resolve(DraftHead.FILE));
        Files.writeString(
                damaged.resolve(dev.m2q.core.io.Manifest.FILE),
                "{\"files\": {\"config.json\": \""
                        + dev.m2q.core.io.Sha256.ofFile(damaged.resolve(DraftConfig.FILE))
                        + "\", \"model.safetensors\": \""
                        + dev.m2q.core.io.Sha256.ofFile(damaged.resolve(DraftHead.FILE)) + "\"}}");
        byte[] bytes = Files.readAllBytes(damaged.resolve(DraftHead.FILE));
        bytes[bytes.length - 3] ^= 1;
        Files.write(damaged.resolve(DraftHead.FILE), bytes);
        CliTest.Run d = CliTest.run(
                "validate",
                "--candidate",
                release.toString(),
                "--draft",
                damaged.toString(),
                "--prompts",
                prompts.toString());
        CliTest.assertBadInput(d, "model.safetensors");

        CliTest.assertBadInput(
                CliTest.run("validate", "--candidate", release.toString(), "--draft", head.toString()), "--prompts");
        CliTest.assertBadInput(CliTest.run("validate", "--candidate", release.toString()), "--reference");
        CliTest.assertBadInput(CliTest.run(spec(tmp.resolve("r0"), "0")), "--k 0");
        CliTest.assertBadInput(CliTest.run(spec(tmp.resolve("r0"), "3..1")), "--k 3..1");
        CliTest.assertBadInput(CliTest.run(spec(tmp.resolve("r0"), "1", "--temperature", "-1")), "--temperature");
    }

    @Test
    @SuppressWarnings("unchecked")
    void aSpeculativeOnlyRunWritesItsSections() throws IOException {
        Path dir = tmp.resolve("report-spec");
        CliTest.Run r = CliTest.run(spec(dir, "1,2"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("speculative T=0.0, 2 prompts: plain "), r.out());
        Map<String, Object> j = Json.parseObject(Files.readString(dir.resolve("validation.json")));
        Map<String, Object> s = (Map<String, Object>) j.get("speculative");
        assertEquals(2L, ((Number) s.get("prompts")).longValue());
        List<Map<String, Object>> sweep = (List<Map<String, Object>>) s.get("sweep");
        assertEquals(
                List.of(1L, 2L),
                sweep.stream().map(m -> ((Number) m.get("k")).longValue()).toList());
        for (Map<String, Object> m : sweep) {
            long k = ((Number) m.get("k")).longValue();
            assertEquals(k, ((List<?>) m.get("acceptance")).size());
            // 8 new tokens per prompt: the first from the prefill, 7 from rounds (no eos within 8 on this fixture,
            // else fewer): τ = emitted / rounds lies in [1, k + 1].
            double tau = ((Number) m.get("tau")).doubleValue();
            assertTrue(tau >= 1 && tau <= k + 1, m.toString());
            assertEquals(2L, ((Number) m.get("greedy_identical_prompts")).longValue(), "T = 0 equals plain greedy");
            assertTrue(((Number) m.get("c")).doubleValue() > 0, m.toString());
        }
        String md = Files.readString(dir.resolve("validation.md"));
        assertTrue(md.contains("## Speculative decoding (EAGLE-3)"), md);
        assertTrue(md.contains("| k | τ | α | per-position acceptance |"), md);
        assertTrue(md.contains("Speculative decoding only (no `--reference`"), md);

        Path both = tmp.resolve("report-both");
        CliTest.Run b = CliTest.run(spec(
                both,
                "1",
                "--reference",
                CliTest.FIXTURE.toString(),
                "--text",
                CliTest.FIXTURE.resolve("heldout.txt").toString(),
                "--max-tokens",
                "64",
                "--decode-tokens",
                "0"));
        assertEquals(0, b.code(), b.err());
        Map<String, Object> jb = Json.parseObject(Files.readString(both.resolve("validation.json")));
        assertTrue(jb.get("accuracy") instanceof Map<?, ?>, jb.toString());
        assertTrue(jb.get("speculative") instanceof Map<?, ?>, jb.toString());
        String mdb = Files.readString(both.resolve("validation.md"));
        assertTrue(mdb.contains("## Accuracy") && mdb.contains("## Speculative decoding (EAGLE-3)"), mdb);
        assertTrue(b.out().contains("PASSED") && b.out().contains("speculative T=0.0"), b.out());
    }
}
