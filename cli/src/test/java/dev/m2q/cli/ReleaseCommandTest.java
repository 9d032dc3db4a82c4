package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.StagedDir;
import dev.m2q.eagle.train.DraftTraining;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q release} end to end on the fixture with a small recipe (RTN, a few prompts, a head trained for four
 * steps, a short validation): the release, a rerun that skips every stage, a run of the release's own effective
 * recipe killed at every stage (one of them a real kill -9 in eagle train) and continued to the same tensors, a
 * changed option that redoes only what it reaches, and recipe errors as exit 2 naming the key and line.
 */
class ReleaseCommandTest {
    static final Path FIXTURE = CliTest.FIXTURE;
    /** Files whose bytes a release must reproduce. */
    static final List<String> TENSOR_FILES = List.of(
            "model.safetensors", "config.json", "quantize_config.json", "draft/model.safetensors", "draft/config.json");

    @TempDir
    static Path tmp;

    static Path first;
    static Path recipe;

    @BeforeAll
    static void release() throws IOException {
        Path train = tmp.resolve("train-prompts.txt");
        Files.write(
                train,
                Files.readAllLines(FIXTURE.resolveSibling("eagle").resolve("train-prompts.txt"))
                        .subList(0, 6));
        Path eval = tmp.resolve("eval-prompts.txt");
        Files.write(
                eval,
                Files.readAllLines(FIXTURE.resolveSibling("eagle").resolve("eval-prompts.txt"))
                        .subList(0, 2));
        recipe = tmp.resolve("recipe.yaml");
        Files.writeString(recipe, """
                # small, for the tests
                model: %s
                quantize:
                  method: rtn
                  nsamples: 2
                  seqlen: 32
                eagle-data:
                  prompts: %s
                  max-new-tokens: 8
                eagle-train:
                  draft-vocab: 64
                  steps: 4
                  checkpoint-every: 1
                  eval-every: 0
                  max-seq-len: 64
                validate:
                  text: %s
                  seqlen: 128
                  max-tokens: 256
                  decode-tokens: 4
                  prompts: %s
                  k: "1"
                  spec-tokens: 8
                """.formatted(FIXTURE, train, FIXTURE.resolve("heldout.txt"), eval));
        first = tmp.resolve("first");
        CliTest.Run r = CliTest.run("release", "--recipe", recipe.toString(), "--out", first.toString());
        assertEquals(0, r.code(), r.err());
        for (String f : TENSOR_FILES) {
            assertTrue(Files.isRegularFile(first.resolve(f)), f);
        }
        assertTrue(Files.isRegularFile(first.resolve("validation.json")));
        assertTrue(Files.isRegularFile(first.resolve(ReleaseCommand.RECIPE_FILE)));
        assertEquals(5, count(r.err(), ": running"), r.err());
        stageProgressInALog(r.err());
        // The recipe is in place before validate, so the model card points at it.
        assertTrue(Files.readString(first.resolve("README.md")).contains("- Recipe: `m2q-recipe.yaml`"));
    }

    /**
     * The first release's progress as a log shows it: plain lines (no carriage return), every stage's in order, at
     * most one per tenth of each phase plus its first, each stage reaching 100%, and from the second stage on (the
     * first measured, the rest sized by the cost model) the whole run's time left.
     */
    private static void stageProgressInALog(String err) {
        assertFalse(err.contains("\r"), err);
        List<String> lines = err.lines().filter(l -> l.startsWith("release [")).toList();
        List<String> stages = lines.stream()
                .map(l -> l.substring(0, l.indexOf(':')))
                .distinct()
                .toList();
        assertEquals(
                List.of(
                        "release [1/5] quantize",
                        "release [2/5] eagle-data",
                        "release [3/5] eagle-train",
                        "release [4/5] attach",
                        "release [5/5] validate"),
                stages,
                err);
        for (String s : stages) {
            assertTrue(lines.stream().anyMatch(l -> l.startsWith(s + ": ") && l.contains("(100%)")), s + "\n" + err);
        }
        Map<String, Long> perPhase = lines.stream()
                .collect(java.util.stream.Collectors.groupingBy(
                        l -> l.substring(0, l.indexOf(' ', l.indexOf(": ") + 2)),
                        java.util.stream.Collectors.counting()));
        perPhase.forEach((phase, n) -> assertTrue(n <= 11, phase + ": " + n + " lines\n" + err));
        String data = lines.stream()
                .filter(l -> l.startsWith("release [2/5] eagle-data: "))
                .findFirst()
                .orElseThrow();
        assertTrue(data.contains(", run ~") && data.contains(" left"), data);
    }

    @Test
    void aRerunSkipsEveryStageAndTheReleaseStillChecks() {
        CliTest.Run r = CliTest.run("release", "--recipe", recipe.toString(), "--out", first.toString());
        assertEquals(0, r.code(), r.err());
        assertEquals(5, count(r.err(), "unchanged, skipped"), r.err());
        // The recipe and the work folder's files do not disturb the release's own checks.
        CliTest.Run check = CliTest.run("inspect", "--check", first.toString());
        assertEquals(0, check.code(), check.out() + check.err());
    }

    /**
     * The release's effective recipe, run into a new folder and killed at each stage in turn (quantize, eagle data
     * and attach and validate just as they are recorded as started; eagle train by a real kill -9 of a second JVM
     * once it has written a checkpoint), each rerun skipping what finished: the tensors equal the first release's
     * byte for byte. Then a changed option redoes only the stages it reaches.
     */
    @Test
    void killedAtEveryStageThenContinuedGivesTheSameTensors() throws Exception {
        String recipe = first.resolve(ReleaseCommand.RECIPE_FILE).toString();
        Path out = tmp.resolve("second");
        String[] args = {"release", "--recipe", recipe, "--out", out.toString()};
        try {
            ReleaseCommand.killAfterStart = s -> s == ReleaseCommand.Stage.QUANTIZE;
            CliTest.Run r = CliTest.run(args);
            assertEquals(ReleaseCommand.KILLED, r.code(), r.err());
            assertFalse(Files.exists(out), "a killed first stage leaves no release");

            ReleaseCommand.killAfterStart = s -> s == ReleaseCommand.Stage.EAGLE_DATA;
            r = CliTest.run(args);
            assertEquals(ReleaseCommand.KILLED, r.code(), r.err());
            assertTrue(r.err().contains("[1/5] quantize: running"), r.err());
        } finally {
            ReleaseCommand.killAfterStart = s -> false;
        }

        // eagle data runs, then eagle train is killed -9 after its first checkpoint.
        Path marker =
                StagedDir.partialOf(ReleaseCommand.workDir(out).resolve("head")).resolve(DraftTraining.RESUME_MARKER);
        List<String> cmd = CliTest.inAnotherJvm();
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(tmp.resolve("kill.log").toFile())
                .start();
        long deadline = System.nanoTime() + 300_000_000_000L;
        while (!Files.isRegularFile(marker)) {
            assertTrue(
                    p.isAlive(),
                    "the run ended before eagle train could be killed: " + Files.readString(tmp.resolve("kill.log")));
            assertTrue(System.nanoTime() < deadline, "no checkpoint within 300 s");
            Thread.sleep(5);
        }
        p.destroyForcibly().waitFor();
        String log = Files.readString(tmp.resolve("kill.log"));
        assertTrue(log.contains("[1/5] quantize: unchanged, skipped"), log);
        assertTrue(log.contains("[2/5] eagle-data: running"), log);

        try {
            ReleaseCommand.killAfterStart = s -> s == ReleaseCommand.Stage.ATTACH;
            CliTest.Run r = CliTest.run(args);
            assertEquals(ReleaseCommand.KILLED, r.code(), r.err());
            assertTrue(r.err().contains("[2/5] eagle-data: unchanged, skipped"), r.err());
            assertTrue(r.err().contains("[3/5] eagle-train: continuing the interrupted run"), r.err());

            ReleaseCommand.killAfterStart = s -> s == ReleaseCommand.Stage.VALIDATE;
            r = CliTest.run(args);
            assertEquals(ReleaseCommand.KILLED, r.code(), r.err());
            assertTrue(r.err().contains("[4/5] attach: running"), r.err());
        } finally {
            ReleaseCommand.killAfterStart = s -> false;
        }
        CliTest.Run r = CliTest.run(args);
        assertEquals(0, r.code(), r.err());
        assertEquals(4, count(r.err(), "unchanged, skipped"), r.err());
        assertTrue(r.err().contains("[5/5] validate: running"), r.err());
        for (String f : TENSOR_FILES) {
            assertArrayEquals(Files.readAllBytes(first.resolve(f)), Files.readAllBytes(out.resolve(f)), f);
        }

        // A validate option redoes validate only; a training option redoes training and what follows it.
        r = CliTest.run(append(args, "--validate.seqlen", "64"));
        assertEquals(0, r.code(), r.err());
        assertEquals(4, count(r.err(), "unchanged, skipped"), r.err());
        assertTrue(r.err().contains("[5/5] validate: redo, --seqlen 128 -> 64"), r.err());
        r = CliTest.run(append(args, "--steps", "3"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("[1/5] quantize: unchanged, skipped"), r.err());
        assertTrue(r.err().contains("[2/5] eagle-data: unchanged, skipped"), r.err());
        assertTrue(r.err().contains("[3/5] eagle-train: redo, --steps 4 -> 3"), r.err());
        assertTrue(r.err().contains("[4/5] attach: redo, output of eagle-train changed"), r.err());
        assertTrue(r.err().contains("[5/5] validate: redo"), r.err());
        assertArrayEquals(
                Files.readAllBytes(first.resolve("model.safetensors")),
                Files.readAllBytes(out.resolve("model.safetensors")));

        // A gate that fails: exit 1, the release in place and marked failed; a rerun keeps the verdict.
        String[] strict = append(args, "--steps", "3", "--max-kl", "0.000001");
        r = CliTest.run(strict);
        assertEquals(Main.EXIT_CHECK_FAILED, r.code(), r.err());
        assertTrue(r.out().contains("complete, GATES FAILED"), r.out());
        assertTrue(Files.readString(out.resolve("validation.md")).contains("FAILED"));
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")), "the release stays");
        r = CliTest.run(strict);
        assertEquals(Main.EXIT_CHECK_FAILED, r.code(), r.err());
        assertTrue(r.err().contains("[5/5] validate: unchanged, skipped (it ended with exit 1)"), r.err());
    }

    @Test
    void recipeMistakesAreExitTwoNamingTheKeyAndLine() throws IOException {
        Path out = tmp.resolve("never");
        String[][] cases = {
            {
                "quantize:\n  nsampels: 4\n",
                ":3: --recipe: quantize.nsampels: not an option of m2q quantize (did you mean nsamples?)"
            },
            {"quantize:\n  method: rtn\n  nsamples: many\n", ":4: --recipe: quantize.nsamples: "},
            {"eagle-train:\n  steps: [1, 2]\n", ":3: --recipe: eagle-train.steps: takes one value"},
            {"quantize:\n  act-order: 3\n", ":3: --recipe: quantize.act-order: expected true or false, got '3'"},
            {"qantize:\n  bits: 4\n", ":2: --recipe: qantize: unknown key"},
            {"quantize:\n  bits: 4\n  bits: 8\n", ":4: --recipe: quantize.bits: duplicate key"},
            {"quantize:\n  out: /tmp/x\n", ":3: --recipe: quantize.out: set by m2q release itself"},
            {"validate:\n  text: [a: b]\n", ":3: --recipe: validate.text: a list holds plain values"},
        };
        for (String[] c : cases) {
            Path recipe = tmp.resolve("bad.yaml");
            Files.writeString(recipe, "model: " + FIXTURE + "\n" + c[0]);
            CliTest.Run r = CliTest.run("release", "--recipe", recipe.toString(), "--out", out.toString());
            EagleCliTest.oneLine(r, recipe + c[1]);
        }
        EagleCliTest.oneLine(
                CliTest.run("release", "--model", FIXTURE.toString(), "--out", out.toString(), "--seed", "3"),
                "--seed: an option of [quantize, eagle-data, eagle-train, validate]; say which with the stage as a"
                        + " prefix");
        EagleCliTest.oneLine(
                CliTest.run("release", "--model", FIXTURE.toString(), "--out", out.toString(), "--nsample", "3"),
                "did you mean --nsamples?");
        EagleCliTest.oneLine(
                CliTest.run(
                        "release",
                        "--model",
                        FIXTURE.toString(),
                        "--out",
                        first.resolve("draft").toString()),
                "was not built by m2q release");
        // The release's own recipe is an input: the release it lies in is not rebuilt over it.
        EagleCliTest.oneLine(
                CliTest.run(
                        "release",
                        "--recipe",
                        first.resolve(ReleaseCommand.RECIPE_FILE).toString(),
                        "--out",
                        first.toString()),
                "m2q never writes over, replaces or deletes its inputs");
        assertFalse(Files.exists(out), "nothing was written");
        assertFalse(Files.exists(ReleaseCommand.workDir(out)), "nothing was written");
    }

    @Test
    void theExampleRecipesCheckOut() {
        Path repo = FIXTURE.getParent().getParent();
        CliTest.Run demo = CliTest.run(
                "release",
                "--recipe",
                repo.resolve("fixtures/recipes/tiny-demo.yaml").toString(),
                "--model",
                FIXTURE.toString(),
                "--out",
                tmp.resolve("demo").toString(),
                "--dry-run");
        assertEquals(0, demo.code(), demo.err());
        assertEquals(5, count(demo.err(), ": would run"), demo.err());
        CliTest.Run big = CliTest.run(
                "release",
                "--recipe",
                repo.resolve("fixtures/recipes/qwen2.5-32b-w4g128-eagle3.yaml").toString(),
                "--model",
                FIXTURE.toString(),
                "--prompts",
                FIXTURE.resolveSibling("eagle").resolve("train-prompts.txt").toString(),
                "--text",
                FIXTURE.resolve("heldout.txt").toString(),
                "--validate.prompts",
                FIXTURE.resolveSibling("eagle").resolve("eval-prompts.txt").toString(),
                "--out",
                tmp.resolve("big").toString(),
                "--dry-run");
        assertEquals(0, big.code(), big.err());
        assertTrue(big.err().contains("--group-size") || big.err().contains("--format gptq"), big.err());
        assertFalse(Files.exists(tmp.resolve("big")));
        assertFalse(Files.exists(ReleaseCommand.workDir(tmp.resolve("big"))));
    }

    /** Without a head, validate's speculative options are dropped with a line; with one, its prompts are required. */
    @Test
    void speculativeOptionsFollowTheDraftHead() {
        CliTest.Run none = CliTest.run(
                "release",
                "--recipe",
                recipe.toString(),
                "--out",
                tmp.resolve("nohead").toString(),
                "--no-draft",
                "--dry-run");
        assertEquals(0, none.code(), none.err());
        assertTrue(
                none.err()
                        .contains("no draft head, so validate runs without its speculative options (prompts, k,"
                                + " spec-tokens)"),
                none.err());
        assertEquals(2, count(none.err(), ": would run"), none.err());
        assertFalse(none.err().contains("--draft"), none.err());
        EagleCliTest.oneLine(
                CliTest.run(
                        "release",
                        "--model",
                        FIXTURE.toString(),
                        "--out",
                        tmp.resolve("never2").toString(),
                        "--prompts",
                        recipe.resolveSibling("train-prompts.txt").toString(),
                        "--text",
                        FIXTURE.resolve("heldout.txt").toString(),
                        "--dry-run"),
                "a release with a draft head validates it by speculative decoding: set validate.prompts");
    }

    private static String[] append(String[] a, String... more) {
        String[] r = java.util.Arrays.copyOf(a, a.length + more.length);
        System.arraycopy(more, 0, r, a.length, more.length);
        return r;
    }

    private static int count(String text, String what) {
        Matcher m = Pattern.compile(Pattern.quote(what)).matcher(text);
        int n = 0;
        while (m.find()) {
            n++;
        }
        return n;
    }
}
