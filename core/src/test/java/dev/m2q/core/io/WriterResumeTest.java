package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A writer left open (as by a killed run) continues through resume; a different plan is refused. */
class WriterResumeTest {
    static final List<TensorSpec> SPECS = List.of(
            new TensorSpec("a", DType.I32, new long[] {4}),
            new TensorSpec("b", DType.I32, new long[] {3}),
            new TensorSpec("c", DType.I32, new long[] {2}));

    @Test
    void resumedWriterCompletesTheSameFileAsAnUninterruptedOne(@TempDir Path tmp) throws IOException {
        ShardPlan plan = ShardPlan.of(SPECS, 20);
        Path whole = tmp.resolve("whole");
        try (CheckpointWriter w = CheckpointWriter.create(whole, plan, CheckpointWriter.PT_METADATA)) {
            write(w, "a", "b", "c");
            w.finish();
        }
        Path cut = tmp.resolve("cut");
        CheckpointWriter first = CheckpointWriter.create(cut, plan, CheckpointWriter.PT_METADATA);
        write(first, "a");
        first.sync();
        first.detach();
        try (CheckpointWriter second = CheckpointWriter.resume(cut, plan, CheckpointWriter.PT_METADATA, Set.of("a"))) {
            assertTrue(second.written("a"));
            write(second, "b", "c");
            second.finish();
        }
        for (ShardPlan.Shard s : plan.shards()) {
            // Integer data and a planned header: the files must be byte-identical.
            assertArrayEquals(
                    Files.readAllBytes(whole.resolve(s.fileName())), Files.readAllBytes(cut.resolve(s.fileName())));
        }
    }

    @Test
    void resumeRefusesAnotherPlanOrMissingTemporaries(@TempDir Path tmp) {
        ShardPlan plan = ShardPlan.single(SPECS);
        CheckpointWriter first = CheckpointWriter.create(tmp, plan, CheckpointWriter.PT_METADATA);
        first.detach();
        ShardPlan other = ShardPlan.single(List.of(new TensorSpec("a", DType.I32, new long[] {5})));
        InputException e = assertThrows(
                InputException.class,
                () -> CheckpointWriter.resume(tmp, other, CheckpointWriter.PT_METADATA, Set.of()));
        assertTrue(e.getMessage().contains("does not match"), e.getMessage());
        assertThrows(
                InputException.class,
                () -> CheckpointWriter.resume(tmp.resolve("none"), plan, CheckpointWriter.PT_METADATA, Set.of()));
        assertThrows(
                InputException.class,
                () -> CheckpointWriter.resume(tmp, plan, CheckpointWriter.PT_METADATA, Set.of("zzz")));
    }

    private static void write(CheckpointWriter w, String... names) {
        for (String n : names) {
            int count = (int) w.plan().specs().get(n).numel();
            int[] v = new int[count];
            for (int i = 0; i < count; i++) {
                v[i] = n.charAt(0) * 100 + i;
            }
            w.writeInts(n, v);
        }
    }
}
