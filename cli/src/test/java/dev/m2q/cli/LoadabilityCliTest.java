package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.pipeline.CompressedTensorsRelease;
import dev.m2q.core.pipeline.GptqRelease;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.CompressedTensorsFormat;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the loadability check and quantize's options say about the engines: per-row groups (--group-size -1) end
 * to end, the Marlin group-size warning, the tp values that would load, options of another method refused, and
 * --seqlen against max_position_embeddings.
 */
class LoadabilityCliTest {
    static final Path FIXTURE = CliTest.FIXTURE;

    static String[] quantize(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of(
                "quantize", "--model", FIXTURE.toString(), "--out", out.toString(), "--nsamples", "2", "--seed", "3"));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    /**
     * --group-size -1 with RTN: the release passes inspect --check, records group_size -1, and every linear read
     * back through the GPTQ reader is RTN with G = K of the source weight, codes, scales and g_idx bit for bit. The
     * default --seqlen (2048) is capped to the fixture's max_position_embeddings, 1024, with a note.
     */
    @Test
    @SuppressWarnings("unchecked")
    void perRowRtnReleaseIsRtnWithGroupSizeKAndLoads(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("rtn-1");
        CliTest.Run q = CliTest.run(quantize(out, "--method", "rtn", "--group-size", "-1"));
        assertEquals(0, q.code(), q.err());
        assertTrue(
                q.err().contains("note: calibrating at --seqlen 1024, the model's max_position_embeddings"), q.err());
        assertTrue(q.err().contains("rtn W4 per-row (g -1) sym"), q.err());
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        assertEquals(-1L, qc.get("group_size"));
        assertEquals(false, qc.get("desc_act"));
        assertFalse(qc.containsKey("damp_percent"), "RTN has no damping to record: " + qc);
        assertEquals(qc, Json.parseObject(Files.readString(out.resolve("quantize_config.json"))));
        Map<String, Object> manifest = Json.parseObject(Files.readString(out.resolve("m2q-manifest.json")));
        assertTrue(Json.write(manifest).contains("\"seqlen\":1024"), Json.write(manifest));

        CliTest.Run check = CliTest.run("inspect", "--check", out.toString(), "--tp", "1,2");
        assertEquals(0, check.code(), check.out() + check.err());
        assertTrue(check.out().contains("loadable at --tp [1, 2]"), check.out());
        assertFalse(check.out().contains("warning"), check.out());

        assertEveryLinearIsRtnPerRow(out, false);
    }

    /** The same through compressed-tensors: the "channel" strategy, weight_scale [N, 1], read back bit for bit. */
    @Test
    @SuppressWarnings("unchecked")
    void perRowCompressedTensorsUsesTheChannelStrategyAndLoads(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("ct-1");
        CliTest.Run q = CliTest.run(quantize(
                out, "--seqlen", "64", "--method", "rtn", "--group-size", "-1", "--format", "compressed-tensors"));
        assertEquals(0, q.code(), q.err());
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        Map<String, Object> weights = (Map<String, Object>)
                ((Map<String, Object>) ((Map<String, Object>) qc.get("config_groups")).get("group_0")).get("weights");
        assertEquals("channel", weights.get("strategy"));
        assertFalse(weights.containsKey("group_size"), weights.toString());
        assertEquals(-1, ModelConfig.load(out).quantization().groupSize());
        CliTest.Run check = CliTest.run("inspect", "--check", out.toString(), "--tp", "1,2");
        assertEquals(0, check.code(), check.out() + check.err());
        assertEveryLinearIsRtnPerRow(out, true);
    }

    /** Every quantized linear of {@code release}, read back with group size -1, is RTN of the source with G = K. */
    private static void assertEveryLinearIsRtnPerRow(Path release, boolean compressed) {
        ModelConfig cfg = ModelConfig.load(FIXTURE);
        try (Checkpoint src = Checkpoint.open(FIXTURE);
                Checkpoint rel = Checkpoint.open(release)) {
            for (Map.Entry<String, long[]> e : GptqFormat.quantizedLinears(cfg).entrySet()) {
                String prefix = e.getKey();
                int n = (int) e.getValue()[0];
                int k = (int) e.getValue()[1];
                TensorView w = src.tensor(prefix + ".weight");
                float[] wf = new float[n * k];
                for (int i = 0; i < wf.length; i++) {
                    wf[i] = w.getFloat(i); // BF16 → fp32, exact
                }
                QuantizedLinear want = Rtn.quantize(wf, n, k, k);
                QuantizedLinear got;
                if (compressed) {
                    want = CompressedTensorsFormat.asWritten(want);
                    got = CompressedTensorsRelease.NO_ACT_ORDER.read(
                            rel::tensor, rel::contains, prefix, n, k, -1, Bits.FOUR);
                } else {
                    got = GptqRelease.GPTQ.read(rel::tensor, name -> true, prefix, n, k, -1, Bits.FOUR);
                }
                assertEquals(k, got.groupSize(), prefix);
                assertArrayEquals(want.codes(), got.codes(), prefix + " codes");
                assertArrayEquals(want.scales(), got.scales(), prefix + " scales");
                assertArrayEquals(new int[k], got.gIdx(), prefix + " g_idx");
            }
        }
    }

    /** A group size Marlin lacks is a warning on quantize and on inspect --check; the release still loads. */
    @Test
    void nonMarlinGroupSizeIsAWarningNotARefusal(@TempDir Path tmp) {
        Path out = tmp.resolve("g256");
        CliTest.Run q = CliTest.run(quantize(out, "--seqlen", "64", "--method", "rtn", "--group-size", "256"));
        assertEquals(0, q.code(), q.err());
        String warning = "warning: group size 256 is not one of vLLM's Marlin group sizes (-1, 32, 64, 128)";
        assertTrue(q.err().contains(warning), q.err());
        CliTest.Run check = CliTest.run("inspect", "--check", out.toString());
        assertEquals(0, check.code(), check.out());
        assertTrue(check.out().contains(warning), check.out());
        assertTrue(check.out().contains("loadable at --tp [1]"), check.out());
        // At tp 2 neither row-parallel K splits into whole groups of 256: o_proj's 256/2 = 128 (each rank would
        // hold no row of scales) and down_proj's 768/2 = 384. The summary says where it does load.
        CliTest.Run tp2 = CliTest.run("inspect", "--check", out.toString(), "--tp", "2");
        assertEquals(1, tp2.code(), tp2.out());
        assertTrue(tp2.out().contains("K/tp = 256/2 = 128 is not divisible by group size 256 at --tp 2"), tp2.out());
        assertTrue(tp2.out().contains("K/tp = 768/2 = 384 is not divisible by group size 256 at --tp 2"), tp2.out());
        assertTrue(tp2.out().contains("2 violation(s) at --tp [2]; it loads at --tp 1"), tp2.out());
    }

    /** A tp that cannot load is refused before any work, in one message that ends with the tp values that would. */
    @Test
    void unloadableTpIsRefusedWithTheTpValuesThatLoad(@TempDir Path tmp) {
        CliTest.Run r = CliTest.run(quantize(tmp.resolve("x"), "--tp", "1,4"));
        CliTest.assertBadInput(r, "could not load at --tp [1, 4]");
        // 4 heads split 4 ways and the 2 KV heads are replicated, but o_proj's K/tp = 256/4 = 64 is not a whole
        // group of 128.
        assertTrue(r.err().contains("self_attn.o_proj: K/tp = 256/4 = 64 is not divisible by group size 128"), r.err());
        assertTrue(r.err().strip().endsWith("with --group-size 128 it loads at --tp 1, 2"), r.err());
        CliTest.Run heads = CliTest.run(quantize(tmp.resolve("x"), "--tp", "3"));
        CliTest.assertBadInput(heads, "num_attention_heads = 4 is not divisible by 3 at --tp 3");
        assertFalse(Files.exists(tmp.resolve("x.m2q-partial")));
    }

    /** GPTQ-only options with RTN or AutoRound, and AutoRound-only ones with GPTQ or RTN: exit 2 naming the option. */
    @Test
    void optionsOfAnotherMethodAreRefused(@TempDir Path tmp) {
        Path out = tmp.resolve("x");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "rtn", "--damp", "0.1", "--act-order")),
                "--damp applies to --method gptq only; it would be ignored with --method rtn");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "rtn", "--act-order")), "--act-order applies to --method gptq");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "rtn", "--no-static-groups")), "--no-static-groups applies");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "rtn", "--iters", "3")),
                "--iters applies to --method autoround only; it would be ignored with --method rtn");
        CliTest.assertBadInput(CliTest.run(quantize(out, "--lr=0.1")), "--lr applies to --method autoround only");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "autoround", "--block-size", "64")),
                "--block-size applies to --method gptq only; it would be ignored with --method autoround");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "autoround", "--clip-search")),
                "--clip-search applies to --method gptq and rtn only; it would be ignored with --method autoround");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "gptq", "--autoround-target", "same-input")),
                "--autoround-target applies to --method autoround only");
        CliTest.assertBadInput(
                CliTest.run(quantize(out, "--method", "autoround", "--autoround-target", "bf16")),
                "--autoround-target bf16: must be bf16-stream (the default) or same-input");
        assertFalse(Files.exists(out) || Files.exists(tmp.resolve("x.m2q-partial")));
    }

    @Test
    void groupSizesOtherThanMinusOneOrAtLeast8AreRefused(@TempDir Path tmp) {
        for (String g : List.of("0", "-2", "4")) {
            CliTest.assertBadInput(
                    CliTest.run(quantize(tmp.resolve("x"), "--group-size", g)),
                    "--group-size " + g + ": must be -1 (one group per row) or at least 8");
        }
    }

    @Test
    void seqlenAboveMaxPositionsIsCappedByDefaultAndWarnedWhenExplicit() {
        List<String> notes = new ArrayList<>();
        assertEquals(1024, QuantizeCommand.capSeqlen(2048, false, 1024, notes));
        assertEquals(
                List.of("note: calibrating at --seqlen 1024, the model's max_position_embeddings (the default 2048 is"
                        + " longer than any position the model was trained on)"),
                notes);
        notes.clear();
        assertEquals(4096, QuantizeCommand.capSeqlen(4096, true, 1024, notes));
        assertEquals(
                List.of("warning: --seqlen 4096 is above the model's max_position_embeddings 1024: calibration runs"
                        + " at positions the model never saw; pass --seqlen 1024 or less unless that is what you"
                        + " want"),
                notes);
        notes.clear();
        assertEquals(1024, QuantizeCommand.capSeqlen(1024, true, 1024, notes));
        assertEquals(512, QuantizeCommand.capSeqlen(512, false, 1024, notes));
        assertEquals(List.of(), notes);
    }
}
