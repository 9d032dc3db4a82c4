package dev.m2q.eagle.attach;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Attach accepts a good head and refuses each broken one, leaving the release as it was. */
class DraftAttachTest {
    static final Path FIXTURE =
            Path.of("..", "fixtures", "tiny-qwen2").toAbsolutePath().normalize();

    /** A "release": the fixture's config.json is all attach reads of it. */
    static Path release(Path dir) throws IOException {
        Path r = dir.resolve("release");
        Files.createDirectories(r);
        Files.copy(FIXTURE.resolve("config.json"), r.resolve("config.json"));
        return r;
    }

    /** A head for the fixture with seeded random weights and a 64-token draft vocabulary. */
    static Path head(Path dir) {
        DraftConfig cfg = DraftConfig.forTarget(ModelConfig.load(FIXTURE), null, 64, null);
        Random rng = new Random(1);
        Map<String, float[]> w = new LinkedHashMap<>();
        DraftHead.shapes(cfg).forEach((k, s) -> {
            float[] a = new float[(int) TensorView.numel(s)];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (0.02 * rng.nextGaussian());
            }
            w.put(k, a);
        });
        int[] ids = new int[64];
        for (int i = 0; i < 64; i++) {
            ids[i] = 3 + 31 * i;
        }
        Path h = dir.resolve("head");
        new DraftHead(cfg, DraftVocab.of(ids, 2048), w).write(h);
        return h;
    }

    static Map<String, String> snapshot(Path dir) throws IOException {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                m.put(dir.relativize(p).toString(), Sha256.ofFile(p));
            }
        }
        return m;
    }

    @Test
    void attachesAGoodHeadWithItsManifest(@TempDir Path dir) throws IOException {
        Path rel = release(dir);
        Path head = head(dir);
        DraftAttach.attach(head, rel, false, "test");
        Path draft = rel.resolve(DraftAttach.DIR);
        assertEquals(
                Sha256.ofFile(head.resolve("model.safetensors")), Sha256.ofFile(draft.resolve("model.safetensors")));
        assertEquals(Sha256.ofFile(head.resolve("config.json")), Sha256.ofFile(draft.resolve("config.json")));
        assertTrue(Manifest.verify(draft).ok(), "draft/m2q-manifest.json lists every copied file's sha256");
        Map<String, Object> m = Json.parseObject(Files.readString(draft.resolve(Manifest.FILE)));
        assertEquals(head.toAbsolutePath().normalize().toString(), m.get("source"));
        DraftHead.read(draft);
        Map<String, String> before = snapshot(rel);
        InputException e = assertThrows(InputException.class, () -> DraftAttach.attach(head, rel, false, "test"));
        assertTrue(e.getMessage().contains("--overwrite"), e.getMessage());
        assertEquals(before, snapshot(rel));
        DraftAttach.attach(head, rel, true, "test");
        assertEquals(
                List.of("config.json", "draft"),
                Files.list(rel).map(p -> p.getFileName().toString()).sorted().toList());
    }

    @Test
    void refusesEachBrokenHeadAndLeavesTheReleaseUntouched(@TempDir Path dir) throws IOException {
        Path rel = release(dir);
        Map<String, String> before = snapshot(rel);
        refused(dir, rel, "fc.weight", t -> resized(t, 256, 3 * 256 - 1), "\"fc.weight\" has shape");
        refused(
                dir,
                rel,
                DraftHead.T2D,
                t -> {
                    byte[] b = t.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                    b[4] = 1; // target id 4 is not in the vocabulary (3 + 31·i)
                    return new TensorView(t.name(), t.dtype(), t.shape(), MemorySegment.ofArray(b));
                },
                "t2d[4] is true");
        refused(
                dir,
                rel,
                DraftHead.D2T,
                t -> {
                    long[] d = t.toLongArray();
                    d[5] += 1; // draft id 5 now maps to 159, which t2d does not mark
                    return longs(t, d);
                },
                "t2d[");
        refused(
                dir,
                rel,
                DraftHead.D2T,
                t -> {
                    long[] d = t.toLongArray();
                    d[63] = 5000;
                    return longs(t, d);
                },
                "outside [0, 2048)");
        refused(dir, rel, DraftHead.NORM, t -> null, "no tensor \"norm.weight\"");
        refusedConfig(
                dir,
                rel,
                c -> {
                    c.remove("head_dim");
                    return c;
                },
                "head_dim");
        refusedConfig(
                dir,
                rel,
                c -> {
                    c.put("num_hidden_layers", 2);
                    return c;
                },
                "num_hidden_layers");
        // a release with another vocabulary: the head's vocab_size no longer matches
        Path other = dir.resolve("other-release");
        Files.createDirectories(other);
        Map<String, Object> cfg = Json.parseObject(Files.readString(FIXTURE.resolve("config.json")));
        cfg.put("vocab_size", 4096);
        Files.writeString(other.resolve("config.json"), Json.writePretty(cfg));
        Path good = head(dir.resolve("good"));
        InputException e = assertThrows(InputException.class, () -> DraftAttach.attach(good, other, false, "test"));
        assertTrue(e.getMessage().contains("vocab_size 2048 vs the target's 4096"), e.getMessage());
        assertEquals(
                List.of("config.json"),
                Files.list(other).map(p -> p.getFileName().toString()).toList());
        assertEquals(before, snapshot(rel));
    }

    private static void refused(Path dir, Path rel, String tensor, UnaryOperator<TensorView> change, String expected)
            throws IOException {
        Path h = head(Files.createTempDirectory(dir, "h"));
        Path file = h.resolve(DraftHead.FILE);
        List<TensorView> tensors = new ArrayList<>();
        try (Checkpoint ck = Checkpoint.open(h)) {
            for (String n : ck.names()) {
                TensorView t = ck.tensor(n);
                TensorView copy = new TensorView(
                        n,
                        t.dtype(),
                        t.shape(),
                        MemorySegment.ofArray(t.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)));
                TensorView c = n.equals(tensor) ? change.apply(copy) : copy;
                if (c != null) {
                    tensors.add(c);
                }
            }
        }
        SafetensorsWriter.writeFile(file, tensors, Map.of("format", "pt"));
        Map<String, String> before = snapshot(rel);
        InputException e = assertThrows(InputException.class, () -> DraftAttach.attach(h, rel, false, "test"));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertEquals(before, snapshot(rel), "the release is untouched");
    }

    private static void refusedConfig(Path dir, Path rel, UnaryOperator<Map<String, Object>> change, String expected)
            throws IOException {
        Path h = head(Files.createTempDirectory(dir, "h"));
        Path f = h.resolve("config.json");
        Files.writeString(
                f, Json.writePretty(change.apply(Json.parseObject(Files.readString(f)))), StandardCharsets.UTF_8);
        Map<String, String> before = snapshot(rel);
        InputException e = assertThrows(InputException.class, () -> DraftAttach.attach(h, rel, false, "test"));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertEquals(before, snapshot(rel), "the release is untouched");
    }

    private static TensorView resized(TensorView t, int rows, int cols) {
        return new TensorView(
                t.name(), DType.BF16, new long[] {rows, cols}, MemorySegment.ofArray(new byte[rows * cols * 2]));
    }

    private static TensorView longs(TensorView t, long[] d) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(d.length * 8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (long x : d) {
            b.putLong(x);
        }
        return new TensorView(t.name(), t.dtype(), t.shape(), MemorySegment.ofArray(b.array()));
    }
}
