package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.tensor.Bf16;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q quantize --format compressed-tensors} with the 8-bit options, end to end on the fixture: bad
 * combinations exit 2 naming the fix; the GPTQ layout with an FP8 KV cache warns; the compressed-tensors export is
 * the GPTQ export of the same weights, transposed (RTN, whose codes do not depend on the calibration pass, so two
 * runs compare), passes {@code inspect --check} and validates with its 8-bit parts simulated.
 */
class QuantizeSchemesTest {
    static final Path FIXTURE = CliTest.FIXTURE;

    static String[] args(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of(
                "quantize",
                "--model",
                FIXTURE.toString(),
                "--out",
                out.toString(),
                "--method",
                "rtn",
                "--nsamples",
                "4",
                "--seqlen",
                "64"));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void badCombinationsAreRefusedBeforeAnyWork(@TempDir Path tmp) {
        Path out = tmp.resolve("x");
        CliTest.assertBadInput(CliTest.run(args(out, "--act-static")), "--act-static needs 8-bit activations");
        CliTest.assertBadInput(
                CliTest.run(args(out, "--kv-granularity", "head")), "--kv-granularity applies to a quantized KV cache");
        CliTest.assertBadInput(
                CliTest.run(args(out, "--scheme", "w4a8-fp8")), "--scheme w4a8-fp8 needs --format compressed-tensors");
        CliTest.assertBadInput(
                CliTest.run(args(out, "--format", "compressed-tensors", "--scheme", "w4a8-int8", "--act-clip", "99.9")),
                "it needs --scheme w4a8-fp8 or w4a8-int8 with --act-static");
        CliTest.assertBadInput(
                CliTest.run(args(out, "--format", "awq")),
                "--format awq is not a format m2q writes (available: gptq, auto_round, compressed-tensors)");
        CliTest.assertBadInput(CliTest.run(args(out, "--scheme", "w4a4")), "--scheme w4a4 is not a scheme");
        CliTest.assertBadInput(CliTest.run(args(out, "--kv-cache", "int8")), "--kv-cache int8 is not available");
        assertFalse(Files.exists(out));
        assertFalse(Files.exists(tmp.resolve("x.m2q-partial")));
    }

    @Test
    @SuppressWarnings("unchecked")
    void theCompressedTensorsExportIsTheGptqExportTransposedAndValidates(@TempDir Path tmp) throws IOException {
        Path gptq = tmp.resolve("gptq");
        CliTest.Run g = CliTest.run(args(gptq, "--kv-cache", "fp8"));
        assertEquals(0, g.code(), g.err());
        assertTrue(
                g.err()
                        .contains(
                                "warning: --kv-cache fp8 with --format gptq: vLLM and SGLang ignore KV-cache scales in"
                                        + " GPTQ checkpoints"),
                g.err());
        assertTrue(g.err().contains("--format compressed-tensors"), g.err());

        Path ct = tmp.resolve("ct");
        CliTest.Run c = CliTest.run(args(
                ct, "--format", "compressed-tensors", "--scheme", "w4a8-fp8", "--act-static", "--kv-cache", "fp8"));
        assertEquals(0, c.code(), c.err());
        assertTrue(c.err().contains("W4A8-FP8 static + KV8 as compressed-tensors"), c.err());
        assertTrue(c.err().contains("consumed by vLLM's W8A8 kernels"), c.err());

        ModelConfig cfg = ModelConfig.load(FIXTURE);
        try (Checkpoint a = Checkpoint.open(gptq);
                Checkpoint b = Checkpoint.open(ct)) {
            for (Map.Entry<String, long[]> e : GptqFormat.quantizedLinears(cfg).entrySet()) {
                String p = e.getKey();
                int n = (int) e.getValue()[0];
                int k = (int) e.getValue()[1];
                TensorView qweight = a.tensor(p + ".qweight");
                TensorView packed = b.tensor(p + ".weight_packed");
                TensorView scales = a.tensor(p + ".scales");
                TensorView scale = b.tensor(p + ".weight_scale");
                for (int r = 0; r < k / 8; r++) {
                    for (int col = 0; col < n; col++) {
                        assertEquals(qweight.getInt((long) r * n + col), packed.getInt((long) col * (k / 8) + r), p);
                    }
                }
                int groups = k / 128;
                for (int gi = 0; gi < groups; gi++) {
                    for (int col = 0; col < n; col++) {
                        float want = Bf16.toFloat(Bf16.fromFloat(scales.getFloat((long) gi * n + col)));
                        assertEquals(want, scale.getFloat((long) col * groups + gi), 0f, p);
                    }
                }
            }
            assertTrue(b.contains("model.layers.7.self_attn.k_scale"));
            assertFalse(a.contains("model.layers.7.self_attn.k_scale"), "GPTQ releases carry no KV scales");
        }

        CliTest.Run check = CliTest.run("inspect", "--check", ct.toString(), "--tp", "1,2");
        assertEquals(0, check.code(), check.out() + check.err());
        CliTest.Run listing = CliTest.run("inspect", ct.toString());
        assertEquals(0, listing.code(), listing.err());
        assertTrue(listing.out().contains("model.layers.0.self_attn.k_scale"), listing.out());

        CliTest.Run v = CliTest.run(
                "validate",
                "--reference",
                FIXTURE.toString(),
                "--candidate",
                ct.toString(),
                "--text",
                FIXTURE.resolve("heldout.txt").toString(),
                "--max-tokens",
                "256",
                "--decode-tokens",
                "0",
                "--report-dir",
                tmp.resolve("report").toString(),
                "--json");
        assertEquals(0, v.code(), v.err());
        Map<String, Object> j = Json.parseObject(v.out());
        assertEquals("W4A8-FP8 static + KV8", j.get("scheme"));
        List<Object> sims = (List<Object>) ((Map<String, Object>) j.get("accuracy")).get("simulated_8bit");
        assertEquals(4, sims.size());
        assertTrue(
                Files.readString(tmp.resolve("report").resolve("validation.md")).contains("extra KL over W4A16"));
    }
}
