package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.GptqRelease;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.quant.QuantScheme;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bytes that cross the host ↔ backend boundary (issue 14 item 2), counted by {@link CountingKernels} on the
 * fixture, on the backend-resident design of item 1: per layer pass the layer's weights once, its input activations
 * once and its outputs once plus the results (codes, scales, g_idx, statistics) ({@link #LAYER_PASS}, checked
 * against that budget by {@link #layerPassCrossesTheBudgetExactly}); per decode step the embedding row in and the
 * logits row out, whatever the number of layers ({@link #DECODE_STEP}). The BEFORE figures, counted on the
 * host-array SPI of commit b120b49, stay as formulas ({@link BoundaryFormulas#decodeStep}, {@link
 * BoundaryFormulas#layerPassBefore}) checked against the counts measured then, so docs/BENCHMARKS.md gives both
 * from the same code.
 *
 * <p>The counts are exact integers of a deterministic call sequence, so any change in how the model or the
 * pipeline calls the kernels shows here; {@link BoundaryFormulas} must then be updated with it (the formulas
 * give the 32B figures).
 */
class BoundaryBytesTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    /**
     * Batch 1: the 9th token after a prompt of 8, through the KV cache, on the backend (AFTER issue 14 item 1): the
     * embedding row in (wrap), the logits row out (take), and every other operation on resident data (calls only).
     */
    static final String DECODE_STEP = """
            backend.add 16 0 0
            backend.alloc 75 0 0
            backend.attention 8 0 0
            backend.copy 17 0 0
            backend.matmul 57 0 0
            backend.rmsNorm 17 0 0
            backend.rope 16 0 0
            backend.swiglu 8 0 0
            backend.take 1 0 8192
            backend.wrap 1 1024 0""";

    /**
     * The same step as counted BEFORE item 1, on the host-array forward of commit b120b49 (every kernel call copying
     * its operands): every layer's activations and the whole KV cache crossed.
     */
    static final String DECODE_STEP_BEFORE = """
            attention 8 81920 8192
            matmul 57 91136 90112
            rmsNorm 17 34816 17408
            rope 16 14400 12288
            swiglu 8 49152 24576""";

    /**
     * One layer's GPTQ pass over one batch of 2 × 64 tokens on the backend-resident design (every layer of the
     * fixture counts the same): the weights, the vectors and the inputs in once, the outputs and the statistics out
     * once, the codes, scales, g_idx, H's diagonal and the loss of each linear out once; the forwards, Hessians and
     * GPTQ run on the backend (calls, no bytes).
     */
    static final String LAYER_PASS = """
            backend.absMaxColumns 11 0 0
            backend.add 2 0 0
            backend.alloc 35 0 0
            backend.attention 1 0 0
            backend.copy 4 0 0
            backend.matmul 9 0 0
            backend.rmsNorm 5 0 0
            backend.rope 2 0 0
            backend.swiglu 2 0 0
            backend.syrkUpper 4 0 0
            backend.take 7 0 138240
            backend.weight 7 1572864 0
            backend.wrap 7 135296 0
            gptq.finishHessian 4 0 0
            gptq.quantize 7 0 3188792""";

    @Test
    void oneDecodeStep() {
        CountingKernels ck = new CountingKernels(Kernels.byName("vector"));
        try (Qwen2Model m = Qwen2Model.load(FIXTURE, ck)) {
            KvCache cache = m.newCache(16);
            m.forward(new int[] {1, 2, 3, 4, 5, 6, 7, 8}, cache, true);
            ck.reset(false); // the prompt brought the weights; a device backend's cache holds them now
            m.forward(new int[] {9}, cache, true);
            String got = BoundaryFormulas.summary(ck.counts());
            assertEquals(DECODE_STEP, got, ck.table());
            assertEquals(BoundaryFormulas.summary(BoundaryFormulas.FIXTURE.decodeStepAfter(8)), got);
        }
    }

    /** The before formula still gives the counts measured before item 1 (it gives the doc's BEFORE figures). */
    @Test
    void decodeStepBeforeFormulaGivesTheMeasuredBeforeCounts() {
        assertEquals(DECODE_STEP_BEFORE, BoundaryFormulas.summary(BoundaryFormulas.FIXTURE.decodeStep(8, 8)));
    }

    /**
     * The after formula's crossings do not depend on the number of layers (O(hidden + vocab)); the operations on
     * resident data grow with them.
     */
    @Test
    void decodeStepAfterCrossesTheSameBytesAtAnyDepth() {
        BoundaryFormulas f = BoundaryFormulas.QWEN25_32B;
        assertEquals(BoundaryFormulas.total(f.decodeStepAfter(1)).bytesIn(), 4L * 5120);
        assertEquals(BoundaryFormulas.total(f.decodeStepAfter(64)).bytesIn(), 4L * 5120);
        assertEquals(BoundaryFormulas.total(f.decodeStepAfter(64)).bytesOut(), 4L * 152064);
    }

    /** The decode step of docs/BENCHMARKS.md at the 32B shape, before and after item 1, from the same formulas. */
    @Test
    void decodeFiguresAt32B() {
        BoundaryFormulas f = BoundaryFormulas.QWEN25_32B;
        var before = f.decodeStep(64, 2048);
        var after = f.decodeStepAfter(64);
        System.out.println(
                "32B decode step BEFORE (host arrays; 64 layers, 2048 cached):\n" + BoundaryFormulas.markdown(before));
        System.out.println("32B decode step AFTER (resident on the backend; 64 layers, 2048 cached):\n"
                + BoundaryFormulas.markdown(after));
        assertEquals(
                4L * (5120 + 152064),
                BoundaryFormulas.total(after).bytesIn()
                        + BoundaryFormulas.total(after).bytesOut());
    }

    /** Per layer, counted between the pipeline's layerDone calls; tallies and weights are per layer. */
    static List<String> layerPasses(Path out, int nsamples, int batchSequences) {
        CountingKernels ck = new CountingKernels(Kernels.byName("vector"));
        List<String> perLayer = new ArrayList<>();
        ProgressListener split = new ProgressListener() {
            @Override
            public void layerDone(int layer, int layers, double seconds) {
                perLayer.add(BoundaryFormulas.summary(ck.counts()));
                ck.reset(false);
            }
        };
        QuantizeOptions opts = new QuantizeOptions(
                FIXTURE,
                out,
                128,
                nsamples,
                64,
                1,
                1L << 30,
                4L << 30,
                batchSequences,
                false,
                false,
                Map.of(),
                List.of("t"),
                "t");
        SplittableRandom r = new SplittableRandom(9);
        List<int[]> samples = new ArrayList<>();
        for (int i = 0; i < nsamples; i++) {
            samples.add(r.ints(64, 0, 2045).toArray());
        }
        new QuantizeJob(
                        opts,
                        GptqRelease.GPTQ,
                        QuantScheme.W4A16,
                        new GptqMethod(GptqOptions.DEFAULTS, true),
                        ck,
                        split)
                .run(samples, Map.of());
        return perLayer;
    }

    @Test
    void oneQuantizeLayerPass(@TempDir Path tmp) {
        List<String> perLayer = layerPasses(tmp.resolve("out"), 2, 2);
        assertEquals(8, perLayer.size());
        for (int l = 0; l < 8; l++) {
            assertEquals(LAYER_PASS, perLayer.get(l), "layer " + l);
        }
        assertEquals(BoundaryFormulas.summary(BoundaryFormulas.FIXTURE.layerPass(128, 1, 128)), LAYER_PASS);
    }

    /**
     * Two batches of 2 × 64 tokens: the formulas' dependence on the batch count, measured. The inputs are written
     * once per layer though five passes read them: the crossings grow by one batch's inputs and outputs only.
     */
    @Test
    void layerPassOverTwoBatchesMatchesTheFormulas(@TempDir Path tmp) {
        List<String> perLayer = layerPasses(tmp.resolve("out"), 4, 2);
        for (int l = 0; l < 8; l++) {
            assertEquals(
                    BoundaryFormulas.summary(BoundaryFormulas.FIXTURE.layerPass(128, 2, 128)),
                    perLayer.get(l),
                    "layer " + l);
        }
    }

    /**
     * Issue 14 item 2's budget, per layer: the bytes that cross are exactly the layer's weights once, its inputs
     * once, its outputs once and the results (plus the few vectors), over one batch and over two.
     */
    @Test
    void layerPassCrossesTheBudgetExactly() {
        for (long batches : new long[] {1, 2}) {
            var pass = BoundaryFormulas.FIXTURE.layerPass(128, batches, 128);
            assertEquals(
                    BoundaryFormulas.FIXTURE.layerBudget(128 * batches, 128),
                    BoundaryFormulas.total(pass).bytes(),
                    batches + " batches");
        }
        var at32B = BoundaryFormulas.QWEN25_32B.layerPass(2048, 128, 128);
        assertEquals(
                BoundaryFormulas.QWEN25_32B.layerBudget(128 * 2048, 128),
                BoundaryFormulas.total(at32B).bytes());
    }

    /**
     * The 32B layer-pass figures of docs/BENCHMARKS.md, before and after item 1, from the formulas the tests above
     * check (printed for the doc; the decode step's are {@link #decodeFiguresAt32B}).
     */
    @Test
    void figuresAt32B() {
        BoundaryFormulas f = BoundaryFormulas.QWEN25_32B;
        var layer = f.layerPass(2048, 128, 128);
        System.out.println("32B GPTQ layer pass before (128 batches of 2048 tokens):\n"
                + BoundaryFormulas.markdown(f.layerPassBefore(2048, 128, 128)));
        System.out.println(
                "32B GPTQ layer pass after (128 batches of 2048 tokens):\n" + BoundaryFormulas.markdown(layer));
        assertEquals(f.params() * 64, 64L * (5120L * 5120 * 2 + 1024L * 5120 * 2 + 3 * 27648L * 5120));
    }
}
