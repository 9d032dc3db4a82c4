package dev.m2q.eagle.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Kernels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** eagle data's output: a run that fails after it started leaves the previous file as it was and nothing beside. */
class DataGenerationOutputTest {
    static final Path FIXTURE =
            Path.of("..", "fixtures", "tiny-qwen2").toAbsolutePath().normalize();

    @Test
    void aFailedRunKeepsThePreviousFileAndLeavesNothing(@TempDir Path tmp) throws IOException {
        // A target whose tokenizer and config read fine but whose weights are cut short: the failure comes once
        // the staged output is open, when the model is loaded.
        Path target = Files.createDirectories(tmp.resolve("target"));
        try (Stream<Path> s = Files.list(FIXTURE)) {
            for (Path f : s.toList()) {
                Files.copy(f, target.resolve(f.getFileName()));
            }
        }
        byte[] weights = Files.readAllBytes(target.resolve("model.safetensors"));
        Files.write(target.resolve("model.safetensors"), java.util.Arrays.copyOf(weights, weights.length / 2));
        Path prompts = Files.writeString(tmp.resolve("p.txt"), "In the beginning\n");
        Path out = Files.writeString(tmp.resolve("d.jsonl"), "the previous data");

        DataGeneration job = new DataGeneration(target, prompts, out, 4, 0, 0, true);
        InputException e = assertThrows(InputException.class, () -> job.run(Kernels.byName("vector"), line -> {}));
        assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
        assertEquals("the previous data", Files.readString(out));
        try (Stream<Path> s = Files.list(tmp)) {
            assertEquals(
                    List.of("d.jsonl", "p.txt", "target"),
                    s.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }
}
