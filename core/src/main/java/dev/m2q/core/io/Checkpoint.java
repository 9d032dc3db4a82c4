package dev.m2q.core.io;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * A model's weights: one {@code model.safetensors}, or shards listed by {@code model.safetensors.index.json}
 * ({@code {"metadata": {"total_size": bytes}, "weight_map": {tensor: shard file}}}), each shard mapped once.
 * Tensor names are unique across the checkpoint; views are valid until {@link #close()}.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String INDEX_FILE = "model.safetensors.index.json";
    public static final String SINGLE_FILE = "model.safetensors";

    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> owner;

    private Checkpoint(List<SafetensorsFile> files, Map<String, SafetensorsFile> owner) {
        this.files = files;
        this.owner = owner;
    }

    /**
     * Opens a checkpoint directory (with {@value #INDEX_FILE}, else {@value #SINGLE_FILE}) or one safetensors file.
     *
     * @throws SafetensorsFormatException for a malformed shard or index, or an index that disagrees with its shards
     * @throws InputException when the path holds no checkpoint
     */
    public static Checkpoint open(Path path) {
        if (Files.isRegularFile(path)) {
            return single(path);
        }
        if (!Files.isDirectory(path)) {
            throw new InputException(
                    path + ": no such file or directory (expected a checkpoint directory or a " + ".safetensors file)");
        }
        Path index = path.resolve(INDEX_FILE);
        if (Files.isRegularFile(index)) {
            return sharded(path, index);
        }
        Path single = path.resolve(SINGLE_FILE);
        if (Files.isRegularFile(single)) {
            return single(single);
        }
        throw new InputException(path + ": no " + INDEX_FILE + " and no " + SINGLE_FILE
                + " (is this a Hugging Face checkpoint directory with safetensors weights?)");
    }

    private static Checkpoint single(Path file) {
        SafetensorsFile f = SafetensorsFile.open(file);
        Map<String, SafetensorsFile> owner = new LinkedHashMap<>();
        for (String name : f.names()) {
            owner.put(name, f);
        }
        return new Checkpoint(List.of(f), Collections.unmodifiableMap(owner));
    }

    private static Checkpoint sharded(Path dir, Path index) {
        Map<String, String> weightMap = new LinkedHashMap<>();
        Long totalSize = readIndex(index, weightMap);
        Map<String, SafetensorsFile> byFile = new TreeMap<>();
        try {
            for (String shard : new TreeSet<>(weightMap.values())) {
                Path p = dir.resolve(shard);
                if (!Files.isRegularFile(p)) {
                    throw new SafetensorsFormatException(
                            index, null, "lists shard " + SafetensorsFormatException.quote(shard) + ", not found");
                }
                byFile.put(shard, SafetensorsFile.open(p));
            }
            Map<String, SafetensorsFile> owner = new LinkedHashMap<>();
            for (SafetensorsFile f : byFile.values()) {
                String fileName = f.path().getFileName().toString();
                for (String name : f.names()) {
                    String listed = weightMap.get(name);
                    if (listed == null) {
                        throw new SafetensorsFormatException(
                                f.path(), name, "is in the shard but not in " + INDEX_FILE + " (stale index?)");
                    }
                    if (!listed.equals(fileName)) {
                        throw new SafetensorsFormatException(
                                f.path(),
                                name,
                                "is here, but " + INDEX_FILE + " places it in "
                                        + SafetensorsFormatException.quote(listed) + " (duplicate or stale index)");
                    }
                    owner.put(name, f);
                }
            }
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                if (!owner.containsKey(e.getKey())) {
                    throw new SafetensorsFormatException(
                            dir.resolve(e.getValue()),
                            e.getKey(),
                            "listed in " + INDEX_FILE + " but missing from the shard");
                }
            }
            Checkpoint c = new Checkpoint(List.copyOf(byFile.values()), Collections.unmodifiableMap(owner));
            if (totalSize != null && totalSize != c.totalBytes()) {
                throw new SafetensorsFormatException(
                        index,
                        null,
                        "metadata.total_size is " + totalSize + " but the shards' tensors hold " + c.totalBytes()
                                + " bytes");
            }
            return c;
        } catch (RuntimeException | Error e) {
            byFile.values().forEach(SafetensorsFile::close);
            throw e;
        }
    }

    /** Fills {@code weightMap} from the index; returns metadata.total_size, or null when absent. */
    private static Long readIndex(Path index, Map<String, String> weightMap) {
        Map<String, Object> root;
        try {
            root = Json.parseObject(Files.readString(index));
        } catch (CharacterCodingException e) {
            throw new SafetensorsFormatException(index, null, "not valid UTF-8", e);
        } catch (JsonException | NumberFormatException e) {
            throw new SafetensorsFormatException(index, null, "not a valid JSON object: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new InputException(index + ": cannot read: " + e.getMessage(), e);
        }
        if (!(root.get("weight_map") instanceof Map<?, ?> wm)) {
            throw new SafetensorsFormatException(index, "has no \"weight_map\" object");
        }
        for (Map.Entry<?, ?> e : wm.entrySet()) {
            String name = (String) e.getKey();
            if (!(e.getValue() instanceof String shard)) {
                throw new SafetensorsFormatException(index, name, "weight_map value is not a string");
            }
            if (!isPlainFileName(shard)) {
                throw new SafetensorsFormatException(
                        index,
                        name,
                        "weight_map names shard " + SafetensorsFormatException.quote(shard)
                                + ", not a file name in the checkpoint directory");
            }
            weightMap.put(name, shard);
        }
        if (weightMap.isEmpty()) {
            throw new SafetensorsFormatException(index, "\"weight_map\" is empty");
        }
        Object meta = root.get("metadata");
        if (meta == null) {
            return null;
        }
        if (!(meta instanceof Map<?, ?> m)) {
            throw new SafetensorsFormatException(index, "\"metadata\" is not an object");
        }
        return switch (m.get("total_size")) {
            case null -> null;
            case Long l -> l;
            case Double d when d == Math.rint(d) && d >= 0 && d < 0x1p63 -> d.longValue();
            case BigInteger b -> throw new SafetensorsFormatException(index, "metadata.total_size is out of range");
            default -> throw new SafetensorsFormatException(index, "metadata.total_size is not an integer");
        };
    }

    private static boolean isPlainFileName(String s) {
        try {
            Path p = Path.of(s);
            return !s.isEmpty() && !p.isAbsolute() && p.getNameCount() == 1 && !s.equals("..") && !s.equals(".");
        } catch (InvalidPathException e) {
            return false;
        }
    }

    /** Every tensor name: shards in file-name order, each in header order. */
    public Set<String> names() {
        return owner.keySet();
    }

    public boolean contains(String name) {
        return owner.containsKey(name);
    }

    /**
     * The view of tensor {@code name}, valid until {@link #close()}.
     *
     * @throws SafetensorsFormatException when no shard holds it
     */
    public TensorView tensor(String name) {
        SafetensorsFile f = owner.get(name);
        if (f == null) {
            throw notFound(name);
        }
        return f.tensor(name);
    }

    /** The shard file that holds {@code name}. */
    public Path shardOf(String name) {
        SafetensorsFile f = owner.get(name);
        if (f == null) {
            throw notFound(name);
        }
        return f.path();
    }

    /** The safetensors files, in file-name order. */
    public List<Path> files() {
        return files.stream().map(SafetensorsFile::path).toList();
    }

    /** The {@code __metadata__} of the first shard (HF writes the same map into every shard). */
    public Map<String, String> metadata() {
        return files.getFirst().metadata();
    }

    /** Sum of all tensors' byte sizes (what HF writes as metadata.total_size). */
    public long totalBytes() {
        return files.stream().mapToLong(SafetensorsFile::tensorBytes).sum();
    }

    /** Unmaps every shard. */
    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }

    @Override
    public String toString() {
        return "Checkpoint[" + files.size() + " file(s), " + owner.size() + " tensors, " + totalBytes() + " bytes, "
                + files().stream().map(Path::toString).collect(Collectors.joining(", ")) + "]";
    }

    private SafetensorsFormatException notFound(String name) {
        Path where = files.size() == 1
                ? files.getFirst().path()
                : files.getFirst().path().getParent();
        return new SafetensorsFormatException(where, name, "not in this checkpoint " + SafetensorsFile.sample(names()));
    }
}
