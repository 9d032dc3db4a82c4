package dev.m2q.core.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.json.Json;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * How a checkpoint's tensors are split into files, fixed before anything is written. Tensors keep the given order
 * and fill shards greedily up to {@code maxShardBytes} of tensor data; a tensor larger than the cap gets a shard of
 * its own. One shard is named {@value Checkpoint#SINGLE_FILE}; n shards are named {@code model-00001-of-0000n.safetensors}
 * (five digits, as Hugging Face writes them) and listed in {@value Checkpoint#INDEX_FILE}.
 */
public final class ShardPlan {
    /** One output file and the tensors it holds, in write order. */
    public record Shard(String fileName, List<TensorSpec> tensors) {
        public Shard {
            tensors = List.copyOf(tensors);
        }

        /** Sum of the tensors' byte sizes. */
        public long dataBytes() {
            return tensors.stream().mapToLong(TensorSpec::byteSize).sum();
        }
    }

    private final List<Shard> shards;
    private final Map<String, TensorSpec> specs;
    private final Map<String, String> fileOf;

    private ShardPlan(List<Shard> shards) {
        this.shards = List.copyOf(shards);
        Map<String, TensorSpec> specs = new LinkedHashMap<>();
        Map<String, String> fileOf = new LinkedHashMap<>();
        for (Shard s : shards) {
            for (TensorSpec t : s.tensors()) {
                specs.put(t.name(), t);
                fileOf.put(t.name(), s.fileName());
            }
        }
        this.specs = Collections.unmodifiableMap(specs);
        this.fileOf = Collections.unmodifiableMap(fileOf);
    }

    /**
     * Plans {@code tensors} (names unique) into shards of at most {@code maxShardBytes} data bytes each.
     *
     * @throws IllegalArgumentException for a duplicate name or a cap below 1
     */
    public static ShardPlan of(List<TensorSpec> tensors, long maxShardBytes) {
        if (maxShardBytes < 1) {
            throw new IllegalArgumentException("max shard size must be positive, got " + maxShardBytes);
        }
        Set<String> seen = new HashSet<>();
        List<List<TensorSpec>> groups = new ArrayList<>();
        List<TensorSpec> current = new ArrayList<>();
        long currentBytes = 0;
        for (TensorSpec t : tensors) {
            if (!seen.add(t.name())) {
                throw new IllegalArgumentException("tensor \"" + t.name() + "\" planned twice");
            }
            if (!current.isEmpty() && currentBytes + t.byteSize() > maxShardBytes) {
                groups.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(t);
            currentBytes += t.byteSize();
        }
        if (!current.isEmpty() || groups.isEmpty()) {
            groups.add(current);
        }
        List<Shard> shards = new ArrayList<>();
        for (int i = 0; i < groups.size(); i++) {
            String name = groups.size() == 1
                    ? Checkpoint.SINGLE_FILE
                    : String.format("model-%05d-of-%05d.safetensors", i + 1, groups.size());
            shards.add(new Shard(name, groups.get(i)));
        }
        return new ShardPlan(shards);
    }

    /** All tensors in one file, whatever their size. */
    public static ShardPlan single(List<TensorSpec> tensors) {
        return of(tensors, Long.MAX_VALUE);
    }

    public List<Shard> shards() {
        return shards;
    }

    /** True when there is more than one shard, and so an index file. */
    public boolean sharded() {
        return shards.size() > 1;
    }

    /** Every planned tensor, in plan order. */
    public Map<String, TensorSpec> specs() {
        return specs;
    }

    /** The file that will hold {@code name}. */
    public String fileOf(String name) {
        String f = fileOf.get(name);
        if (f == null) {
            throw new IllegalArgumentException("tensor \"" + name + "\" is not in the plan");
        }
        return f;
    }

    /** Sum of all tensors' byte sizes: the index's metadata.total_size. */
    public long totalBytes() {
        return shards.stream().mapToLong(Shard::dataBytes).sum();
    }

    /**
     * The index file's text: {@code {"metadata": {"total_size": N}, "weight_map": {name: file}}}, keys sorted,
     * indented as Hugging Face writes it.
     */
    public String indexJson() {
        return Json.writePretty(new Index(new Index.Metadata(totalBytes()), new TreeMap<>(fileOf)));
    }

    /** {@code model.safetensors.index.json} as m2q writes it: the total tensor bytes and each tensor's shard. */
    record Index(
            Metadata metadata, @JsonProperty("weight_map") Map<String, String> weightMap) {
        record Metadata(@JsonProperty("total_size") long totalSize) {}
    }
}
