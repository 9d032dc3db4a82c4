package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.model.ActivationQuant;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.CompressedTensorsRelease;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.tensor.Fp8;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q validate} on compressed-tensors releases of the fixture that declare 8-bit parts: the candidate runs as
 * declared, simulated from its written scales, and the figures of the whole scheme agree with an independent
 * simulation written here (its own fake quantization around the tested FP8 codec, its own KL); each part's extra KL
 * over W4A16 is reported.
 */
class SimulatedSchemesTest {
    static final Path FIXTURE = ValidatorTest.FIXTURE;

    @TempDir
    static Path tmp;

    static int[] ids;

    static Path release(String name, QuantScheme scheme) {
        Path out = tmp.resolve(name);
        QuantizeOptions o = new QuantizeOptions(
                FIXTURE, out, 128, 2, 32, 1, 1L << 30, 4L << 30, 2, false, false, Map.of(), List.of("t"), "test");
        SplittableRandom r = new SplittableRandom(3);
        List<int[]> samples =
                List.of(r.ints(32, 0, 2045).toArray(), r.ints(32, 0, 2045).toArray());
        new QuantizeJob(
                        o,
                        CompressedTensorsRelease.NO_ACT_ORDER,
                        scheme,
                        new ValidatorTest.PlainRtn(),
                        ValidatorTest.K,
                        ProgressListener.NONE)
                .run(samples, Map.of());
        return out;
    }

    @BeforeAll
    static void tokens() throws Exception {
        ids = Arrays.copyOf(
                dev.m2q.core.tokenizer.Tokenizer.load(FIXTURE.resolve("tokenizer.json"))
                        .encode(java.nio.file.Files.readString(FIXTURE.resolve("heldout.txt"))),
                256);
    }

    static Validator.Outcome validate(Path candidate) {
        return Validator.run(
                new ValidateOptions(
                        FIXTURE,
                        candidate,
                        FIXTURE.resolve("heldout.txt"),
                        ids,
                        128,
                        ValidatorTest.K,
                        false,
                        false,
                        List.of(1),
                        0,
                        ValidateOptions.Gates.NONE),
                "test",
                line -> {});
    }

    /** Static FP8 inputs and a per-tensor FP8 KV cache, written here from the definitions. */
    static final class Independent implements ActivationQuant {
        final Checkpoint ck;
        final ModelConfig cfg;

        Independent(Checkpoint ck, ModelConfig cfg) {
            this.ck = ck;
            this.cfg = cfg;
        }

        static float fp8(float x, float s) {
            return s * Fp8.e4m3ToFloat(Fp8.floatToE4M3(x / s));
        }

        @Override
        public void linearInput(int layer, List<String> modules, float[] x, int rows, int cols) {
            float s = 0;
            for (String m : modules) {
                s = Math.max(
                        s,
                        ck.tensor(cfg.arch().module(layer, m) + ".input_scale").getFloat(0));
            }
            for (int i = 0; i < rows * cols; i++) {
                x[i] = fp8(x[i], s);
            }
        }

        @Override
        public void keysValues(int layer, float[] k, float[] v, int rows, int kvHeads, int headDim) {
            float ks = ck.tensor(cfg.arch().module(layer, "self_attn.k_scale")).getFloat(0);
            float vs = ck.tensor(cfg.arch().module(layer, "self_attn.v_scale")).getFloat(0);
            for (int i = 0; i < rows * kvHeads * headDim; i++) {
                k[i] = fp8(k[i], ks);
                v[i] = fp8(v[i], vs);
            }
        }
    }

    /** Mean KL(P_ref ‖ P_cand) over windows of 128 tokens, every position, in double. */
    static double meanKl(Path candidate, ActivationQuant aq) {
        try (Qwen2Model ref = Qwen2Model.load(FIXTURE, ValidatorTest.K);
                Qwen2Model cand = Qwen2Model.load(candidate, ValidatorTest.K)) {
            int vocab = ref.config().vocabSize();
            double total = 0;
            int count = 0;
            for (int start = 0; start < ids.length; start += 128) {
                int[] w = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + 128));
                float[] x = cand.embed(w);
                for (int i = 0; i < cand.numLayers(); i++) {
                    x = cand.layer(i).withActivationQuant(aq).forward(x, 1, w.length, LayerObserver.NONE);
                }
                float[] q = cand.logits(x, w.length);
                float[] p = ref.forward(w);
                for (int t = 0; t < w.length; t++) {
                    double lp0 = lse(p, t * vocab, vocab);
                    double lq0 = lse(q, t * vocab, vocab);
                    double kl = 0;
                    for (int i = 0; i < vocab; i++) {
                        double lp = p[t * vocab + i] - lp0;
                        kl += Math.exp(lp) * (lp - (q[t * vocab + i] - lq0));
                    }
                    total += Math.max(0, kl);
                    count++;
                }
            }
            return total / count;
        }
    }

    static double lse(float[] x, int off, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        double s = 0;
        for (int i = 0; i < n; i++) {
            s += Math.exp(x[off + i] - max);
        }
        return max + Math.log(s);
    }

    @Test
    void aStaticFp8ReleaseWithKv8RunsAsDeclaredAndReportsEachPart() {
        Path ct = release("w4a8-static-kv8", QuantScheme.of("w4a8-fp8", true, null, "fp8", null));
        Validator.Outcome o = validate(ct);
        assertTrue(o.passed(), o.failures().toString());
        assertEquals("W4A8-FP8 static + KV8", o.report().scheme());
        ValidationReport.Accuracy acc = o.report().accuracy();
        List<ValidationReport.Simulated> sims = acc.simulated8bit();
        assertEquals(
                List.of("W4A16", "W4A16 + KV8", "W4A8-FP8 static", "W4A8-FP8 static + KV8"),
                sims.stream().map(ValidationReport.Simulated::scheme).toList());
        ValidationReport.ModelFigures cand = acc.candidate();
        ValidationReport.Simulated whole = sims.get(3);
        assertEquals(cand.klMean(), whole.klMean(), "the candidate is the whole declared scheme");

        // Against the independent simulation and KL: the same kernels on the same values, so the only difference
        // is the order the KL terms are summed in (per row here, the same in Agreement): 1e-12 nats is far above
        // double rounding over 256 positions and far below any real disagreement (8-bit costs ~1e-3 here).
        double kl;
        double klW4;
        try (Checkpoint ck = Checkpoint.open(ct)) {
            kl = meanKl(ct, new Independent(ck, ModelConfig.load(ct)));
            klW4 = meanKl(ct, ActivationQuant.NONE);
        }
        assertEquals(kl, whole.klMean(), 1e-12);
        assertEquals(klW4, sims.get(0).klMean(), 1e-12);
        assertEquals(kl - klW4, whole.extraKlMean(), 1e-12);
        assertTrue(kl > klW4, "simulating 8-bit parts must cost something: " + kl + " vs " + klW4);
        assertEquals(0.0, sims.get(0).extraKlMean(), 0.0);
        assertNull(sims.get(0).saturation(), "W4A16 simulates nothing");
        assertNull(sims.get(0).extraKlMeanCi95(), "W4A16's own row has no extra to bound");
        // Each 8-bit part's extras carry their paired interval over the windows. The point is a difference of two
        // means and the interval's draws are ratios of window sums, so on a draw of every window they agree to
        // double rounding: 1e-12 lets the point sit on a degenerate interval's end.
        for (ValidationReport.Simulated s : sims.subList(1, 4)) {
            List<Double> kci = s.extraKlMeanCi95();
            List<Double> pci = s.extraPplIncreaseCi95();
            assertEquals(2, kci.size(), s.toString());
            assertEquals(2, pci.size(), s.toString());
            assertTrue(kci.get(0) <= s.extraKlMean() + 1e-12 && s.extraKlMean() <= kci.get(1) + 1e-12, s.toString());
            assertTrue(pci.get(0) <= pci.get(1), s.toString());
        }
        for (ValidationReport.Simulated s : sims.subList(1, 4)) {
            assertTrue(s.extraKlMean() > 0, s.toString());
        }
        ValidationReport.Saturation sat = whole.saturation();
        double[] shares = {sat.staticInputs(), sat.keys(), sat.values()};
        for (double f : shares) {
            assertTrue(f >= 0 && f < 0.01, sat + ": held-out values beyond the calibrated ranges are rare: " + f);
        }
        assertTrue(Double.isNaN(sims.get(1).saturation().staticInputs()), "KV8 alone: no static inputs");
        String md = Report.markdown(o.report());
        assertTrue(md.contains("| W4A8-FP8 static + KV8 |"), md);
        assertTrue(md.contains("extra KL over W4A16"), md);
        assertTrue(md.contains("paired 95% interval"), md);
    }

    @Test
    void dynamicInt8PerHeadKvAndPlainW4a16() {
        Validator.Outcome o = validate(release("int8-head", QuantScheme.of("w4a8-int8", false, null, "fp8", "head")));
        assertTrue(o.passed(), o.failures().toString());
        List<ValidationReport.Simulated> sims = o.report().accuracy().simulated8bit();
        assertEquals(
                List.of("W4A16", "W4A16 + KV8 per head", "W4A8-INT8", "W4A8-INT8 + KV8 per head"),
                sims.stream().map(ValidationReport.Simulated::scheme).toList());
        assertTrue(Double.isNaN(sims.get(3).saturation().staticInputs()), "per-token: none");

        Validator.Outcome plain = validate(release("plain", QuantScheme.W4A16));
        assertEquals("W4A16", plain.report().scheme());
        assertNull(plain.report().accuracy().simulated8bit());
        // The weights do not depend on the scheme: W4A16 of both releases is the same model.
        assertEquals(plain.report().accuracy().candidate().klMean(), sims.get(0).klMean());
    }
}
