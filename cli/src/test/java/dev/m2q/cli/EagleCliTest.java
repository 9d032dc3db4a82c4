package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.io.Manifest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** m2q eagle end to end on the fixture (data, a few training steps, attach), and exit 2 with one line on bad input. */
class EagleCliTest {
    static final Path FIXTURE = CliTest.FIXTURE;

    static void oneLine(CliTest.Run r, String expected) {
        assertEquals(Main.EXIT_BAD_INPUT, r.code(), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains(expected), r.err());
    }

    @Test
    void dataThenTrainThenAttach(@TempDir Path dir) throws IOException {
        Path prompts = dir.resolve("p.txt");
        Files.writeString(prompts, "In the beginning\nAnd the LORD spake\nBlessed are\nThe earth\n");
        Path data = dir.resolve("d.jsonl");
        CliTest.Run d = CliTest.run(
                "eagle",
                "data",
                "--target",
                FIXTURE.toString(),
                "--prompts",
                prompts.toString(),
                "--out",
                data.toString(),
                "--max-new-tokens",
                "4");
        assertEquals(0, d.code(), d.err());
        oneLine(
                CliTest.run(
                        "eagle",
                        "data",
                        "--target",
                        FIXTURE.toString(),
                        "--prompts",
                        prompts.toString(),
                        "--out",
                        data.toString()),
                "already exists");

        Path out = dir.resolve("head");
        // The real training-time-test objective, kept tiny: 3 steps over 4 short sequences.
        CliTest.Run t = CliTest.run(
                "eagle",
                "train",
                "--target",
                FIXTURE.toString(),
                "--data",
                data.toString(),
                "--out",
                out.toString(),
                "--steps",
                "3",
                "--draft-vocab",
                "16",
                "--holdout",
                "0.25",
                "--max-seq-len",
                "32");
        assertEquals(0, t.code(), t.err());
        assertTrue(t.err().contains("held-out"), t.err());
        DraftHead head = DraftHead.read(out);
        assertEquals(16, head.vocab().size());
        assertTrue(Manifest.verify(out).ok(), "the manifest lists config.json, model.safetensors, train-log.jsonl");
        assertFalse(Files.exists(out.resolve("checkpoint")), "the checkpoint is gone once the head is exported");

        oneLine(
                CliTest.run(
                        "eagle",
                        "train",
                        "--target",
                        FIXTURE.toString(),
                        "--data",
                        data.toString(),
                        "--out",
                        out.toString()),
                "already exists");
        oneLine(
                CliTest.run(
                        "eagle",
                        "train",
                        "--target",
                        FIXTURE.toString(),
                        "--data",
                        dir.resolve("no").toString(),
                        "--out",
                        dir.resolve("o2").toString()),
                "--data");
        oneLine(
                CliTest.run(
                        "eagle",
                        "train",
                        "--target",
                        FIXTURE.toString(),
                        "--data",
                        data.toString(),
                        "--out",
                        dir.resolve("o3").toString(),
                        "--resume"),
                "no interrupted run to resume");
        oneLine(
                CliTest.run(
                        "eagle",
                        "train",
                        "--target",
                        FIXTURE.toString(),
                        "--data",
                        data.toString(),
                        "--out",
                        dir.resolve("o4").toString(),
                        "--holdout",
                        "1.5"),
                "--holdout");

        Path release = dir.resolve("release");
        Files.createDirectories(release);
        Files.copy(FIXTURE.resolve("config.json"), release.resolve("config.json"));
        CliTest.Run a = CliTest.run("eagle", "attach", "--draft", out.toString(), "--release", release.toString());
        assertEquals(0, a.code(), a.err());
        oneLine(
                CliTest.run("eagle", "attach", "--draft", out.toString(), "--release", release.toString()),
                "--overwrite");
        oneLine(
                CliTest.run(
                        "eagle", "attach", "--draft", dir.resolve("none").toString(), "--release", release.toString()),
                "--draft");
    }
}
