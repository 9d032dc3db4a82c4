package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Validator} on a real m2q release of the fixture (written here by the core pipeline with a plain RTN
 * method, so this module needs no quantizer), and on copies of it damaged in the ways the issue names: one
 * corrupted nibble, v2 zeros under the "gptq" label, a missing scale, a manifest hash mismatch.
 */
class ValidatorTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");
    static final Kernels K = Kernels.byName("vector");

    @TempDir
    static Path tmp;

    static Path release;
    static int[] ids;

    /** Plain RTN per linear, the same rule as {@link RtnBaseline}. */
    static final class PlainRtn implements LayerMethod {
        @Override
        public String name() {
            return "rtn";
        }

        @Override
        public LayerResult quantize(LayerContext ctx) {
            Map<String, QuantizedLinear> q = new LinkedHashMap<>();
            for (String m : ctx.config().arch().linears()) {
                Matrix w = ctx.source().linear(m);
                float[] wf = w.toFloatArray();
                q.put(m, Rtn.quantize(wf, w.rows(), w.cols(), 128));
            }
            return new LayerResult(q, List.of());
        }
    }

    @BeforeAll
    static void writeRelease() throws IOException {
        release = tmp.resolve("rtn-release");
        QuantizeOptions o = new QuantizeOptions(
                FIXTURE, release, 128, 2, 32, 1, 1L << 30, 4L << 30, 2, false, false, Map.of(), List.of("t"), "test");
        SplittableRandom r = new SplittableRandom(3);
        List<int[]> samples =
                List.of(r.ints(32, 0, 2045).toArray(), r.ints(32, 0, 2045).toArray());
        new QuantizeJob(o, new PlainRtn(), K, ProgressListener.NONE).run(samples, Map.of());
        ids = Arrays.copyOf(
                Tokenizer.load(FIXTURE.resolve("tokenizer.json"))
                        .encode(Files.readString(FIXTURE.resolve("heldout.txt"))),
                300);
    }

    static ValidateOptions options(Path candidate, boolean w4, boolean rtn, int decode, ValidateOptions.Gates g) {
        return new ValidateOptions(
                FIXTURE, candidate, FIXTURE.resolve("heldout.txt"), ids, 128, K, w4, rtn, List.of(1, 2), decode, g);
    }

    static Validator.Outcome run(ValidateOptions o) {
        return Validator.run(o, "test", line -> {});
    }

    @Test
    void anRtnReleaseMatchesRtnOnTheFlyAndTheW4KernelMatchesDequantization() {
        Validator.Outcome a = run(options(release, false, true, 4, ValidateOptions.Gates.NONE));
        assertTrue(a.passed(), a.failures().toString());
        ValidationReport.Accuracy acc = a.report().accuracy();
        ValidationReport.ModelFigures cand = acc.candidate();
        ValidationReport.ModelFigures rtn = acc.baselineRtn();
        // The release holds exactly the weights RTN-on-the-fly computes (same core rule), read back through the
        // GPTQ reader; the two differ only in how the product is summed (dequantized fp32 matmul vs the W4 kernel),
        // i.e. fp32 rounding: relative 1e-4 on perplexity and 1e-6 nats on a KL of order 1e-2 leave 100× margin over
        // the differences seen (≈1e-6 and 1e-8).
        double ppl = cand.ppl();
        assertEquals(rtn.ppl(), ppl, 1e-4 * ppl);
        assertEquals(rtn.klMean(), cand.klMean(), 1e-6);
        double kl = cand.klMean();
        assertTrue(kl > 1e-4 && kl < 0.5, "W4 must cost something, but not much: " + kl);
        assertTrue(cand.klP99() >= kl, "p99 of a non-negative series is at least its mean");
        double top1 = cand.top1Agreement();
        assertTrue(top1 > 0.7 && top1 <= 1, "top-1 " + top1);
        List<Double> layers = cand.layerRelError();
        assertEquals(8, layers.size());
        for (double e : layers) {
            assertTrue(e > 0 && e < 1, "per-layer error " + e);
        }
        assertEquals(300, a.report().tokens());
        assertEquals(3, acc.windows());
        assertEquals(297, acc.predictions());
        Map<String, Double> t = a.throughput();
        assertTrue(t.get("BF16") > 0 && t.get("W4A16 kernel") > 0, t.toString());

        Validator.Outcome b = run(options(release, true, false, 0, ValidateOptions.Gates.NONE));
        ValidationReport.ModelFigures candW4 = b.report().accuracy().candidate();
        assertEquals(ppl, candW4.ppl(), 1e-4 * ppl);
        assertEquals(kl, candW4.klMean(), 1e-6);
        assertNull(b.baseline());
        assertTrue(b.throughput().isEmpty());
    }

    @Test
    void gatesFailWithTheirFigures() {
        Validator.Outcome o = run(options(release, true, false, 0, ValidateOptions.Gates.only(1000.0, 0.0, 0.5)));
        assertFalse(o.passed());
        assertEquals(1, o.failures().size(), o.failures().toString());
        assertTrue(
                o.failures().get(0).startsWith("gate --max-kl: mean KL is "),
                o.failures().get(0));
    }

    @Test
    void aCorruptedNibbleIsTracedToItsTensor() throws IOException {
        Path bad = copy("nibble");
        String name = "model.layers.3.mlp.down_proj.qweight";
        long offset = dataOffset(bad.resolve("model.safetensors"), name) + 1234;
        byte[] bytes = Files.readAllBytes(bad.resolve("model.safetensors"));
        bytes[(int) offset] ^= 0x04; // one bit of one nibble: still a valid code, a different weight
        Files.write(bad.resolve("model.safetensors"), bytes);
        Validator.Outcome o = run(options(bad, true, false, 0, ValidateOptions.Gates.NONE));
        assertFalse(o.passed());
        assertTrue(o.failures().stream().anyMatch(f -> f.contains("model.safetensors") && f.contains("sha256")));
        assertTrue(
                o.failures().stream().anyMatch(f -> f.startsWith("integrity: " + name + ": bytes changed")),
                o.failures().toString());
        assertEquals(2, o.failures().size(), "the file and the one tensor, nothing else: " + o.failures());
        assertNull(o.report().accuracy());
        assertEquals(
                "accuracy was not measured: the candidate failed the integrity or format checks",
                o.report().skipped());
        // The report of a failed run: the verdict and the findings, no plots of figures never measured.
        List<Path> written = Report.write(bad.resolve("report"), o);
        assertEquals(List.of(bad.resolve("report/" + Report.JSON), bad.resolve("report/" + Report.MARKDOWN)), written);
        String md = Files.readString(bad.resolve("report/" + Report.MARKDOWN));
        assertTrue(md.contains("**FAILED**") && md.contains(name + ": bytes changed"), md);
    }

    @Test
    void v2ZerosUnderTheGptqLabelAreNamed() throws IOException {
        Path bad = copy("v2");
        rewrite(bad, (name, t) -> name.equals("model.layers.5.self_attn.k_proj.qzeros") ? ints(t, 0x88888888) : t);
        Files.delete(bad.resolve(Manifest.FILE)); // as a third-party checkpoint: only the format rules can tell
        Validator.Outcome o = run(options(bad, true, false, 0, ValidateOptions.Gates.NONE));
        assertFalse(o.passed());
        assertEquals(1, o.failures().size(), o.failures().toString());
        String f = o.failures().get(0);
        assertTrue(f.startsWith("format: model.layers.5.self_attn.k_proj.qzeros:") && f.contains("v2"), f);
        assertFalse(o.report().integrity().manifest());
    }

    @Test
    void aMissingScaleIsNamed() throws IOException {
        Path bad = copy("noscale");
        rewrite(bad, (name, t) -> name.equals("model.layers.2.mlp.up_proj.scales") ? null : t);
        Validator.Outcome o = run(options(bad, true, false, 0, ValidateOptions.Gates.NONE));
        assertFalse(o.passed());
        assertTrue(
                o.failures().stream().anyMatch(f -> f.startsWith("format: model.layers.2.mlp.up_proj.scales: missing")),
                o.failures().toString());
    }

    @Test
    void aManifestHashMismatchIsNamed() throws IOException {
        Path bad = copy("manifest");
        Files.writeString(
                bad.resolve("generation_config.json"), Files.readString(bad.resolve("generation_config.json")) + " ");
        Validator.Outcome o = run(options(bad, true, false, 0, ValidateOptions.Gates.NONE));
        assertFalse(o.passed());
        assertEquals(
                List.of("integrity: generation_config.json"),
                o.failures().stream()
                        .map(f -> f.substring(0, f.indexOf(": sha256")))
                        .toList());
    }

    @Test
    void theReportIsWrittenWithItsPlots() throws IOException {
        Validator.Outcome o = run(options(release, true, true, 2, ValidateOptions.Gates.only(null, 10.0, null)));
        Path dir = tmp.resolve("report");
        List<Path> written = Report.write(dir, o);
        assertEquals(5, written.size(), written.toString());
        for (Path p : written) {
            assertTrue(Files.size(p) > 100, p.toString());
        }
        String md = Files.readString(dir.resolve(Report.MARKDOWN));
        assertTrue(md.startsWith("# Validation of "), md);
        assertTrue(md.contains("**PASSED**"), md);
        for (String png : List.of(Report.LAYER_PLOT, Report.KL_PLOT, Report.THROUGHPUT_PLOT)) {
            assertTrue(md.contains("](" + png + ")"), png);
        }
        assertEquals(o.report(), ValidationReport.read(dir.resolve(Report.JSON)), "written and read back equal");
        assertEquals(Report.markdown(o.report()), md, "validation.md is the report's markdown");
        try (Stream<Path> s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".partial")));
        }
    }

    // ---- helpers

    private static Path copy(String name) throws IOException {
        Path dst = tmp.resolve(name);
        Files.createDirectories(dst);
        try (Stream<Path> s = Files.list(release)) {
            for (Path p : s.toList()) {
                Files.copy(p, dst.resolve(p.getFileName()));
            }
        }
        return dst;
    }

    /** Start of tensor {@code name}'s bytes in a single safetensors file: 8 + header length + data_offsets[0]. */
    private static long dataOffset(Path file, String name) throws IOException {
        byte[] head = Arrays.copyOf(Files.readAllBytes(file), 8);
        long n = ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN).getLong();
        byte[] all = Files.readAllBytes(file);
        Map<String, Object> header =
                Json.parseObject(new String(all, 8, (int) n, java.nio.charset.StandardCharsets.UTF_8));
        List<?> offsets = (List<?>) ((Map<?, ?>) header.get(name)).get("data_offsets");
        return 8 + n + (Long) offsets.get(0);
    }

    interface Edit {
        /** The tensor to write instead of {@code t}, or null to drop it. */
        TensorView apply(String name, TensorView t);
    }

    /** Rewrites model.safetensors with {@code edit} applied (the manifest is left as it was). */
    private static void rewrite(Path dir, Edit edit) throws IOException {
        Path file = dir.resolve("model.safetensors");
        Path tmpFile = dir.resolve("model.safetensors.new");
        try (Checkpoint ck = Checkpoint.open(dir)) {
            List<TensorView> out = new ArrayList<>();
            for (String name : ck.names()) {
                TensorView t = edit.apply(name, ck.tensor(name));
                if (t != null) {
                    out.add(t);
                }
            }
            SafetensorsWriter.writeFile(tmpFile, out, ck.metadata());
        }
        Files.move(tmpFile, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    private static TensorView ints(TensorView t, int word) {
        int[] v = new int[(int) t.numel()];
        Arrays.fill(v, word);
        java.lang.foreign.MemorySegment seg = java.lang.foreign.MemorySegment.ofArray(new byte[v.length * 4]);
        for (int i = 0; i < v.length; i++) {
            seg.set(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i, v[i]);
        }
        return new TensorView(t.name(), t.dtype(), t.shape(), seg);
    }
}
