package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Dirs;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.OutputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.quant.GptqLayoutCheck;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a quantize run leaves on disk when it fails: a release that fails its own loadability check replaces nothing,
 * a fresh run that stops before its first layer leaves nothing, one that stops later keeps a partial folder that
 * {@code --resume} accepts (also when it stopped while finishing), and resume state that is not a progress record
 * is bad input naming the file.
 */
class QuantizeJobOutputTest {
    static QuantizeOptions options(Path out, boolean overwrite, boolean resume) {
        return new QuantizeOptions(
                QuantizeJobTest.FIXTURE,
                out,
                128,
                4,
                64,
                1,
                1L << 30,
                4L << 30,
                3,
                overwrite,
                resume,
                Map.of(),
                List.of("test"),
                "test");
    }

    static QuantizeJob job(Path out, boolean overwrite, boolean resume, LayerMethod method) {
        return new QuantizeJob(
                options(out, overwrite, resume), method, Kernels.byName("vector"), ProgressListener.NONE);
    }

    @Test
    void aReleaseThatFailsItsCheckReplacesNothing(@TempDir Path tmp) throws IOException {
        Path out = Files.createDirectories(tmp.resolve("q"));
        Files.writeString(out.resolve("previous.txt"), "the previous release");
        // The real check, run on the release as written but with its quantization_config dropped (a broken config
        // writer): the check must see it and the swap must not happen.
        QuantizeJob.Summary s = job(out, true, false, new QuantizeJobTest.RecordingRtn())
                .checkedBy(dir -> {
                    try {
                        Map<String, Object> cfg = Json.parseObject(Files.readString(dir.resolve("config.json")));
                        cfg.remove("quantization_config");
                        Files.writeString(dir.resolve("config.json"), Json.writePretty(cfg));
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                    return GptqLayoutCheck.checkCheckpoint(dir, List.of(1)).stream()
                            .map(Object::toString)
                            .toList();
                })
                .run(QuantizeJobTest.samples(), Map.of());
        assertEquals(1, s.violations().size(), s.violations().toString());
        assertTrue(
                s.violations().getFirst().contains("quantization_config"),
                s.violations().toString());
        assertEquals(List.of("previous.txt"), list(out), "the previous release is untouched");
        Path partial = QuantizeJob.partialDir(out);
        assertTrue(Files.isRegularFile(partial.resolve("model.safetensors")), "the release as written stays there");
        assertFalse(Files.exists(partial.resolve("progress.json")), "and is not offered for --resume");

        // The same run with the unmodified check passes it and replaces the old output.
        QuantizeJob.Summary ok =
                job(out, true, false, new QuantizeJobTest.RecordingRtn()).run(QuantizeJobTest.samples(), Map.of());
        assertEquals(List.of(), ok.violations());
        assertTrue(Manifest.verify(out).ok());
        assertFalse(Files.exists(out.resolve("previous.txt")));
        assertFalse(Files.exists(partial));
    }

    @Test
    void aFreshRunThatStopsBeforeItsFirstLayerLeavesNothing(@TempDir Path tmp) {
        Path out = tmp.resolve("q");
        assertThrows(IllegalStateException.class, () -> job(out, false, false, new QuantizeJobTest.Interrupted(0))
                .run(QuantizeJobTest.samples(), Map.of()));
        assertFalse(Files.exists(QuantizeJob.partialDir(out)));
        assertFalse(Files.exists(out));

        assertThrows(IllegalStateException.class, () -> job(out, false, false, new QuantizeJobTest.Interrupted(2))
                .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(
                Files.isRegularFile(QuantizeJob.partialDir(out).resolve("progress.json")),
                "two finished layers are kept for --resume");
    }

    @Test
    @SuppressWarnings("unchecked")
    void resumeStateThatIsNotAProgressRecordIsBadInputNamingTheFile(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("q");
        assertThrows(IllegalStateException.class, () -> job(out, false, false, new QuantizeJobTest.Interrupted(2))
                .run(QuantizeJobTest.samples(), Map.of()));
        Path progress = QuantizeJob.partialDir(out).resolve("progress.json");
        Map<String, Object> j = Json.parseObject(Files.readString(progress));
        j.put("layers_done", "two");
        Files.writeString(progress, Json.writePretty(j));
        InputException shape =
                assertThrows(InputException.class, () -> job(out, false, true, new QuantizeJobTest.RecordingRtn())
                        .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(shape.getMessage().startsWith(progress + ": not an m2q progress record"), shape.getMessage());

        // A report row whose keys do not fit its method: the resumed report would not be the file's rows.
        j.put("layers_done", 2L);
        Map<String, Object> row = (Map<String, Object>) ((List<Object>) j.get("report")).getFirst();
        row.put("damp", 0.01);
        Files.writeString(progress, Json.writePretty(j));
        InputException badRow =
                assertThrows(InputException.class, () -> job(out, false, true, new QuantizeJobTest.RecordingRtn())
                        .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(badRow.getMessage().startsWith(progress + ": not an m2q progress record"), badRow.getMessage());
        assertTrue(badRow.getMessage().contains("damp"), badRow.getMessage());
        row.remove("damp");
        j.put("report", null);
        Files.writeString(progress, Json.writePretty(j));
        InputException noReport =
                assertThrows(InputException.class, () -> job(out, false, true, new QuantizeJobTest.RecordingRtn())
                        .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(noReport.getMessage().startsWith(progress + ": not an m2q progress record"), noReport.getMessage());

        Files.writeString(progress, "[1, 2]");
        InputException garbage =
                assertThrows(InputException.class, () -> job(out, false, true, new QuantizeJobTest.RecordingRtn())
                        .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(garbage.getMessage().startsWith(progress + ": unreadable"), garbage.getMessage());
        assertTrue(Files.isRegularFile(progress), "a --resume run never deletes the interrupted run it was given");
    }

    /** RTN that, at the last layer, puts a folder where the release's config.json goes: finishing then fails. */
    static final class ObstructedFinish implements LayerMethod {
        final QuantizeJobTest.RecordingRtn rtn = new QuantizeJobTest.RecordingRtn();
        final Path partial;

        ObstructedFinish(Path partial) {
            this.partial = partial;
        }

        @Override
        public String name() {
            return "rtn";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            if (ctx.layer() == ctx.config().numLayers() - 1) {
                try {
                    Files.createDirectories(partial.resolve("config.json").resolve("in-the-way"));
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
            return rtn.quantize(ctx);
        }
    }

    @Test
    void aRunThatStopsWhileFinishingResumes(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("q");
        Path partial = QuantizeJob.partialDir(out);
        OutputException e =
                assertThrows(OutputException.class, () -> job(out, false, false, new ObstructedFinish(partial))
                        .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(e.getMessage().startsWith(partial.resolve("config.json") + ": cannot write"), e.getMessage());
        assertTrue(Files.isRegularFile(partial.resolve("model.safetensors")), "the shards were already committed");
        assertTrue(Files.isRegularFile(partial.resolve("progress.json")));

        Dirs.deleteTree(partial.resolve("config.json"));
        QuantizeJob.Summary s =
                job(out, false, true, new QuantizeJobTest.RecordingRtn()).run(QuantizeJobTest.samples(), Map.of());
        assertEquals(8, s.resumedLayers());
        assertTrue(Manifest.verify(out).ok());
        assertFalse(Files.exists(partial));
    }

    static List<String> list(Path dir) throws IOException {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
