package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.StagedDir;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The output side of every writing command: an output that is, contains or lies inside an input is refused with
 * exit 2 before anything is touched (also through a symlink), a second writer is refused without touching the
 * first's work, resume state that does not parse is exit 2, and a failed replacement keeps the previous output.
 */
class OutputSafetyTest {
    static final String[] TINY = {"--method", "rtn", "--nsamples", "2", "--seqlen", "32"};

    /** A copy of the fixture to point the commands at (a bug here must not destroy the bundled fixture). */
    static Path model(Path tmp) throws IOException {
        Path m = Files.createDirectories(tmp.resolve("model"));
        try (Stream<Path> s = Files.list(CliTest.FIXTURE)) {
            for (Path f : s.toList()) {
                Files.copy(f, m.resolve(f.getFileName()));
            }
        }
        return m;
    }

    /** Every file under {@code dir} (relative name → sha256): unchanged means byte for byte. */
    static Map<String, String> snapshot(Path dir) throws IOException {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) {
                out.put(dir.relativize(f).toString(), Sha256.ofFile(f));
            }
        }
        return out;
    }

    static CliTest.Run quantize(String... args) {
        List<String> a = new ArrayList<>(List.of("quantize"));
        a.addAll(List.of(args));
        a.addAll(List.of(TINY));
        return CliTest.run(a.toArray(String[]::new));
    }

    /**
     * Exit 2 and the reason on one "m2q: " line, the last on stderr (quantize may have printed its banner before a
     * refusal found once the run has started, e.g. the lock).
     */
    static void refused(CliTest.Run r, String expected) {
        assertEquals(Main.EXIT_BAD_INPUT, r.code(), r.err());
        List<String> lines = r.err().strip().lines().toList();
        String last = lines.getLast();
        assertTrue(last.startsWith("m2q: ") && last.contains(expected), r.err());
        assertTrue(lines.stream().noneMatch(l -> l.startsWith("\tat ")), "no stack trace: " + r.err());
    }

    @Test
    void quantizeNeverWritesOverItsInputs(@TempDir Path tmp) throws IOException {
        Path m = model(tmp);
        Map<String, String> before = snapshot(tmp);
        refused(
                quantize("--model", m.toString(), "--out", m.toString(), "--overwrite"),
                "--out " + m + " is the same path as --model " + m);
        refused(quantize("--model", m.toString(), "--out", tmp.toString(), "--overwrite"), "contains --model");
        refused(quantize("--model", m.toString(), "--out", m.resolve("q4").toString()), "lies inside --model");
        Path link = Files.createSymbolicLink(tmp.resolve("link"), m);
        refused(
                quantize("--model", m.toString(), "--out", link.toString(), "--overwrite"),
                "--out " + link + " (" + m.toRealPath() + ") is the same path as --model");
        refused(
                quantize(
                        "--model",
                        link.toString(),
                        "--out",
                        m.getParent().resolve("model").toString(),
                        "--overwrite"),
                "is the same path as --model " + link);
        Path release = Files.createDirectories(tmp.resolve("release"));
        Path calib = Files.copy(m.resolve("calibration.txt"), release.resolve("calib.txt"));
        refused(
                quantize(
                        "--model",
                        m.toString(),
                        "--out",
                        release.toString(),
                        "--overwrite",
                        "--calib",
                        calib.toString()),
                "--out " + release + " contains --calib " + calib);
        Map<String, String> after = snapshot(tmp);
        after.remove("release/calib.txt");
        assertEquals(before, after, "the model folder is unchanged byte for byte, nothing else was written");
        assertEquals(List.of("calib.txt"), snapshot(release).keySet().stream().toList());
    }

    @Test
    void eagleCommandsNeverWriteOverTheirInputs(@TempDir Path tmp) throws IOException {
        Path m = model(tmp);
        Path prompts = Files.writeString(tmp.resolve("p.txt"), "In the beginning\nThe earth\n");
        Path release =
                Files.createDirectories(tmp.resolve("release").resolve("draft")).getParent();
        Files.copy(m.resolve("config.json"), release.resolve("config.json"));
        Map<String, String> before = snapshot(tmp);
        refused(
                CliTest.run(
                        "eagle",
                        "data",
                        "--target",
                        m.toString(),
                        "--prompts",
                        prompts.toString(),
                        "--out",
                        prompts.toString(),
                        "--overwrite"),
                "--out " + prompts + " is the same path as --prompts " + prompts);
        refused(
                CliTest.run(
                        "eagle",
                        "train",
                        "--target",
                        m.toString(),
                        "--data",
                        prompts.toString(),
                        "--out",
                        m.toString(),
                        "--overwrite"),
                "--out " + m + " is the same path as --target " + m);
        refused(
                CliTest.run(
                        "eagle",
                        "attach",
                        "--draft",
                        release.resolve("draft").toString(),
                        "--release",
                        release.toString(),
                        "--overwrite"),
                "is the same path as --draft");
        refused(
                CliTest.run(
                        "eagle",
                        "attach",
                        "--draft",
                        release.toString(),
                        "--release",
                        release.toString(),
                        "--overwrite"),
                "lies inside --draft " + release);
        refused(
                CliTest.run(
                        "validate",
                        "--reference",
                        m.toString(),
                        "--text",
                        m.resolve("heldout.txt").toString(),
                        "--candidate",
                        release.toString(),
                        "--report-dir",
                        m.toString()),
                "--report-dir " + m + " is the same path as --reference " + m);
        assertEquals(before, snapshot(tmp), "every input is unchanged byte for byte");
    }

    @Test
    void aSecondWriterIsRefusedAndTheFirstsWorkIsKept(@TempDir Path tmp) throws IOException {
        Path m = model(tmp);
        Path out = tmp.resolve("q");
        // The first writer (in this JVM, as a concurrent run in another process would hold it): its partial folder
        // holds work the second run must not delete.
        try (StagedDir first = StagedDir.open(out, false, false, "progress.json")) {
            first.writeAtomically("work-in-progress", "layer 0");
            Map<String, String> work = snapshot(first.dir());
            refused(
                    quantize("--model", m.toString(), "--out", out.toString(), "--overwrite"),
                    out + " is being written by pid " + ProcessHandle.current().pid());
            assertEquals(work, snapshot(first.dir()));
            assertFalse(Files.exists(out));
        }
    }

    @Test
    void resumeStateThatDoesNotParseIsExitTwoNamingTheFile(@TempDir Path tmp) throws IOException {
        Path m = model(tmp);
        Path out = tmp.resolve("q");
        Path progress = Files.createDirectories(tmp.resolve("q.m2q-partial")).resolve("progress.json");
        Files.writeString(progress, "{\"fingerprint\": 1");
        refused(quantize("--model", m.toString(), "--out", out.toString(), "--resume"), progress + ": unreadable");
        assertTrue(Files.isRegularFile(progress), "a --resume run leaves the state it was given");
    }

    @Test
    void aReleaseReplacesTheOldOneOnlyWhenCompleteAndLeavesNothingBeside(@TempDir Path tmp) throws IOException {
        Path m = model(tmp);
        Path out = tmp.resolve("q");
        CliTest.Run first = quantize("--model", m.toString(), "--out", out.toString());
        assertEquals(0, first.code(), first.err());
        Map<String, String> release = snapshot(out);
        assertFalse(release.containsKey(StagedDir.LOCK), "the lock never ships");
        assertTrue(Manifest.verify(out).ok());
        // A run that fails (a calibration file that is not there) leaves the release as it was, and nothing else.
        CliTest.Run failed = quantize(
                "--model",
                m.toString(),
                "--out",
                out.toString(),
                "--overwrite",
                "--calib",
                tmp.resolve("no.txt").toString());
        assertNotEquals(0, failed.code());
        assertEquals(release, snapshot(out));
        CliTest.Run again =
                quantize("--model", m.toString(), "--out", out.toString(), "--overwrite", "--group-size", "64");
        assertEquals(0, again.code(), again.err());
        assertNotEquals(release.get("model.safetensors"), snapshot(out).get("model.safetensors"));
        try (Stream<Path> s = Files.list(tmp)) {
            assertEquals(
                    List.of("model", "q"),
                    s.map(p -> p.getFileName().toString()).sorted().toList(),
                    "no partial or old folder left beside the release");
        }
    }

    @Test
    void aFailedEagleTrainOverwriteKeepsThePreviousHead(@TempDir Path tmp) throws IOException {
        Path prompts = Files.writeString(tmp.resolve("p.txt"), "In the beginning\nAnd the LORD spake\nBlessed are\n");
        Path data = tmp.resolve("d.jsonl");
        CliTest.Run d = CliTest.run(
                "eagle",
                "data",
                "--target",
                CliTest.FIXTURE.toString(),
                "--prompts",
                prompts.toString(),
                "--out",
                data.toString(),
                "--max-new-tokens",
                "4");
        assertEquals(0, d.code(), d.err());
        String[] again = {
            "eagle",
            "data",
            "--target",
            CliTest.FIXTURE.toString(),
            "--prompts",
            prompts.toString(),
            "--out",
            data.toString(),
            "--max-new-tokens",
            "3",
            "--overwrite"
        };
        CliTest.Run replaced = CliTest.run(again);
        assertEquals(0, replaced.code(), replaced.err());
        assertTrue(Files.readString(data).contains("\"max_new_tokens\":3"), "the file was replaced");
        try (Stream<Path> s = Files.list(tmp)) {
            assertEquals(
                    List.of("d.jsonl", "p.txt"),
                    s.map(p -> p.getFileName().toString()).sorted().toList());
        }
        Path out = Files.createDirectories(tmp.resolve("head"));
        Files.writeString(out.resolve("previous-head.txt"), "the previous head");
        // A learning rate of 1e30 makes step 2's loss non-finite: the run fails after training started.
        CliTest.Run t = CliTest.run(
                "eagle",
                "train",
                "--target",
                CliTest.FIXTURE.toString(),
                "--data",
                data.toString(),
                "--out",
                out.toString(),
                "--overwrite",
                "--steps",
                "3",
                "--draft-vocab",
                "16",
                "--max-seq-len",
                "32",
                "--lr",
                "1e30");
        assertNotEquals(0, t.code(), t.err());
        assertTrue(t.err().contains("not finite"), t.err());
        assertEquals(Map.of("previous-head.txt", Sha256.ofFile(out.resolve("previous-head.txt"))), snapshot(out));
        assertFalse(Files.exists(tmp.resolve("head.m2q-old")));
        assertFalse(Files.exists(tmp.resolve("head.m2q-partial")), "no checkpoint was written: nothing to resume");
    }
}
