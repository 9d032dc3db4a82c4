package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GptqLayoutCheck;
import dev.m2q.core.quant.GptqPacking;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An 8-bit release through the pipeline (docs/FORMATS-8BIT.md): each layout writes the 8-bit packing and config,
 * reads back through {@link Qwen2Model} as exactly the method's weights, passes the layout check; the W4A16 kernel
 * refuses it naming the bits; a resume with other bits is refused.
 */
class EightBitReleaseTest {
    static final Path FIXTURE = QuantizeJobTest.FIXTURE;
    static final Kernels K = Kernels.byName("vector");

    /** RTN at {@code bits}, recording every linear it returns. */
    static class Rtn8 implements LayerMethod {
        final Bits bits;
        final Map<String, QuantizedLinear> all = new LinkedHashMap<>();
        final int stopAt;

        Rtn8(Bits bits, int stopAt) {
            this.bits = bits;
            this.stopAt = stopAt;
        }

        @Override
        public String name() {
            return "rtn";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            if (ctx.layer() == stopAt) {
                throw new IllegalStateException("interrupted at layer " + stopAt);
            }
            Map<String, QuantizedLinear> q = new LinkedHashMap<>();
            for (String m : ctx.config().arch().linears()) {
                Matrix w = ctx.source().linear(m);
                QuantizedLinear ql = Rtn.quantize(w.toFloatArray(), w.rows(), w.cols(), 128, bits);
                q.put(m, ql);
                all.put(ctx.config().arch().module(ctx.layer(), m), ql);
            }
            return new LayerResult(q, List.of());
        }
    }

    static QuantizeOptions options(Path out, Bits bits, boolean resume) {
        return new QuantizeOptions(
                FIXTURE,
                out,
                128,
                4,
                64,
                1,
                1L << 30,
                4L << 30,
                3,
                false,
                resume,
                Map.of(),
                List.of("test"),
                "test",
                bits);
    }

    /** Every linear of {@code release} read back through the reference forward's reader equals {@code m}'s ŵ. */
    static void readsBackBitExact(Path release, Rtn8 m) {
        try (Qwen2Model q = Qwen2Model.load(release, K)) {
            for (Map.Entry<String, QuantizedLinear> e : m.all.entrySet()) {
                int layer = Integer.parseInt(e.getKey().split("\\.")[2]);
                String rel = e.getKey().substring(("model.layers." + layer + ".").length());
                Matrix read = q.layer(layer).weights().linear(rel);
                assertTrue(read instanceof Matrix.F32, "an 8-bit linear is dequantized to fp32");
                // Bit-exact: s·(q − 128) on the same scale and code (BF16-rounded scales in compressed-tensors are
                // compared against the method's after the same rounding below).
                assertArrayEquals(e.getValue().dequantize(), read.toFloatArray(), e.getKey());
            }
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void gptqAndAutoRoundLayoutsWriteEightBitPackingAndReadBack(@TempDir Path tmp) throws IOException {
        for (GptqRelease format : List.of(GptqRelease.GPTQ, GptqRelease.AUTO_ROUND)) {
            Rtn8 m = new Rtn8(Bits.EIGHT, -1);
            Path out = tmp.resolve(format.id());
            new QuantizeJob(options(out, Bits.EIGHT, false), format, QuantScheme.W4A16, m, K, ProgressListener.NONE)
                    .run(QuantizeJobTest.samples(), Map.of());
            Map<String, Object> qc =
                    (Map<String, Object>) Json.parseObject(Files.readString(out.resolve("config.json")))
                            .get("quantization_config");
            assertEquals(8L, qc.get("bits"), format.id());
            assertEquals(
                    qc,
                    Json.parseObject(
                            Files.readString(out.resolve(format.configFile().orElseThrow()))));
            String p = "model.layers.3.mlp.down_proj";
            QuantizedLinear want = m.all.get(p);
            try (Checkpoint c = Checkpoint.open(out)) {
                TensorView qweight = c.tensor(p + ".qweight");
                assertArrayEquals(new long[] {want.inFeatures() / 4, want.outFeatures()}, qweight.shape());
                assertArrayEquals(
                        GptqPacking.packQweight(want.codes(), want.inFeatures(), want.outFeatures(), Bits.EIGHT),
                        qweight.toIntArray());
                TensorView qzeros = c.tensor(p + ".qzeros");
                assertArrayEquals(new long[] {want.inFeatures() / 128, want.outFeatures() / 4}, qzeros.shape());
                for (int w : qzeros.toIntArray()) {
                    assertEquals(0x7F7F7F7F, w);
                }
            }
            readsBackBitExact(out, m);
            assertEquals(List.of(), GptqLayoutCheck.checkCheckpoint(out, List.of(1, 2)), format.id());
            assertEquals(
                    "W8A16",
                    Json.parseObject(Files.readString(out.resolve("m2q-manifest.json")))
                            .get("scheme"));
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void compressedTensorsWritesNumBitsEightAndReadsBack(@TempDir Path tmp) throws IOException {
        Rtn8 m = new Rtn8(Bits.EIGHT, -1);
        Path out = tmp.resolve("ct");
        QuantScheme kv8 = QuantScheme.of("w4a16", false, null, "fp8", null);
        new QuantizeJob(
                        options(out, Bits.EIGHT, false),
                        CompressedTensorsRelease.NO_ACT_ORDER,
                        kv8,
                        m,
                        K,
                        ProgressListener.NONE)
                .run(QuantizeJobTest.samples(), Map.of());
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        Map<String, Object> weights = (Map<String, Object>)
                ((Map<String, Object>) ((Map<String, Object>) qc.get("config_groups")).get("group_0")).get("weights");
        assertEquals(8L, weights.get("num_bits"));
        assertTrue(qc.get("kv_cache_scheme") instanceof Map, "the FP8 KV cache combines with 8-bit weights");
        String p = "model.layers.5.self_attn.o_proj";
        QuantizedLinear want = m.all.get(p);
        try (Checkpoint c = Checkpoint.open(out)) {
            assertArrayEquals(
                    new long[] {want.outFeatures(), want.inFeatures() / 4},
                    c.tensor(p + ".weight_packed").shape());
            assertTrue(c.contains("model.layers.5.self_attn.k_scale"));
        }
        // The job carries on with the BF16-rounded scales it wrote, so the reader must give exactly those.
        Rtn8 asWritten = new Rtn8(Bits.EIGHT, -1);
        m.all.forEach((k, v) -> asWritten.all.put(k, CompressedTensorsRelease.NO_ACT_ORDER.asWritten(v)));
        readsBackBitExact(out, asWritten);
        assertEquals(List.of(), GptqLayoutCheck.checkCheckpoint(out, List.of(1, 2)));

        // The W4A16 kernel has no 8-bit twin: loading the release packed is refused, naming the bits.
        InputException e =
                assertThrows(InputException.class, () -> Qwen2Model.load(out, K, new Qwen2Model.LoadOptions(true, null))
                        .close());
        assertTrue(e.getMessage().contains("the release is 8-bit"), e.getMessage());
    }

    @Test
    void eightBitActivationsWithEightBitWeightsAreRefused(@TempDir Path tmp) {
        QuantScheme w4a8 = QuantScheme.of("w4a8-fp8", false, null, null, null);
        InputException e = assertThrows(
                InputException.class,
                () -> new QuantizeJob(
                        options(tmp.resolve("x"), Bits.EIGHT, false),
                        CompressedTensorsRelease.NO_ACT_ORDER,
                        w4a8,
                        new Rtn8(Bits.EIGHT, -1),
                        K,
                        ProgressListener.NONE));
        assertTrue(e.getMessage().contains("with --bits 8"), e.getMessage());
    }

    @Test
    void aMethodReturningOtherBitsIsAnInternalError(@TempDir Path tmp) {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> new QuantizeJob(
                        options(tmp.resolve("x"), Bits.EIGHT, false), new Rtn8(Bits.FOUR, -1), K, ProgressListener.NONE)
                .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(e.getMessage().contains("4-bit weights for layer 0"), e.getMessage());
    }

    @Test
    void aResumeWithOtherBitsIsRefused(@TempDir Path tmp) {
        Path out = tmp.resolve("q");
        assertThrows(IllegalStateException.class, () -> new QuantizeJob(
                        options(out, Bits.FOUR, false), new Rtn8(Bits.FOUR, 2), K, ProgressListener.NONE)
                .run(QuantizeJobTest.samples(), Map.of()));
        InputException e = assertThrows(InputException.class, () -> new QuantizeJob(
                        options(out, Bits.EIGHT, true), new Rtn8(Bits.EIGHT, -1), K, ProgressListener.NONE)
                .run(QuantizeJobTest.samples(), Map.of()));
        assertTrue(e.getMessage().contains("other inputs or options"), e.getMessage());
        // The same bits resume.
        assertEquals(
                2,
                new QuantizeJob(options(out, Bits.FOUR, true), new Rtn8(Bits.FOUR, -1), K, ProgressListener.NONE)
                        .run(QuantizeJobTest.samples(), Map.of())
                        .resumedLayers());
    }
}
