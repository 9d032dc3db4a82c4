package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.DecoderLayer.Midpoint;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The midpoints a method's passes leave for each other ({@link LayerContext#run(DecoderLayer.Resident,
 * LayerObserver, Midpoint)}), in GPTQ's true-sequential order on the fixture's layer 0: each group's linears
 * replaced after its pass, the next pass starting where the previous one left the layer. The observer sees the bits
 * of a plain pass with the same weights (compared bitwise: the same operations on the same values); the attention
 * and o_proj run only where a midpoint could not be used, counted by {@link CountingKernels}.
 */
class LayerContextMidpointTest {
    static final int SAMPLES = 3;
    static final int SEQ = 16;
    static final int BATCH = 2; // two batches, the second one short

    /** The host copies of one module's inputs, one per batch; each batch's pass stops once it has them. */
    static final class Inputs implements LayerObserver {
        final String module;
        final List<float[]> seen = new ArrayList<>();
        private boolean got;

        Inputs(String module) {
            this.module = module;
        }

        @Override
        public void linearInput(String m, float[] x, int rows, int cols) {
            if (m.equals(module)) {
                seen.add(x.clone());
                got = true;
            }
        }

        @Override
        public void keysValues(float[] k, float[] v, int rows, int kvDim) {}

        @Override
        public boolean enough() {
            boolean done = got;
            got = false;
            return done;
        }
    }

    /** The layer's passes in GPTQ's order; returns o's, gate's and down's inputs and the attention and o counts. */
    record Sequence(List<float[]> o, List<float[]> gate, List<float[]> down, long attention, long matmuls) {}

    @Test
    void eachPassStartsWhereThePreviousOneLeftTheLayer(@TempDir Path tmp) {
        Sequence plain = sequence(tmp, false, 1L << 30);
        Sequence kept = sequence(tmp, true, 1L << 30);
        assertBitsEqual(plain, kept);
        int batches = (SAMPLES + BATCH - 1) / BATCH;
        // plain: o's, gate's and down's passes each run the attention; with midpoints only o's pass does
        assertEquals(3L * batches, plain.attention());
        assertEquals(batches, kept.attention());
        // q, k, v in each of the three passes, o in the last two, gate and up in the last, against q, k, v once,
        // then o in gate's pass, then gate and up
        assertEquals(batches * (3 * 3 + 2 + 2), plain.matmuls());
        assertEquals(batches * (3 + 1 + 2), kept.matmuls());
    }

    @Test
    void midpointsThatDoNotFitTheBudgetAreNotKept(@TempDir Path tmp) {
        // the store on the heap and the resident copy of the inputs fit the half, a midpoint beside them does not
        long inputs = ActivationStore.bytes(SAMPLES, SEQ * config().hiddenSize());
        Sequence tight = sequence(tmp, true, 2 * 3 * inputs);
        Sequence plain = sequence(tmp, false, 1L << 30);
        assertBitsEqual(plain, tight);
        assertEquals(plain.attention(), tight.attention());
        assertEquals(plain.matmuls(), tight.matmuls());
    }

    @Test
    void aMidpointIsNotUsedOnceAWeightBeforeItChanged(@TempDir Path tmp) {
        try (Fixture f = new Fixture(tmp, 1L << 30)) {
            DecoderLayer.Resident w = f.ctx.resident();
            Backend b = f.ctx.backend();
            w = w.with("self_attn.o_proj", f.keep(b, "self_attn.o_proj", 0.75f));
            f.ctx.run(w, new Inputs("mlp.gate_proj"), Midpoint.RESIDUAL);
            long attention = f.counts.count("backend.attention").calls();
            // q changed since the residual was kept: the pass must run the attention again
            DecoderLayer.Resident changed = w.with("self_attn.q_proj", f.keep(b, "self_attn.q_proj", 0.5f));
            Inputs fromKept = new Inputs("mlp.down_proj");
            f.ctx.run(changed, fromKept, Midpoint.RESIDUAL);
            assertEquals(attention + 2, f.counts.count("backend.attention").calls());
            Inputs whole = new Inputs("mlp.down_proj");
            f.ctx.run(changed, whole);
            assertEquals(whole.seen.size(), fromKept.seen.size());
            for (int i = 0; i < whole.seen.size(); i++) {
                assertArrayEquals(whole.seen.get(i), fromKept.seen.get(i), "batch " + i);
            }
        }
    }

    /**
     * The pipeline's outputs pass ({@link LayerContext#propagate}) starts from the residual a method's pass kept, and
     * keeps nothing itself: the same outputs as a pass from the input, no attention run, no copy made.
     */
    @Test
    void theOutputsPassStartsFromTheKeptResidualAndKeepsNothing(@TempDir Path tmp) {
        float[][] whole;
        try (Fixture f = new Fixture(tmp.resolve("whole"), 1L << 30)) {
            whole = outputs(f.ctx.outputs(f.ctx.resident(), LayerObserver.NONE));
        }
        try (Fixture f = new Fixture(tmp.resolve("kept"), 1L << 30);
                RangeCalibrator ranges = new RangeCalibrator(config(), 0, f.ctx.backend(), false)) {
            f.ctx.observeEveryPass(ranges);
            DecoderLayer.Resident w = f.ctx.resident();
            f.ctx.run(w, new Inputs("mlp.gate_proj"), Midpoint.RESIDUAL);
            long attention = f.counts.count("backend.attention").calls();
            long copies = f.counts.count("backend.copy").calls();
            float[][] got = outputs(f.ctx.propagate(w));
            assertEquals(attention, f.counts.count("backend.attention").calls());
            // one copy per batch: the residual into the buffer the pass adds down_proj's output to
            assertEquals(copies + 2, f.counts.count("backend.copy").calls());
            for (int s = 0; s < SAMPLES; s++) {
                assertArrayEquals(whole[s], got[s], "sample " + s);
            }
            ranges.ranges(); // every tensor was shown, the keys and q/k/v's input by the first pass
        }
        try (Fixture f = new Fixture(tmp.resolve("none"), 1L << 30);
                RangeCalibrator ranges = new RangeCalibrator(config(), 0, f.ctx.backend(), false)) {
            f.ctx.observeEveryPass(ranges);
            float[][] got = outputs(f.ctx.propagate(f.ctx.resident()));
            assertEquals(0, f.counts.count("backend.copy").calls(), "nothing kept, nothing copied");
            assertEquals(2, f.counts.count("backend.attention").calls());
            for (int s = 0; s < SAMPLES; s++) {
                assertArrayEquals(whole[s], got[s], "sample " + s);
            }
        }
    }

    /** A store's samples, and the store closed. */
    static float[][] outputs(ActivationStore store) {
        try (store) {
            float[][] out = new float[store.samples()][];
            for (int s = 0; s < out.length; s++) {
                out[s] = store.get(s).clone();
            }
            return out;
        }
    }

    static void assertBitsEqual(Sequence a, Sequence b) {
        for (List<List<float[]>> pair :
                List.of(List.of(a.o(), b.o()), List.of(a.gate(), b.gate()), List.of(a.down(), b.down()))) {
            assertEquals(pair.get(0).size(), pair.get(1).size());
            for (int i = 0; i < pair.get(0).size(); i++) {
                assertArrayEquals(pair.get(0).get(i), pair.get(1).get(i), "batch " + i);
            }
        }
    }

    /**
     * q/k/v replaced, then o's pass; o replaced, then gate's pass; gate and up replaced, then down's pass. With
     * {@code midpoints} each pass names the midpoint before its inputs, without it each is a plain pass.
     */
    static Sequence sequence(Path tmp, boolean midpoints, long budget) {
        try (Fixture f = new Fixture(tmp.resolve(midpoints + "-" + budget), budget)) {
            Backend b = f.ctx.backend();
            DecoderLayer.Resident w = f.ctx.resident();
            for (String m : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")) {
                w = w.with(m, f.keep(b, m, 0.9f));
            }
            f.counts.reset(false);
            Inputs o = f.pass(w, "self_attn.o_proj", midpoints);
            w = w.with("self_attn.o_proj", f.keep(b, "self_attn.o_proj", 0.8f));
            Inputs gate = f.pass(w, "mlp.gate_proj", midpoints);
            for (String m : List.of("mlp.gate_proj", "mlp.up_proj")) {
                w = w.with(m, f.keep(b, m, 0.7f));
            }
            Inputs down = f.pass(w, "mlp.down_proj", midpoints);
            return new Sequence(
                    o.seen,
                    gate.seen,
                    down.seen,
                    f.counts.count("backend.attention").calls(),
                    f.counts.count("backend.matmul").calls());
        }
    }

    static ModelConfig config() {
        return ModelConfig.load(QuantizeJobTest.FIXTURE);
    }

    /** A context over random inputs for the fixture's layer 0 on counted vector kernels. */
    static final class Fixture implements AutoCloseable {
        final CountingKernels counts = new CountingKernels(Kernels.byName("vector"));
        final LayerContext ctx;
        final ActivationStore inputs;
        final DecoderLayer.Weights source;
        final Qwen2Model model; // holds the mapped checkpoint the source weights read

        Fixture(Path spill, long maxMemory) {
            ModelConfig cfg = config();
            model = Qwen2Model.load(QuantizeJobTest.FIXTURE, Kernels.byName("vector"));
            source = model.layer(0).weights();
            int width = SEQ * cfg.hiddenSize();
            inputs = ActivationStore.create(SAMPLES, width, maxMemory / 2, spill);
            SplittableRandom r = new SplittableRandom(5);
            for (int s = 0; s < SAMPLES; s++) {
                float[] x = new float[width];
                for (int i = 0; i < width; i++) {
                    x[i] = (float) r.nextGaussian();
                }
                inputs.set(s, x);
            }
            ctx = new LayerContext(
                    cfg, 0, source, inputs, SEQ, BATCH, counts, ProgressListener.NONE, maxMemory / 2, spill, 0);
        }

        /** Linear {@code module} of the source scaled by {@code f}, resident and kept by the context. */
        Backend.Weight keep(Backend b, String module, float f) {
            float[] w = source.linear(module).toFloatArray();
            for (int i = 0; i < w.length; i++) {
                w[i] *= f;
            }
            Matrix m = source.linear(module);
            return ctx.keep(b.weight(new Matrix.F32(w, m.rows(), m.cols())));
        }

        /** One pass for {@code module}'s inputs, naming its midpoint or not. */
        Inputs pass(DecoderLayer.Resident w, String module, boolean midpoints) {
            Inputs in = new Inputs(module);
            if (midpoints) {
                ctx.run(w, in, Midpoint.before(module));
            } else {
                ctx.run(w, in);
            }
            return in;
        }

        @Override
        public void close() {
            ctx.close();
            inputs.close();
            model.close();
        }
    }
}
