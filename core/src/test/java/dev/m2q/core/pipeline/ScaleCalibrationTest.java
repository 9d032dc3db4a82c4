package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.GptqLayoutCheck;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.tensor.Bf16;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The 8-bit scales of a compressed-tensors release of the fixture against an independent recomputation written
 * here: the calibration set run layer by layer, one sequence at a time, through the release's own (dequantized)
 * weights, with the absolute maxima taken by plain loops. Scales are compared bit for bit: both sides divide the
 * same float amax by 448 or 127 once (the test in double, then rounded: the same float).
 */
class ScaleCalibrationTest {
    static final Path FIXTURE = QuantizeJobTest.FIXTURE;
    static final Kernels VECTOR = Kernels.byName("vector");

    static QuantizeJob.Summary run(Path out, QuantScheme scheme, LayerMethod m) {
        return new QuantizeJob(
                        QuantizeJobTest.options(out, 1L << 30),
                        CompressedTensorsRelease.NO_ACT_ORDER,
                        scheme,
                        m,
                        VECTOR,
                        ProgressListener.NONE)
                .run(QuantizeJobTest.samples(), Map.of());
    }

    /** Absmax per linear input (by lead module), per key and value channel, and every |x| of every input. */
    static final class Ranges {
        final Map<String, float[]> channels = new LinkedHashMap<>();
        float[] keys;
        float[] values;
        final Map<String, List<Float>> all = new HashMap<>();
    }

    /** The recomputation: per layer, the ranges the layer's quantized weights produce over the calibration set. */
    static List<Ranges> recompute(Map<String, QuantizedLinear> written) {
        List<Ranges> out = new ArrayList<>();
        try (Qwen2Model bf16 = Qwen2Model.load(FIXTURE, VECTOR)) {
            ModelConfig cfg = bf16.config();
            List<float[]> xs = new ArrayList<>();
            for (int[] s : QuantizeJobTest.samples()) {
                xs.add(bf16.embed(s));
            }
            for (int l = 0; l < cfg.numLayers(); l++) {
                DecoderLayer.Weights w = bf16.layer(l).weights();
                for (String m : cfg.arch().linears()) {
                    QuantizedLinear q = written.get(cfg.arch().module(l, m));
                    w = w.with(m, new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
                }
                DecoderLayer layer = bf16.layer(l).withWeights(w);
                Ranges r = new Ranges();
                r.keys = new float[cfg.kvDim()];
                r.values = new float[cfg.kvDim()];
                LayerObserver plain = new LayerObserver() {
                    @Override
                    public void linearInput(String module, float[] x, int rows, int cols) {
                        float[] c = r.channels.computeIfAbsent(module, k -> new float[cols]);
                        List<Float> a = r.all.computeIfAbsent(module, k -> new ArrayList<>());
                        for (int i = 0; i < rows * cols; i++) {
                            c[i % cols] = Math.max(c[i % cols], Math.abs(x[i]));
                            a.add(Math.abs(x[i]));
                        }
                    }

                    @Override
                    public void keysValues(float[] k, float[] v, int rows, int kvDim) {
                        for (int i = 0; i < rows * kvDim; i++) {
                            r.keys[i % kvDim] = Math.max(r.keys[i % kvDim], Math.abs(k[i]));
                            r.values[i % kvDim] = Math.max(r.values[i % kvDim], Math.abs(v[i]));
                        }
                    }
                };
                List<float[]> next = new ArrayList<>();
                for (float[] x : xs) {
                    next.add(layer.forward(x, 1, x.length / cfg.hiddenSize(), plain));
                }
                xs = next;
                out.add(r);
            }
        }
        return out;
    }

    static float max(float[] v) {
        float m = 0;
        for (float x : v) {
            m = Math.max(m, x);
        }
        return m;
    }

    static float headMax(float[] channels, int head, int headDim) {
        return max(Arrays.copyOfRange(channels, head * headDim, (head + 1) * headDim));
    }

    /** The method's weights as the release stores them: scales rounded to BF16 here, codes unchanged. */
    static Map<String, QuantizedLinear> bf16Scales(Map<String, QuantizedLinear> method) {
        Map<String, QuantizedLinear> out = new LinkedHashMap<>();
        method.forEach((p, q) -> {
            float[] s = q.scales().clone();
            for (int i = 0; i < s.length; i++) {
                s[i] = Bf16.toFloat(Bf16.fromFloat(s[i]));
            }
            out.put(p, new QuantizedLinear(q.outFeatures(), q.inFeatures(), q.groupSize(), q.codes(), s, q.gIdx()));
        });
        return out;
    }

    static List<Map<String, Object>> report(Path out) throws IOException {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("m2q-report.jsonl"))) {
            rows.add(Json.parseObject(line));
        }
        return rows;
    }

    @Test
    @SuppressWarnings("unchecked")
    void staticFp8AndKvScalesAreAmaxOver448OfTheReleasedModel(@TempDir Path tmp) throws IOException {
        QuantizeJobTest.RecordingRtn m = new QuantizeJobTest.RecordingRtn();
        Path out = tmp.resolve("ct");
        run(out, QuantScheme.of("w4a8-fp8", true, null, "fp8", null), m);
        Map<String, QuantizedLinear> written = bf16Scales(m.all);
        List<Ranges> want = recompute(written);

        List<Map<String, Object>> rows = report(out);
        try (Checkpoint ck = Checkpoint.open(out);
                Qwen2Model q = Qwen2Model.load(out, VECTOR)) {
            ModelConfig cfg = q.config();
            for (int l = 0; l < cfg.numLayers(); l++) {
                Ranges r = want.get(l);
                for (List<String> group : cfg.arch().sequentialGroups()) {
                    float amax = max(r.channels.get(group.getFirst()));
                    for (String rel : group) {
                        String prefix = cfg.arch().module(l, rel);
                        TensorView s = ck.tensor(prefix + ".input_scale");
                        assertArrayEquals(new long[] {1}, s.shape());
                        assertEquals((float) (amax / 448.0), s.getFloat(0), 0f, prefix);
                        Map<String, Object> row = rows.stream()
                                .filter(x -> prefix.equals(x.get("module")))
                                .findFirst()
                                .orElseThrow();
                        assertEquals(amax, ((Number) row.get("act_amax")).floatValue(), 0f, prefix);
                        assertEquals(0.0, row.get("act_saturation"), prefix + ": nothing beyond amax");
                        List<Object> channels = (List<Object>) row.get("act_amax_channels");
                        float[] wantChannels = r.channels.get(group.getFirst());
                        for (int c = 0; c < wantChannels.length; c++) {
                            assertEquals(
                                    wantChannels[c], ((Number) channels.get(c)).floatValue(), 0f, prefix + " " + c);
                        }
                    }
                }
                String attn = cfg.arch().module(l, "self_attn");
                assertEquals(
                        (float) (max(r.keys) / 448.0),
                        ck.tensor(attn + ".k_scale").getFloat(0),
                        0f,
                        attn);
                assertEquals(
                        (float) (max(r.values) / 448.0),
                        ck.tensor(attn + ".v_scale").getFloat(0),
                        0f,
                        attn);
                Map<String, Object> kv = rows.stream()
                        .filter(x -> attn.equals(x.get("module")))
                        .findFirst()
                        .orElseThrow();
                List<Object> kHeads = (List<Object>) kv.get("k_amax_heads");
                for (int h = 0; h < cfg.numKvHeads(); h++) {
                    assertEquals(headMax(r.keys, h, cfg.headDim()), ((Number) kHeads.get(h)).floatValue(), 0f);
                }
            }
            // The weights read back through the reference forward's reader are the method's codes with the BF16
            // scales, bit for bit (the engine formula scale·(q − 8) on the same numbers).
            for (Map.Entry<String, QuantizedLinear> e : written.entrySet()) {
                int layer = Integer.parseInt(e.getKey().split("\\.")[2]);
                Matrix read =
                        q.layer(layer).weights().linear(e.getKey().substring(("model.layers." + layer + ".").length()));
                assertArrayEquals(e.getValue().dequantize(), read.toFloatArray(), 0f, e.getKey());
            }
        }
        assertEquals(List.of(), GptqLayoutCheck.checkCheckpoint(out, List.of(1, 2)));
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        assertEquals(Json.parseObject("""
                        {"quant_method": "compressed-tensors", "format": "pack-quantized",
                         "quantization_status": "compressed",
                         "config_groups": {"group_0": {"targets": ["Linear"],
                            "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group",
                                        "group_size": 128, "dynamic": false, "actorder": null},
                            "input_activations": {"num_bits": 8, "type": "float", "strategy": "tensor",
                                                  "dynamic": false, "symmetric": true},
                            "output_activations": null}},
                         "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": false,
                                             "symmetric": true},
                         "ignore": ["lm_head"]}"""), qc);
        assertFalse(Files.exists(out.resolve("quantize_config.json")), "a GPTQ-only file");
        Map<String, Object> manifest = Json.parseObject(Files.readString(out.resolve("m2q-manifest.json")));
        assertEquals("compressed-tensors", manifest.get("format"));
        assertEquals("W4A8-FP8 static + KV8", manifest.get("scheme"));
    }

    @Test
    @SuppressWarnings("unchecked")
    void perHeadKvScalesAndClippedStaticInt8Scales(@TempDir Path tmp) throws IOException {
        QuantizeJobTest.RecordingRtn m = new QuantizeJobTest.RecordingRtn();
        Path out = tmp.resolve("ct");
        run(out, QuantScheme.of("w4a8-int8", true, 99.0, "fp8", "head"), m);
        List<Ranges> want = recompute(bf16Scales(m.all));
        List<Map<String, Object>> rows = report(out);
        try (Checkpoint ck = Checkpoint.open(out)) {
            ModelConfig cfg = ModelConfig.load(out);
            for (int l = 0; l < cfg.numLayers(); l++) {
                Ranges r = want.get(l);
                String attn = cfg.arch().module(l, "self_attn");
                TensorView k = ck.tensor(attn + ".k_scale");
                TensorView v = ck.tensor(attn + ".v_scale");
                assertArrayEquals(new long[] {cfg.numKvHeads(), 1, 1}, k.shape());
                for (int h = 0; h < cfg.numKvHeads(); h++) {
                    assertEquals((float) (headMax(r.keys, h, cfg.headDim()) / 448.0), k.getFloat(h), 0f);
                    assertEquals((float) (headMax(r.values, h, cfg.headDim()) / 448.0), v.getFloat(h), 0f);
                }
                for (String lead : List.of("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj")) {
                    String prefix = cfg.arch().module(l, lead);
                    Map<String, Object> row = rows.stream()
                            .filter(x -> prefix.equals(x.get("module")))
                            .findFirst()
                            .orElseThrow();
                    float clip = ((Number) row.get("act_clip_amax")).floatValue();
                    float[] abs = new float[r.all.get(lead).size()];
                    for (int i = 0; i < abs.length; i++) {
                        abs[i] = r.all.get(lead).get(i);
                    }
                    Arrays.sort(abs);
                    float exact = abs[(int) Math.ceil(0.99 * abs.length) - 1];
                    // The clip is the top of the histogram bin holding the 99th percentile: ≥ it, ≤ 0.1% above.
                    assertTrue(clip >= exact && clip <= exact * (1 + 0x1p-10) + Math.ulp(exact), prefix + " " + clip);
                    long above = 0;
                    for (float a : abs) {
                        if (a > clip) {
                            above++;
                        }
                    }
                    assertEquals((double) above / abs.length, (Double) row.get("act_saturation"), 0.0, prefix);
                    assertTrue(above > 0, prefix + ": a 99% clip cuts something");
                    assertEquals(
                            (float) (clip / 127.0),
                            ck.tensor(prefix + ".input_scale").getFloat(0),
                            0f,
                            prefix);
                }
            }
        }
        assertEquals(List.of(), GptqLayoutCheck.checkCheckpoint(out, List.of(1)));
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        assertEquals("attn_head", ((Map<String, Object>) qc.get("kv_cache_scheme")).get("strategy"));
    }

    @Test
    void theWeightsDoNotDependOnTheScheme(@TempDir Path tmp) throws IOException {
        Path a = tmp.resolve("w4a16");
        Path b = tmp.resolve("w4a8");
        run(a, QuantScheme.W4A16, new QuantizeJobTest.RecordingRtn());
        run(b, QuantScheme.of("w4a8-fp8", false, null, "fp8", null), new QuantizeJobTest.RecordingRtn());
        try (Checkpoint ca = Checkpoint.open(a);
                Checkpoint cb = Checkpoint.open(b)) {
            int compared = 0;
            for (String name : ca.names()) {
                assertTrue(cb.contains(name), name);
                assertArrayEquals(
                        ca.tensor(name).data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                        cb.tensor(name).data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                        name);
                compared++;
            }
            assertEquals(8 * (7 * 3 + 3 + 2) + 3, compared, "3 tensors per linear, q/k/v biases, 2 norms");
            assertEquals(compared + 8 * 2, cb.names().size(), "plus k_scale and v_scale per layer, no input_scale");
            assertFalse(ca.names().stream().anyMatch(n -> n.endsWith("_scale") && !n.endsWith("weight_scale")));
        }
        assertEquals(List.of(), GptqLayoutCheck.checkCheckpoint(a, List.of(1)));
    }

    @Test
    void aResumedRunWritesTheSameRelease(@TempDir Path tmp) throws IOException {
        QuantScheme scheme = QuantScheme.of("w4a8-int8", true, 99.9, "fp8", "head");
        Path whole = tmp.resolve("whole");
        run(whole, scheme, new QuantizeJobTest.RecordingRtn());
        Path out = tmp.resolve("resumed");
        assertThrows(IllegalStateException.class, () -> run(out, scheme, new QuantizeJobTest.Interrupted(3)));
        new QuantizeJob(
                        QuantizeJobTest.resuming(out),
                        CompressedTensorsRelease.NO_ACT_ORDER,
                        scheme,
                        new QuantizeJobTest.RecordingRtn(),
                        VECTOR,
                        ProgressListener.NONE)
                .run(QuantizeJobTest.samples(), Map.of());
        assertArrayEquals(
                Files.readAllBytes(whole.resolve("model.safetensors")),
                Files.readAllBytes(out.resolve("model.safetensors")));
        assertEquals(
                Files.readString(whole.resolve("m2q-report.jsonl")), Files.readString(out.resolve("m2q-report.jsonl")));
    }

    @Test
    @SuppressWarnings("unchecked")
    void theGptqLayoutRefusesActivationSchemesAndKeepsKvScalesInTheReport(@TempDir Path tmp) throws IOException {
        InputException e = assertThrows(
                InputException.class,
                () -> new QuantizeJob(
                        QuantizeJobTest.options(tmp.resolve("x"), 1L << 30),
                        GptqRelease.GPTQ,
                        QuantScheme.of("w4a8-fp8", false, null, null, null),
                        new QuantizeJobTest.RecordingRtn(),
                        VECTOR,
                        ProgressListener.NONE));
        assertTrue(e.getMessage().contains("--format compressed-tensors"), e.getMessage());

        List<String> log = new ArrayList<>();
        Path out = tmp.resolve("gptq");
        new QuantizeJob(
                        QuantizeJobTest.options(out, 1L << 30),
                        GptqRelease.GPTQ,
                        QuantScheme.of("w4a16", false, null, "fp8", null),
                        new QuantizeJobTest.RecordingRtn(),
                        VECTOR,
                        new ProgressListener() {
                            @Override
                            public void info(String line) {
                                log.add(line);
                            }
                        })
                .run(QuantizeJobTest.samples(), Map.of());
        assertTrue(
                log.stream()
                        .anyMatch(
                                l -> l.contains("ignore KV-cache scales in GPTQ") && l.contains("compressed-tensors")),
                log.toString());
        try (Checkpoint ck = Checkpoint.open(out)) {
            assertFalse(ck.names().stream().anyMatch(n -> n.endsWith("k_scale")));
        }
        List<Map<String, Object>> kvRows = report(out).stream()
                .filter(r -> "kv_cache".equals(r.get("kind")))
                .toList();
        assertEquals(8, kvRows.size());
        for (Map<String, Object> r : kvRows) {
            float kAmax = ((Number) r.get("k_amax")).floatValue();
            assertEquals((float) (kAmax / 448.0), ((Number) ((List<Object>) r.get("k_scale")).get(0)).floatValue(), 0f);
        }
        assertEquals(List.of(), GptqLayoutCheck.checkCheckpoint(out, List.of(1)));
        Map<String, Object> qc = (Map<String, Object>)
                Json.parseObject(Files.readString(out.resolve("config.json"))).get("quantization_config");
        assertEquals("gptq", qc.get("quant_method"));
        assertNull(qc.get("kv_cache_scheme"));
    }

    /** Rewrites the release's quantization_config with {@code edit} applied. */
    @SuppressWarnings("unchecked")
    static void editConfig(Path dir, java.util.function.Consumer<Map<String, Object>> edit) throws IOException {
        Map<String, Object> config = Json.parseObject(Files.readString(dir.resolve("config.json")));
        edit.accept((Map<String, Object>) config.get("quantization_config"));
        Files.writeString(dir.resolve("config.json"), Json.writePretty(config));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> group(Map<String, Object> qc) {
        return (Map<String, Object>) ((Map<String, Object>) qc.get("config_groups")).get("group_0");
    }

    static String rules(Path dir) {
        return GptqLayoutCheck.checkCheckpoint(dir, List.of(1)).toString();
    }

    @Test
    void theCheckerNamesMissingAndMisshapedScales(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("ct");
        run(out, QuantScheme.of("w4a16", false, null, "fp8", null), new QuantizeJobTest.RecordingRtn());
        assertEquals("[]", rules(out));

        editConfig(out, qc -> ((Map<String, Object>) qc.get("kv_cache_scheme")).put("strategy", "attn_head"));
        assertTrue(
                rules(out)
                        .contains("model.layers.0.self_attn.k_scale: dtype F32, shape [1]; kv_cache_scheme"
                                + " strategy \"attn_head\" needs F32 [2, 1, 1]"),
                rules(out));

        editConfig(out, qc -> {
            ((Map<String, Object>) qc.get("kv_cache_scheme")).put("strategy", "tensor");
            group(qc).put("input_activations", Json.parseObject("""
                    {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": false, "symmetric": true}"""));
        });
        assertTrue(
                rules(out)
                        .contains("model.layers.0.self_attn.q_proj.input_scale: missing; static input"
                                + " activations needs it"),
                rules(out));
        InputException e = assertThrows(
                InputException.class,
                () -> dev.m2q.core.quant.ActivationSimulation.read(
                        out, ModelConfig.load(out), dev.m2q.core.quant.CompressedTensorsFormat.scheme((Map<?, ?>)
                                Json.parseObject(Files.readString(out.resolve("config.json")))
                                        .get("quantization_config"))));
        assertTrue(e.getMessage().contains("input_scale: missing"), e.getMessage());

        editConfig(out, qc -> group(qc).put("input_activations", Json.parseObject("""
                {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": false, "symmetric": true}""")));
        assertTrue(rules(out).contains("input_activations.dynamic is false; expected true"), rules(out));

        Path plain = tmp.resolve("plain");
        run(plain, QuantScheme.W4A16, new QuantizeJobTest.RecordingRtn());
        editConfig(plain, qc -> qc.put("kv_cache_scheme", Json.parseObject("""
                {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": false, "symmetric": true}""")));
        assertTrue(
                rules(plain)
                        .contains("model.layers.0.self_attn.k_scale: missing; kv_cache_scheme strategy"
                                + " \"tensor\" needs it (an engine would fall back to 1.0) (and 7 more like it)"),
                rules(plain));
    }
}
