package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.GptqRelease;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.pipeline.ReleaseFormat;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
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
 * AutoRound through the layer pipeline on the bundled fixture (8 layers, hidden 256): iteration 0 is RTN with
 * AutoRound's scale rule bit for bit; tuning lowers the block loss on every layer; the release, in either format,
 * reads back to exactly the tuned weights.
 */
class AutoRoundMethodTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");
    static final Kernels KERNELS = Kernels.byName("vector");
    static final int G = 128;
    static final int NSAMPLES = 8;
    static final int SEQLEN = 32;

    /** Passes through to AutoRound and keeps what it returned, by full module name. */
    static final class Recording implements LayerMethod {
        final AutoRoundMethod method;
        final Map<String, QuantizedLinear> linears = new LinkedHashMap<>();

        Recording(AutoRoundOptions o) {
            this(o, AutoRoundMethod.Target.DEFAULT);
        }

        Recording(AutoRoundOptions o, AutoRoundMethod.Target target) {
            this.method = new AutoRoundMethod(o, target);
        }

        @Override
        public String name() {
            return method.name();
        }

        @Override
        public boolean needsReferenceStream() {
            return method.needsReferenceStream();
        }

        @Override
        public Map<String, Object> settings() {
            return method.settings();
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            LayerResult r = method.quantize(ctx);
            r.linears().forEach((m, q) -> linears.put(ctx.config().arch().module(ctx.layer(), m), q));
            return r;
        }
    }

    /** Returns the linears another run produced, layer by layer: the same weights exported again. */
    record Replay(Map<String, QuantizedLinear> linears) implements LayerMethod {
        @Override
        public String name() {
            return "autoround";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            Map<String, QuantizedLinear> layer = new LinkedHashMap<>();
            for (String m : ctx.config().arch().linears()) {
                layer.put(m, linears.get(ctx.config().arch().module(ctx.layer(), m)));
            }
            return new LayerResult(layer, List.of());
        }
    }

    /** Calibration windows of the fixture's token ids (any ids work; seeded). */
    static List<int[]> samples() {
        SplittableRandom r = new SplittableRandom(3);
        List<int[]> s = new ArrayList<>();
        for (int i = 0; i < NSAMPLES; i++) {
            s.add(r.ints(SEQLEN, 0, 2045).toArray());
        }
        return s;
    }

    static QuantizeJob.Summary run(Path out, LayerMethod m, AutoRoundOptions o, ReleaseFormat format) {
        return run(out, m, o, format, false);
    }

    static QuantizeJob.Summary run(Path out, LayerMethod m, AutoRoundOptions o, ReleaseFormat format, boolean resume) {
        QuantizeOptions opts = new QuantizeOptions(
                FIXTURE,
                out,
                G,
                NSAMPLES,
                SEQLEN,
                o.seed(),
                1L << 30,
                4L << 30,
                4,
                false,
                resume,
                o.configKeys(NSAMPLES, SEQLEN),
                List.of("test"),
                "test");
        return new QuantizeJob(opts, format, QuantScheme.W4A16, m, KERNELS, ProgressListener.NONE)
                .run(samples(), Map.of("test", true));
    }

    /** Every quantized linear of a release, read back through core's reader (PackedLinears). */
    static Map<String, QuantizedLinear> readBack(Path release) {
        ModelConfig cfg = ModelConfig.load(release);
        Map<String, QuantizedLinear> out = new LinkedHashMap<>();
        try (Checkpoint c = Checkpoint.open(release)) {
            GptqFormat.quantizedLinears(cfg)
                    .forEach((prefix, nk) -> out.put(
                            prefix,
                            GptqRelease.GPTQ.read(
                                    c::tensor, c::contains, prefix, (int) nk[0], (int) nk[1], G, Bits.FOUR)));
        }
        return out;
    }

    /**
     * RTN with AutoRound's full-range scale rule, written here from ALGORITHMS.md §3 without the fake quantizer:
     * per group, lo = min(w, 0), hi = max(w, 0); s = −lo/8 when −lo > hi, else −hi/8 (so the larger extreme lands
     * on −8), rounded to fp16, at least 2⁻¹⁷ (fp16 of AutoRound's 1e−5) in magnitude; code = clamp(rint(w/s), −8, 7)
     * + 8 with w/s in fp32.
     */
    static QuantizedLinear autoRoundRtn(float[] w, int n, int k) {
        int groups = k / G;
        int[] codes = new int[k * n];
        float[] scales = new float[groups * n];
        float floor = Float.float16ToFloat(Float.floatToFloat16(1e-5f));
        for (int r = 0; r < n; r++) {
            for (int g = 0; g < groups; g++) {
                float lo = 0;
                float hi = 0;
                for (int c = g * G; c < (g + 1) * G; c++) {
                    lo = Math.min(lo, w[r * k + c]);
                    hi = Math.max(hi, w[r * k + c]);
                }
                float s = Float.float16ToFloat(Float.floatToFloat16(-lo > hi ? -lo / 8 : -hi / 8));
                if (Math.abs(s) < floor) {
                    s = s < 0 ? -floor : floor;
                }
                scales[g * n + r] = s;
                for (int c = g * G; c < (g + 1) * G; c++) {
                    codes[c * n + r] = (int) Math.clamp(Math.rint(w[r * k + c] / s), -8, 7) + 8;
                }
            }
        }
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = c / G;
        }
        return new QuantizedLinear(n, k, G, codes, scales, gIdx);
    }

    /** AutoRound that stops before layer {@code stop}, leaving an interrupted run behind. */
    static final class Interrupted implements LayerMethod {
        final Recording inner;
        final int stop;

        Interrupted(Recording inner, int stop) {
            this.inner = inner;
            this.stop = stop;
        }

        @Override
        public String name() {
            return inner.name();
        }

        @Override
        public boolean needsReferenceStream() {
            return inner.needsReferenceStream();
        }

        @Override
        public Map<String, Object> settings() {
            return inner.settings();
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            if (ctx.layer() == stop) {
                throw new IllegalStateException("interrupted at layer " + stop);
            }
            return inner.quantize(ctx);
        }
    }

    @Test
    void theTwoTargetsAgreeOnLayerZeroOnlyAndAResumedBf16StreamRunIsIdentical(@TempDir Path tmp) throws IOException {
        // Layer 0's quantized and BF16 inputs are the same embeddings, so both targets are the same Y there; from
        // layer 1 on the BF16 stream's target also carries the error the quantized layers before left.
        AutoRoundOptions o = AutoRoundOptions.resolve(Recipe.DEFAULT, 6, null, null, 4, G, 5);
        Recording bf16 = new Recording(o, AutoRoundMethod.Target.BF16_STREAM);
        Recording same = new Recording(o, AutoRoundMethod.Target.SAME_INPUT);
        run(tmp.resolve("bf16"), bf16, o, GptqRelease.AUTO_ROUND);
        run(tmp.resolve("same"), same, o, GptqRelease.AUTO_ROUND);
        int differing = 0;
        for (Map.Entry<String, QuantizedLinear> e : bf16.linears.entrySet()) {
            QuantizedLinear other = same.linears.get(e.getKey());
            boolean equal = java.util.Arrays.equals(e.getValue().codes(), other.codes())
                    && java.util.Arrays.equals(e.getValue().scales(), other.scales());
            if (e.getKey().contains(".layers.0.")) {
                assertTrue(equal, e.getKey() + " differs on layer 0");
            } else if (!equal) {
                differing++;
            }
        }
        // 35 of 49 measured; a layer whose best batch is step 0 keeps iteration 0's codes under either target.
        assertTrue(differing >= 20, differing + " of the 49 later linears differ");

        // Interrupted before layer 3, then resumed: the BF16 stream is recomputed through the replayed layers.
        Path cut = tmp.resolve("cut");
        Interrupted stop = new Interrupted(new Recording(o, AutoRoundMethod.Target.BF16_STREAM), 3);
        org.junit.jupiter.api.Assertions.assertThrows(
                IllegalStateException.class, () -> run(cut, stop, o, GptqRelease.AUTO_ROUND));
        QuantizeJob.Summary s =
                run(cut, new Recording(o, AutoRoundMethod.Target.BF16_STREAM), o, GptqRelease.AUTO_ROUND, true);
        assertEquals(3, s.resumedLayers());
        assertArrayEquals(
                Files.readAllBytes(tmp.resolve("bf16").resolve("model.safetensors")),
                Files.readAllBytes(cut.resolve("model.safetensors")));
        // A resume that names the other target is refused: its results would differ.
        Path cut2 = tmp.resolve("cut2");
        org.junit.jupiter.api.Assertions.assertThrows(
                IllegalStateException.class,
                () -> run(
                        cut2,
                        new Interrupted(new Recording(o, AutoRoundMethod.Target.BF16_STREAM), 2),
                        o,
                        GptqRelease.AUTO_ROUND));
        dev.m2q.core.InputException refused = org.junit.jupiter.api.Assertions.assertThrows(
                dev.m2q.core.InputException.class,
                () -> run(cut2, new Recording(o, AutoRoundMethod.Target.SAME_INPUT), o, GptqRelease.AUTO_ROUND, true));
        assertTrue(refused.getMessage().contains("other inputs or options"), refused.getMessage());
    }

    @Test
    void itersZeroReleaseIsRtnWithAutoRoundsScaleRuleBitForBit(@TempDir Path tmp) {
        AutoRoundOptions o = AutoRoundOptions.resolve(Recipe.DEFAULT, 0, null, null, 4, G, 1);
        Path out = tmp.resolve("rtn");
        run(out, new AutoRoundMethod(o), o, GptqRelease.AUTO_ROUND);
        Map<String, QuantizedLinear> got = readBack(out);
        int negative = 0;
        try (Qwen2Model bf16 = Qwen2Model.load(FIXTURE, KERNELS)) {
            ModelConfig cfg = bf16.config();
            for (int l = 0; l < cfg.numLayers(); l++) {
                for (String m : cfg.arch().linears()) {
                    Matrix w = bf16.layer(l).weights().linear(m);
                    QuantizedLinear want = autoRoundRtn(w.toFloatArray(), w.rows(), w.cols());
                    QuantizedLinear q = got.get(cfg.arch().module(l, m));
                    String what = cfg.arch().module(l, m);
                    assertArrayEquals(want.codes(), q.codes(), what + " codes");
                    assertArrayEquals(want.scales(), q.scales(), what + " scales");
                    for (float s : q.scales()) {
                        negative += s < 0 ? 1 : 0;
                    }
                }
            }
        }
        // The sign rule is exercised: the positive side dominates in a good share of the fixture's groups.
        assertTrue(negative > 1000, negative + " negative scales");
    }

    @Test
    @SuppressWarnings("unchecked")
    void tuningLowersEveryLayersBlockLossAndBothFormatsReadBackToTheTunedWeights(@TempDir Path tmp) throws IOException {
        // 16 steps of 4 of the 8 sequences, lr 1/16: the tuned loss is 29–47% below iteration 0's on every layer
        // (measured). Deterministic, but with so short a schedule sensitive to the settings: 12 steps leave two
        // layers where step 0's batch stays the best (ratio 1), and batches of 2 let a lucky batch pick parameters
        // worse than iteration 0 on all the data (ratio 1.09): AutoRound's best-of-noisy-batch-losses rule.
        AutoRoundOptions o = AutoRoundOptions.resolve(Recipe.DEFAULT, 16, null, null, 4, G, 5);
        Recording auto = new Recording(o);
        Path ar = tmp.resolve("ar");
        run(ar, auto, o, GptqRelease.AUTO_ROUND);

        // The method's rows, one per linear; the job adds one KV-range row per layer (module "…self_attn").
        List<String> all = Files.readAllLines(ar.resolve("m2q-report.jsonl"));
        assertEquals(64, all.size(), "7 linears and 1 KV-range row per layer");
        List<String> rows = all.stream()
                .filter(l -> Json.parseObject(l).containsKey("loss_iter0"))
                .toList();
        assertEquals(56, rows.size(), "one row per linear");
        for (String line : rows) {
            Map<String, Object> row = Json.parseObject(line);
            double before = ((Number) row.get("loss_iter0")).doubleValue();
            double after = ((Number) row.get("loss")).doubleValue();
            // The claim AutoRound exists for, on the same data and the same forward as the release: strictly lower.
            assertTrue(after < before, "layer " + row.get("layer") + ": tuned " + after + " vs iteration 0 " + before);
            assertTrue(((Number) row.get("codes_changed")).doubleValue() > 0, line);
            assertEquals("autoround", row.get("method"));
        }

        // Same tuned weights under the GPTQ label: identical tensors, bit for bit, and both read back to them.
        Recording gptq = new Recording(o);
        Path gp = tmp.resolve("gptq");
        run(gp, gptq, o, GptqRelease.GPTQ);
        assertArrayEquals(
                Files.readAllBytes(ar.resolve("model.safetensors")),
                Files.readAllBytes(gp.resolve("model.safetensors")));
        for (Path release : List.of(ar, gp)) {
            Map<String, QuantizedLinear> back = readBack(release);
            assertEquals(auto.linears.keySet(), back.keySet());
            auto.linears.forEach((name, q) -> {
                assertArrayEquals(q.codes(), back.get(name).codes(), name);
                assertArrayEquals(q.scales(), back.get(name).scales(), name);
                assertArrayEquals(q.dequantize(), back.get(name).dequantize(), name);
            });
        }

        Map<String, Object> arConfig = (Map<String, Object>)
                Json.parseObject(Files.readString(ar.resolve("config.json"))).get("quantization_config");
        assertEquals("auto-round", arConfig.get("quant_method"));
        assertEquals("auto_round:auto_gptq", arConfig.get("packing_format"));
        assertEquals(16L, arConfig.get("iters"));
        assertEquals(arConfig, Json.parseObject(Files.readString(ar.resolve("quantization_config.json"))));
        Map<String, Object> gpConfig = (Map<String, Object>)
                Json.parseObject(Files.readString(gp.resolve("config.json"))).get("quantization_config");
        assertEquals("gptq", gpConfig.get("quant_method"));
        assertEquals(false, gpConfig.get("desc_act"));
        assertEquals(gpConfig, Json.parseObject(Files.readString(gp.resolve("quantize_config.json"))));
    }
}
