package dev.m2q.core.io;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code m2q-manifest.json} (FORMATS.md §6): what an m2q release says about itself, and the check that the files
 * on disk are the files it describes. Besides the sha256 of every file ({@code files}), m2q records the sha256 of
 * every tensor's bytes ({@code tensors}), so a damaged shard is traced to the tensor that changed rather than only
 * to a multi-gigabyte file.
 */
public final class Manifest {
    public static final String FILE = "m2q-manifest.json";

    private Manifest() {}

    /** One file or tensor that is not what the manifest says. */
    public record Problem(String name, String rule, String detail) {
        @Override
        public String toString() {
            return name + ": " + detail;
        }
    }

    /**
     * @param present whether the folder has a manifest at all (third-party checkpoints have none)
     * @param files files whose hash was compared
     * @param tensors tensors whose hash was compared (only those in files that failed)
     */
    public record Verification(boolean present, int files, int tensors, List<Problem> problems) {
        public boolean ok() {
            return present && problems.isEmpty();
        }
    }

    /** sha256 of every tensor's bytes in the checkpoint at {@code dir}, by name (sorted). */
    public static Map<String, String> tensorHashes(Path dir) {
        Map<String, String> out = new TreeMap<>();
        try (Checkpoint ck = Checkpoint.open(dir)) {
            for (String name : ck.names()) {
                out.put(name, Sha256.ofSegment(ck.tensor(name).data()));
            }
        }
        return out;
    }

    /**
     * Hashes every file the manifest in {@code dir} lists and compares. When a file differs and the manifest lists
     * tensor hashes, the tensors of that file are hashed too and each changed one is named.
     *
     * @throws InputException when the manifest exists but is not valid JSON of the expected shape
     */
    public static Verification verify(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            return new Verification(false, 0, 0, List.of());
        }
        Map<String, Object> root;
        try {
            root = Json.parseObject(Files.readString(file, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e.getMessage(), e);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
        Map<String, String> files = strings(root.get("files"), file, "files");
        Map<String, String> tensors =
                root.containsKey("tensors") ? strings(root.get("tensors"), file, "tensors") : null;
        List<Problem> problems = new ArrayList<>();
        List<String> damaged = new ArrayList<>();
        int checked = 0;
        for (Map.Entry<String, String> e : files.entrySet()) {
            Path f = dir.resolve(e.getKey()).normalize();
            if (!f.startsWith(dir.normalize())) {
                throw new InputException(file + ": file entry \"" + e.getKey() + "\" points outside the folder");
            }
            if (!Files.isRegularFile(f)) {
                problems.add(new Problem(e.getKey(), "file missing", "listed in " + FILE + " but not on disk"));
                continue;
            }
            checked++;
            String actual = Sha256.ofFile(f);
            if (!actual.equalsIgnoreCase(e.getValue())) {
                problems.add(new Problem(
                        e.getKey(),
                        "file sha256",
                        "sha256 is " + actual + " but " + FILE + " records " + e.getValue()
                                + " (the file changed after m2q wrote it)"));
                damaged.add(e.getKey());
            }
        }
        int tensorCount = 0;
        if (tensors != null && damaged.stream().anyMatch(n -> n.endsWith(".safetensors"))) {
            tensorCount = tracedTensors(dir, tensors, damaged, problems);
        }
        return new Verification(true, checked, tensorCount, List.copyOf(problems));
    }

    /** Hashes the tensors of the damaged shards and names each one whose bytes changed. */
    private static int tracedTensors(Path dir, Map<String, String> tensors, List<String> damaged, List<Problem> out) {
        int count = 0;
        try (Checkpoint ck = Checkpoint.open(dir)) {
            for (Map.Entry<String, String> e : tensors.entrySet()) {
                String name = e.getKey();
                if (!ck.contains(name)) {
                    out.add(new Problem(name, "tensor missing", "listed in " + FILE + " but in no shard"));
                    continue;
                }
                if (!damaged.contains(ck.shardOf(name).getFileName().toString())) {
                    continue;
                }
                count++;
                String actual = Sha256.ofSegment(ck.tensor(name).data());
                if (!actual.equalsIgnoreCase(e.getValue())) {
                    out.add(new Problem(
                            name,
                            "tensor sha256",
                            "bytes changed: sha256 " + actual + ", " + FILE + " records " + e.getValue() + " (in "
                                    + ck.shardOf(name).getFileName() + ")"));
                }
            }
        } catch (InputException e) {
            out.add(new Problem(
                    String.join(", ", damaged),
                    "unreadable",
                    "cannot be opened to trace the damage to a tensor: " + e.getMessage()));
        }
        return count;
    }

    private static Map<String, String> strings(Object v, Path file, String key) {
        if (!(v instanceof Map<?, ?> m)) {
            throw new InputException(file + ": \"" + key + "\" must be an object of name → sha256");
        }
        Map<String, String> out = new TreeMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof String s)) {
                throw new InputException(file + ": " + key + "[\"" + e.getKey() + "\"] must be a sha256 string");
            }
            out.put((String) e.getKey(), s);
        }
        return out;
    }
}
