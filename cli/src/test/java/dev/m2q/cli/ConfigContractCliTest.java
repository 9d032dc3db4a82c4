package dev.m2q.cli;

import static dev.m2q.cli.CliTest.FIXTURE;
import static dev.m2q.cli.CliTest.assertBadInput;
import static dev.m2q.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Configs through the commands: a Llama-3.1-style rope_scaling is inspected, and a layer count or activation the
 * weights or the forward cannot back is exit 2 naming the key, before a partial output exists.
 */
class ConfigContractCliTest {

    static Path fixtureWith(Path tmp, String name, Consumer<Map<String, Object>> edit) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Map<String, Object> cfg = Json.parseObject(Files.readString(FIXTURE.resolve("config.json")));
        edit.accept(cfg);
        Files.writeString(dir.resolve("config.json"), Json.writePretty(cfg));
        for (String f : new String[] {"model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
            Files.createSymbolicLink(dir.resolve(f), FIXTURE.resolve(f));
        }
        return dir;
    }

    @Test
    void inspectReadsALlama3RopeScaling(@TempDir Path tmp) throws IOException {
        Map<String, Object> llama3 = new LinkedHashMap<>();
        llama3.put("rope_type", "llama3");
        llama3.put("factor", 8.0);
        llama3.put("low_freq_factor", 1.0);
        llama3.put("high_freq_factor", 4.0);
        llama3.put("original_max_position_embeddings", 8192L);
        Path dir = fixtureWith(tmp, "llama3", c -> c.put("rope_scaling", llama3));
        CliTest.Run r = run("inspect", dir.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("lm_head.weight"), r.out());
    }

    @Test
    void layerCountsAndActivationsTheWeightsCannotBackAreExitTwo(@TempDir Path tmp) throws IOException {
        Path huge = fixtureWith(tmp, "huge", c -> c.put("num_hidden_layers", 2147483647L));
        assertBadInput(run("inspect", huge.toString()), "num_hidden_layers is 2147483647 but the weights hold 8");
        Path out = tmp.resolve("q");
        assertBadInput(
                run(
                        "quantize",
                        "--model",
                        huge.toString(),
                        "--out",
                        out.toString(),
                        "--calib",
                        FIXTURE.resolve("calibration.txt").toString(),
                        "--nsamples",
                        "4",
                        "--seqlen",
                        "64"),
                "num_hidden_layers");
        assertFalse(Files.exists(out), "no output");
        assertFalse(Files.exists(tmp.resolve("q.m2q-partial")), "no partial output");
        Path fewer = fixtureWith(tmp, "fewer", c -> c.put("num_hidden_layers", 4L));
        assertBadInput(
                run(
                        "validate",
                        "--model",
                        fewer.toString(),
                        "--text",
                        FIXTURE.resolve("heldout.txt").toString()),
                "set num_hidden_layers to 8");
        Path gelu = fixtureWith(tmp, "gelu", c -> c.put("hidden_act", "gelu"));
        assertBadInput(run("inspect", gelu.toString()), "hidden_act is \"gelu\"");
    }
}
