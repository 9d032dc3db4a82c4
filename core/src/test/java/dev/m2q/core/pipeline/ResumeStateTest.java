package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** progress.json keeps the keys and order it has always had, and reads back only under the same fingerprint. */
class ResumeStateTest {
    static ResumeState.Fingerprint fingerprint(long seed) {
        return new ResumeState.Fingerprint(
                100,
                2,
                Map.of("sha256", "ab"),
                "gptq",
                128,
                Map.of("model.safetensors", "cd"),
                "deterministic-java",
                "compressed-tensors",
                4L << 30,
                "rtn",
                Map.of(),
                4,
                Map.of("desc_act", false),
                "W4A16",
                seed,
                64);
    }

    @Test
    void savedStateHasTheProgressFileKeysAndReadsBack(@TempDir Path tmp) throws IOException {
        Path file = tmp.resolve(ResumeState.FILE);
        ResumeState s = ResumeState.fresh(fingerprint(1)).withBase();
        s.save(file);
        Map<String, Object> j = Json.parseObject(Files.readString(file));
        assertEquals(List.of("fingerprint", "base_written", "layers_done", "report"), List.copyOf(j.keySet()));
        assertEquals(
                List.of(
                        "act_clip",
                        "batch_sequences",
                        "calibration",
                        "format",
                        "group_size",
                        "input_sha256",
                        "kernels",
                        "layout",
                        "max_shard_bytes",
                        "method",
                        "method_settings",
                        "nsamples",
                        "quantization_config",
                        "scheme",
                        "seed",
                        "seqlen"),
                List.copyOf(((Map<?, ?>) j.get("fingerprint")).keySet()));
        ResumeState back = ResumeState.load(file, fingerprint(1));
        assertTrue(back.baseWritten());
        assertEquals(0, back.layersDone());
        assertEquals(List.of(), back.report());
        String msg = assertThrows(InputException.class, () -> ResumeState.load(file, fingerprint(2)))
                .getMessage();
        assertTrue(msg.contains("other inputs or options"), msg);
    }
}
