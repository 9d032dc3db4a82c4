package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
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
 * The pipeline with a plain RTN method written here: what it writes reads back, through {@link Qwen2Model}, as
 * exactly the weights the method produced; the calibration activations a method sees are the outputs of the
 * already-quantized earlier layers; spilling activations to disk changes no bit.
 */
class QuantizeJobTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    /** RTN that also records, per layer, a checksum of the inputs it was shown. */
    static class RecordingRtn implements LayerMethod {
        final List<Double> inputSums = new ArrayList<>();
        final Map<String, QuantizedLinear> all = new LinkedHashMap<>();

        @Override
        public String name() {
            return "rtn";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            double sum = 0;
            for (int i = 0; i < ctx.samples(); i++) {
                for (float v : ctx.input(i)) {
                    sum += v;
                }
            }
            inputSums.add(sum);
            double[] seen = new double[1];
            ctx.run(ctx.source(), new LayerObserver() {
                @Override
                public void linearInput(String module, float[] x, int rows, int cols) {
                    seen[0] += rows;
                }
            });
            assertEquals(7.0 * ctx.samples() * ctx.seqLen(), seen[0], "every linear sees every calibration token");
            Map<String, QuantizedLinear> q = new LinkedHashMap<>();
            for (String m : ctx.config().arch().linears()) {
                Matrix w = ctx.source().linear(m);
                float[] wf = w.toFloatArray();
                QuantizedLinear ql = Rtn.quantize(wf, w.rows(), w.cols(), 128);
                q.put(m, ql);
                all.put(ctx.config().arch().module(ctx.layer(), m), ql);
            }
            return new LayerResult(q, List.of());
        }
    }

    static QuantizeOptions options(Path out, long maxMemory) {
        return new QuantizeOptions(
                FIXTURE, out, 128, 4, 64, 1, maxMemory, 4L << 30, 3, false, false, Map.of(), List.of("test"), "test");
    }

    static List<int[]> samples() {
        SplittableRandom r = new SplittableRandom(5);
        List<int[]> s = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            s.add(r.ints(64, 0, 2045).toArray());
        }
        return s;
    }

    @Test
    void writtenReleaseReadsBackAsTheMethodsWeights(@TempDir Path tmp) throws IOException {
        RecordingRtn m = new RecordingRtn();
        Path out = tmp.resolve("q");
        new QuantizeJob(options(out, 1L << 30), m, Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of("test", true));
        assertEquals(8, m.inputSums.size());
        try (Qwen2Model q = Qwen2Model.load(out, Kernels.byName("vector"))) {
            for (Map.Entry<String, QuantizedLinear> e : m.all.entrySet()) {
                int layer = Integer.parseInt(e.getKey().split("\\.")[2]);
                String rel = e.getKey().substring(("model.layers." + layer + ".").length());
                Matrix read = q.layer(layer).weights().linear(rel);
                float[] want = e.getValue().dequantize();
                float[] row = new float[read.cols()];
                for (int r = 0; r < read.rows(); r++) {
                    read.row(r, row);
                    for (int c = 0; c < row.length; c++) {
                        // Bit-exact: the engine formula scale·(q − 8) on the same fp16 scale and code.
                        assertEquals(want[r * read.cols() + c], row[c], 0.0, e.getKey());
                    }
                }
            }
        }
        try (Checkpoint c = Checkpoint.open(out)) {
            assertEquals(8 * (7 * 4 + 3 + 2) + 3, c.names().size(), "4 tensors per linear, q/k/v biases, 2 norms");
        }
        assertEquals(
                "deterministic-java",
                Json.parseObject(Files.readString(out.resolve("m2q-manifest.json")))
                        .get("kernels"));
    }

    /** The vector kernels under another backend's name: same bits, but nothing tells a resume so. */
    static Kernels renamed(String name) {
        Kernels vector = Kernels.byName("vector");
        return (Kernels)
                Proxy.newProxyInstance(Kernels.class.getClassLoader(), new Class<?>[] {Kernels.class}, (p, m, a) -> {
                    if (m.getName().equals("name")) {
                        return name;
                    }
                    try {
                        return m.invoke(vector, a);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    /** RTN that stops after {@code layers} layers, leaving an interrupted run behind. */
    static final class Interrupted implements LayerMethod {
        final RecordingRtn rtn = new RecordingRtn();
        final int layers;

        Interrupted(int layers) {
            this.layers = layers;
        }

        @Override
        public String name() {
            return "rtn";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            if (ctx.layer() == layers) {
                throw new IllegalStateException("interrupted at layer " + layers);
            }
            return rtn.quantize(ctx);
        }
    }

    static QuantizeOptions resuming(Path out) {
        return new QuantizeOptions(
                FIXTURE, out, 128, 4, 64, 1, 1L << 30, 4L << 30, 3, false, true, Map.of(), List.of("test"), "test");
    }

    @Test
    void aRunResumesOnEitherJavaKernelButNotOnAnotherBackend(@TempDir Path tmp) throws IOException {
        assertEquals("deterministic-java", QuantizeJob.kernelsFingerprint(Kernels.byName("vector")));
        assertEquals("deterministic-java", QuantizeJob.kernelsFingerprint(Kernels.byName("scalar")));
        assertEquals("cuda", QuantizeJob.kernelsFingerprint(renamed("cuda")));

        Path out = tmp.resolve("q");
        assertThrows(IllegalStateException.class, () -> new QuantizeJob(
                        options(out, 1L << 30), new Interrupted(2), Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of()));
        InputException other = assertThrows(InputException.class, () -> new QuantizeJob(
                        resuming(out), new RecordingRtn(), renamed("cuda"), ProgressListener.NONE)
                .run(samples(), Map.of()));
        assertTrue(other.getMessage().contains("other inputs or options"), other.getMessage());
        QuantizeJob.Summary s = new QuantizeJob(
                        resuming(out), new RecordingRtn(), Kernels.byName("scalar"), ProgressListener.NONE)
                .run(samples(), Map.of());
        assertEquals(2, s.resumedLayers());
        assertEquals(
                "deterministic-java",
                Json.parseObject(Files.readString(out.resolve("m2q-manifest.json")))
                        .get("kernels"));

        Path device = tmp.resolve("device");
        new QuantizeJob(options(device, 1L << 30), new RecordingRtn(), renamed("cuda"), ProgressListener.NONE)
                .run(samples(), Map.of());
        assertEquals(
                "cuda",
                Json.parseObject(Files.readString(device.resolve("m2q-manifest.json")))
                        .get("kernels"));
    }

    @Test
    void aResumeWithOtherMethodSettingsIsRefused(@TempDir Path tmp) {
        // --clip-search (a method setting, not a shared option) changes the results: a run interrupted without it
        // must not be continued with it.
        Path out = tmp.resolve("q");
        assertThrows(IllegalStateException.class, () -> new QuantizeJob(
                        options(out, 1L << 30), new Interrupted(2), Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of()));
        LayerMethod clipped = new RecordingRtn() {
            @Override
            public Map<String, Object> settings() {
                return Map.of("clip_search", true);
            }
        };
        InputException e = assertThrows(InputException.class, () -> new QuantizeJob(
                        resuming(out), clipped, Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of()));
        assertTrue(e.getMessage().contains("other inputs or options"), e.getMessage());
        assertEquals(
                2,
                new QuantizeJob(resuming(out), new RecordingRtn(), Kernels.byName("vector"), ProgressListener.NONE)
                        .run(samples(), Map.of())
                        .resumedLayers());
    }

    @Test
    void aResumeAfterTheConfigChangedIsRefused(@TempDir Path tmp) throws IOException {
        // The weights alone do not fix the computation (rope_theta, rms_norm_eps, ... live in config.json): the
        // manifest and the resume fingerprint hash config.json beside the weight files.
        Path model = tmp.resolve("model");
        Files.createDirectories(model);
        try (var files = Files.list(FIXTURE)) {
            for (Path f : files.toList()) {
                if (Files.isRegularFile(f)) {
                    Files.copy(f, model.resolve(f.getFileName()));
                }
            }
        }
        Path out = tmp.resolve("q");
        QuantizeOptions fresh = new QuantizeOptions(
                model, out, 128, 4, 64, 1, 1L << 30, 4L << 30, 3, false, false, Map.of(), List.of("test"), "test");
        QuantizeOptions resume = new QuantizeOptions(
                model, out, 128, 4, 64, 1, 1L << 30, 4L << 30, 3, false, true, Map.of(), List.of("test"), "test");
        assertThrows(IllegalStateException.class, () -> new QuantizeJob(
                        fresh, new Interrupted(2), Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of()));
        Path config = model.resolve("config.json");
        String original = Files.readString(config);
        Files.writeString(config, original.replace("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e-05"));
        InputException e = assertThrows(InputException.class, () -> new QuantizeJob(
                        resume, new RecordingRtn(), Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of()));
        assertTrue(e.getMessage().contains("other inputs or options"), e.getMessage());

        Files.writeString(config, original);
        new QuantizeJob(resume, new RecordingRtn(), Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of());
        Object inputs = Json.parseObject(Files.readString(out.resolve("m2q-manifest.json")))
                .get("input");
        assertTrue(inputs.toString().contains("config.json"), inputs.toString());
    }

    /** RTN that asks for the BF16 stream and records, per layer, the targets it was handed. */
    static final class ReferenceRecorder extends RecordingRtn {
        final List<float[][]> targets = new ArrayList<>();

        @Override
        public boolean needsReferenceStream() {
            return true;
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            ActivationStore y = ctx.referenceTargets();
            float[][] t = new float[y.samples()][];
            for (int i = 0; i < t.length; i++) {
                t[i] = y.get(i).clone();
            }
            targets.add(t);
            return super.quantize(ctx);
        }
    }

    @Test
    void theBf16StreamIsTheModelsOwnHiddenStateAndSpillingItChangesNothing(@TempDir Path tmp) throws IOException {
        ReferenceRecorder inMemory = new ReferenceRecorder();
        new QuantizeJob(options(tmp.resolve("a"), 1L << 30), inMemory, Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of());
        ReferenceRecorder spilled = new ReferenceRecorder();
        new QuantizeJob(options(tmp.resolve("b"), 1L << 16), spilled, Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of());
        assertEquals(8, inMemory.targets.size());
        for (int l = 0; l < 8; l++) {
            for (int s = 0; s < samples().size(); s++) {
                assertArrayEquals(inMemory.targets.get(l)[s], spilled.targets.get(l)[s], "layer " + l + " sample " + s);
            }
        }
        // Layer ℓ's target is the BF16 model's residual stream entering layer ℓ + 1, computed by the model itself
        // (same layer code and kernels, one sequence at a time instead of the pipeline's batches: same bits).
        try (Qwen2Model model = Qwen2Model.load(FIXTURE, Kernels.byName("vector"))) {
            for (int s = 0; s < samples().size(); s++) {
                int[] ids = samples().get(s);
                float[][] taps =
                        model.forwardTapped(ids, null, new int[] {1, 4, 7}).taps();
                assertArrayEquals(taps[0], inMemory.targets.get(0)[s], "sample " + s + " after layer 0");
                assertArrayEquals(taps[1], inMemory.targets.get(3)[s], "sample " + s + " after layer 3");
                assertArrayEquals(taps[2], inMemory.targets.get(6)[s], "sample " + s + " after layer 6");
            }
        }
        // The quantized stream is untouched by the second one: the same inputs as a one-stream run.
        RecordingRtn one = new RecordingRtn();
        new QuantizeJob(options(tmp.resolve("c"), 1L << 30), one, Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of());
        assertEquals(one.inputSums, inMemory.inputSums);
        assertArrayEquals(
                Files.readAllBytes(tmp.resolve("c").resolve("model.safetensors")),
                Files.readAllBytes(tmp.resolve("a").resolve("model.safetensors")));
    }

    @Test
    void layersCalibrateOnQuantizedPredecessorsAndSpillingChangesNothing(@TempDir Path tmp) throws IOException {
        RecordingRtn heap = new RecordingRtn();
        RecordingRtn spill = new RecordingRtn();
        Path a = tmp.resolve("heap");
        Path b = tmp.resolve("spill");
        new QuantizeJob(options(a, 1L << 30), heap, Kernels.byName("vector"), ProgressListener.NONE)
                .run(samples(), Map.of());
        new QuantizeJob(options(b, 0), spill, Kernels.byName("vector"), ProgressListener.NONE).run(samples(), Map.of());
        assertEquals(heap.inputSums, spill.inputSums);
        assertArrayEquals(
                Files.readAllBytes(a.resolve("model.safetensors")), Files.readAllBytes(b.resolve("model.safetensors")));

        // Layer 1's inputs are layer 0's outputs with layer 0 quantized, not the bf16 model's hidden states:
        // recomputed here both ways, one sequence at a time (row results do not depend on the batch), the sum
        // must equal the quantized one bit for bit and differ from the bf16 one.
        try (Qwen2Model bf16 = Qwen2Model.load(FIXTURE, Kernels.byName("vector"))) {
            var w = bf16.layer(0).weights();
            for (String m : bf16.config().arch().linears()) {
                QuantizedLinear q = heap.all.get("model.layers.0." + m);
                w = w.with(m, new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
            }
            var quantized = bf16.layer(0).withWeights(w);
            double sumBf16 = 0;
            double sumQuant = 0;
            for (int[] s : samples()) {
                for (float v : bf16.layer(0).forward(bf16.embed(s), 1, s.length, LayerObserver.NONE)) {
                    sumBf16 += v;
                }
                for (float v : quantized.forward(bf16.embed(s), 1, s.length, LayerObserver.NONE)) {
                    sumQuant += v;
                }
            }
            assertEquals(sumQuant, heap.inputSums.get(1), 0.0);
            assertTrue(sumBf16 != sumQuant, "quantizing layer 0 must change layer 1's inputs");
        }
    }
}
