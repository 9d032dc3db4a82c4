package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.kernels.Kernels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The fixture re-sharded through the writer loads through its index and computes the very same logits. */
class ShardedModelTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    @Test
    void shardedCopyGivesIdenticalLogits(@TempDir Path out) throws IOException {
        try (Checkpoint src = Checkpoint.open(FIXTURE)) {
            List<TensorSpec> specs =
                    src.names().stream().map(n -> TensorSpec.of(src.tensor(n))).toList();
            ShardPlan plan = ShardPlan.of(specs, 4L << 20);
            assertTrue(plan.shards().size() >= 3, "a 4 MiB cap should split the 14 MB fixture");
            try (CheckpointWriter w = CheckpointWriter.create(out, plan, CheckpointWriter.PT_METADATA)) {
                for (String n : src.names().stream().sorted().toList()) {
                    w.write(n, src.tensor(n));
                }
                w.finish();
            }
        }
        Files.copy(FIXTURE.resolve("config.json"), out.resolve("config.json"));
        int[] ids = {1158, 258, 1795, 1265, 387, 280, 560, 283, 13, 198};
        try (Qwen2Model a = Qwen2Model.load(FIXTURE, Kernels.byName("vector"));
                Qwen2Model b = Qwen2Model.load(out, Kernels.byName("vector"))) {
            // Same bytes, same kernels, same order of operations: bit-identical.
            assertArrayEquals(a.forward(ids), b.forward(ids));
        }
        assertTrue(Files.exists(out.resolve("model.safetensors.index.json")));
    }
}
