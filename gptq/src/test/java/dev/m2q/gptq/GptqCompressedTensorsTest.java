package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.pipeline.CompressedTensorsRelease;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.GptqLayoutCheck;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.tensor.Bf16;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A GPTQ run of the fixture written as compressed-tensors decodes to exactly what GPTQ produced in that run:
 * weight_packed transposed is the GPTQ qweight of the same linears, bit for bit, and its nibbles are the codes;
 * weight_scale is each F16 scale rounded to BF16, transposed; weight_shape is [N, K]; with dynamic act-order groups
 * weight_g_idx is GPTQ's g_idx.
 */
class GptqCompressedTensorsTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    /** GPTQ, keeping what it returned for every linear of every layer. */
    static final class Recording implements LayerMethod {
        final GptqMethod gptq;
        final Map<String, QuantizedLinear> all = new LinkedHashMap<>();

        Recording(GptqOptions o) {
            this.gptq = new GptqMethod(o, true);
        }

        @Override
        public String name() {
            return "gptq";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            LayerResult r = gptq.quantize(ctx);
            r.linears().forEach((rel, q) -> all.put(ctx.config().arch().module(ctx.layer(), rel), q));
            return r;
        }
    }

    static List<int[]> samples() {
        SplittableRandom r = new SplittableRandom(9);
        List<int[]> s = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            s.add(r.ints(64, 0, 2045).toArray());
        }
        return s;
    }

    static Recording run(Path out, GptqOptions o, Map<String, Object> qc, QuantScheme scheme) {
        Recording m = new Recording(o);
        QuantizeOptions opts = new QuantizeOptions(
                FIXTURE, out, o.groupSize(), 4, 64, 1, 1L << 30, 4L << 30, 2, false, false, qc, List.of("t"), "t");
        new QuantizeJob(
                        opts,
                        CompressedTensorsRelease.NO_ACT_ORDER.withActOrder(CompressedTensorsRelease.ActOrder.of(
                                Boolean.TRUE.equals(qc.get("desc_act")), Boolean.TRUE.equals(qc.get("static_groups")))),
                        scheme,
                        m,
                        Kernels.byName("vector"),
                        ProgressListener.NONE)
                .run(samples(), Map.of());
        return m;
    }

    static void assertDecodesToTheRun(Path out, Recording m, boolean gIdx) {
        try (Checkpoint ck = Checkpoint.open(out)) {
            assertEquals(56, m.all.size());
            for (Map.Entry<String, QuantizedLinear> e : m.all.entrySet()) {
                String p = e.getKey();
                QuantizedLinear q = e.getValue();
                int n = q.outFeatures();
                int k = q.inFeatures();
                int groups = k / q.groupSize();
                int[] qweight = GptqFormat.pack(p, q).qweight(); // [K/8, N], the GPTQ layout of this linear
                TensorView packed = ck.tensor(p + ".weight_packed").requireShape(n, k / 8);
                for (int c = 0; c < n; c++) {
                    for (int r = 0; r < k / 8; r++) {
                        int word = packed.getInt((long) c * (k / 8) + r);
                        assertEquals(qweight[r * n + c], word, p + " weight_packed[" + c + ", " + r + "]");
                        for (int j = 0; j < 8; j++) {
                            assertEquals(q.codes()[(8 * r + j) * n + c], (word >>> (4 * j)) & 0xF, p + " nibble");
                        }
                    }
                }
                TensorView scale = ck.tensor(p + ".weight_scale").requireShape(n, groups);
                for (int c = 0; c < n; c++) {
                    for (int g = 0; g < groups; g++) {
                        float want = Bf16.toFloat(Bf16.fromFloat(q.scales()[g * n + c]));
                        assertEquals(want, scale.getFloat((long) c * groups + g), 0f, p + " weight_scale");
                    }
                }
                TensorView shape = ck.tensor(p + ".weight_shape");
                assertEquals(n, shape.getLong(0));
                assertEquals(k, shape.getLong(1));
                assertEquals(gIdx, ck.contains(p + ".weight_g_idx"), p);
                if (gIdx) {
                    assertTrue(
                            java.util.Arrays.equals(
                                    q.gIdx(), ck.tensor(p + ".weight_g_idx").toIntArray()),
                            p);
                }
            }
        }
        assertEquals(List.of(), GptqLayoutCheck.checkCheckpoint(out, List.of(1, 2)));
    }

    @Test
    void weightPackedTransposedIsTheGptqQweightOfTheSameRun(@TempDir Path tmp) {
        Path out = tmp.resolve("ct");
        Recording m = run(out, GptqOptions.DEFAULTS, Map.of(), QuantScheme.of("w4a8-fp8", true, null, "fp8", null));
        assertDecodesToTheRun(out, m, false);
    }

    @Test
    @SuppressWarnings("unchecked")
    void dynamicActOrderGroupsStoreTheirGIdx(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("ct");
        GptqOptions o = new GptqOptions(4, 128, true, 0.01, 128, true, false, 0);
        Recording m = run(out, o, Map.of("desc_act", true, "static_groups", false), QuantScheme.W4A16);
        assertTrue(
                m.all.values().stream().anyMatch(q -> {
                    for (int i = 0; i < q.inFeatures(); i++) {
                        if (q.gIdx()[i] != i / q.groupSize()) {
                            return true;
                        }
                    }
                    return false;
                }),
                "dynamic groups reorder some g_idx");
        assertDecodesToTheRun(out, m, true);
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        Map<String, Object> weights = (Map<String, Object>)
                ((Map<String, Object>) ((Map<String, Object>) qc.get("config_groups")).get("group_0")).get("weights");
        assertEquals("group", weights.get("actorder"));
    }
}
