package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** How Checkpoint.open treats directories, indexes and shards that disagree. */
class CheckpointTest {
    private static final String SHARD1 = "model-00001-of-00002.safetensors";
    private static final String SHARD2 = "model-00002-of-00002.safetensors";

    @TempDir
    Path dir;

    private static TensorView f32(String name, int n) {
        return new TensorView(name, DType.F32, new long[] {n}, MemorySegment.ofArray(new byte[4 * n]));
    }

    @BeforeEach
    void shards() {
        SafetensorsWriter.writeFile(dir.resolve(SHARD1), List.of(f32("a", 2), f32("b", 3)), Map.of());
        SafetensorsWriter.writeFile(dir.resolve(SHARD2), List.of(f32("c", 4)), Map.of());
    }

    private void index(String json) throws IOException {
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), json);
    }

    private String weightMap(String extra) {
        return "\"weight_map\":{\"a\":\"" + SHARD1 + "\",\"b\":\"" + SHARD1 + "\",\"c\":\"" + SHARD2 + "\"" + extra
                + "}";
    }

    private SafetensorsFormatException fails() {
        return assertThrows(
                SafetensorsFormatException.class, () -> Checkpoint.open(dir).close());
    }

    @Test
    void consistentIndexOpens() throws IOException {
        index("{\"metadata\":{\"total_size\":36}," + weightMap("") + "}");
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals(List.of("a", "b", "c"), List.copyOf(c.names()));
            assertEquals(List.of(dir.resolve(SHARD1), dir.resolve(SHARD2)), c.files());
            assertEquals(dir.resolve(SHARD2), c.shardOf("c"));
            assertEquals(36, c.totalBytes());
        }
    }

    @Test
    void totalSizeMismatchNamesTheIndex() throws IOException {
        index("{\"metadata\":{\"total_size\":40}," + weightMap("") + "}");
        SafetensorsFormatException e = fails();
        assertEquals(dir.resolve(Checkpoint.INDEX_FILE), e.file());
        assertTrue(
                e.getMessage().contains("metadata.total_size is 40 but the shards' tensors hold 36 bytes"),
                e.getMessage());
    }

    @Test
    void tensorListedButAbsent() throws IOException {
        index("{" + weightMap(",\"d\":\"" + SHARD2 + "\"") + "}");
        SafetensorsFormatException e = fails();
        assertEquals(dir.resolve(SHARD2), e.file());
        assertTrue(
                e.getMessage().contains("tensor \"d\": listed in model.safetensors.index.json but missing"),
                e.getMessage());
    }

    @Test
    void tensorInShardButNotListed() throws IOException {
        index("{\"weight_map\":{\"a\":\"" + SHARD1 + "\",\"c\":\"" + SHARD2 + "\"}}");
        SafetensorsFormatException e = fails();
        assertTrue(e.getMessage().contains(SHARD1 + ": tensor \"b\": is in the shard but not in"), e.getMessage());
    }

    @Test
    void duplicateAcrossShards() throws IOException {
        SafetensorsWriter.writeFile(dir.resolve(SHARD2), List.of(f32("c", 4), f32("a", 2)), Map.of());
        index("{" + weightMap("") + "}");
        SafetensorsFormatException e = fails();
        assertTrue(
                e.getMessage()
                        .contains(SHARD2 + ": tensor \"a\": is here, but model.safetensors.index.json places it in \""
                                + SHARD1),
                e.getMessage());
    }

    @Test
    void missingShardAndBadIndex() throws IOException {
        index("{\"weight_map\":{\"a\":\"model-00003-of-00003.safetensors\"}}");
        assertTrue(fails().getMessage().contains("lists shard \"model-00003-of-00003.safetensors\", not found"));
        index("{\"weight_map\":{\"a\":\"../escape.safetensors\"}}");
        assertTrue(fails().getMessage().contains("not a file name in the checkpoint directory"));
        index("{\"weight_map\":[]}");
        assertTrue(fails().getMessage().contains("has no \"weight_map\" object"));
        index("{\"weight_map\":");
        assertTrue(fails().getMessage().contains("not a valid JSON object"));
    }

    @Test
    void directoryWithoutWeights() throws IOException {
        Path empty = Files.createDirectory(dir.resolve("empty"));
        InputException e = assertThrows(InputException.class, () -> Checkpoint.open(empty));
        assertEquals(
                empty + ": no model.safetensors.index.json and no model.safetensors"
                        + " (is this a Hugging Face checkpoint directory with safetensors weights?)",
                e.getMessage());
        assertThrows(InputException.class, () -> Checkpoint.open(dir.resolve("absent")));
    }

    @Test
    void singleFilePathAndSingleFileDirectory() {
        try (Checkpoint c = Checkpoint.open(dir.resolve(SHARD1))) {
            assertEquals(List.of("a", "b"), List.copyOf(c.names()));
            assertEquals(20, c.totalBytes());
        }
        Path single = dir.resolve("single");
        SafetensorsWriter.writeFile(
                single.resolve(Checkpoint.SINGLE_FILE), List.of(f32("x", 1)), Map.of("format", "pt"));
        try (Checkpoint c = Checkpoint.open(single)) {
            assertEquals(List.of(single.resolve(Checkpoint.SINGLE_FILE)), c.files());
            assertEquals(Map.of("format", "pt"), c.metadata());
        }
    }
}
