package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.grad.DecoderLayerGrad;
import dev.m2q.core.grad.FakeQuantizer;
import dev.m2q.core.grad.LayerParams;
import dev.m2q.core.grad.MseLoss;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.ArchSpec;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.RopeScaling;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The loop on a small random Qwen2 layer (hidden 64, 4/2 heads of 16, MLP 128, G = 32): what its step losses
 * measure, that the kept codes are the best step's, and that micro-batches only change summation order.
 */
class SignRoundTest {
    static final ModelConfig CFG = new ModelConfig(
            ArchSpec.forArchitecture("Qwen2ForCausalLM"),
            64,
            128,
            1,
            4,
            2,
            16,
            1e-6,
            10000,
            RopeScaling.NONE,
            64,
            32,
            false,
            true,
            "bfloat16",
            null);
    static final int G = 32;
    static final int SEQUENCES = 6;
    static final int SEQ_LEN = 8;
    static final Kernels KERNELS = Kernels.byName("vector");

    static Tensor.F32 random(SplittableRandom r, int rows, int cols, double mean, double sd) {
        Tensor.F32 t = Tensor.f32(rows, cols);
        for (int i = 0; i < t.size(); i++) {
            t.set(i, mean + sd * r.nextGaussian());
        }
        return t;
    }

    static LayerParams layer(SplittableRandom r) {
        int h = CFG.hiddenSize();
        int q = CFG.qDim();
        int kv = CFG.kvDim();
        int in = CFG.intermediateSize();
        return new LayerParams(
                random(r, 1, h, 1, 0.2),
                random(r, q, h, 0, 1 / Math.sqrt(h)),
                random(r, 1, q, 0, 0.1),
                random(r, kv, h, 0, 1 / Math.sqrt(h)),
                random(r, 1, kv, 0, 0.1),
                random(r, kv, h, 0, 1 / Math.sqrt(h)),
                random(r, 1, kv, 0, 0.1),
                random(r, h, q, 0, 1 / Math.sqrt(q)),
                random(r, 1, h, 1, 0.2),
                random(r, in, h, 0, 1 / Math.sqrt(h)),
                random(r, in, h, 0, 1 / Math.sqrt(h)),
                random(r, h, in, 0, 1 / Math.sqrt(in)));
    }

    /** Inputs N(0, 1) per sequence; targets the unquantized layer's outputs on them (the production forward). */
    record Data(List<float[]> x, List<float[]> y) implements SignRound.Calibration {
        static Data of(SplittableRandom r, LayerParams p) {
            List<float[]> x = new ArrayList<>();
            List<float[]> y = new ArrayList<>();
            for (int s = 0; s < SEQUENCES; s++) {
                float[] in = random(r, SEQ_LEN, CFG.hiddenSize(), 0, 1).data();
                x.add(in);
                y.add(production(p, Map.of()).forward(in, 1, SEQ_LEN, LayerObserver.NONE));
            }
            return new Data(x, y);
        }

        @Override
        public int samples() {
            return x.size();
        }

        @Override
        public int seqLen() {
            return SEQ_LEN;
        }

        @Override
        public float[] input(int sample) {
            return x.get(sample);
        }

        @Override
        public float[] target(int sample) {
            return y.get(sample);
        }
    }

    /** The production layer with p's weights, the given linears replaced by their dequantized codes. */
    static DecoderLayer production(LayerParams p, Map<String, QuantizedLinear> linears) {
        DecoderLayer.Weights w = new DecoderLayer.Weights(
                data(p.inputNorm()),
                matrix(p.q()),
                data(p.qBias()),
                matrix(p.k()),
                data(p.kBias()),
                matrix(p.v()),
                data(p.vBias()),
                matrix(p.o()),
                data(p.postNorm()),
                matrix(p.gate()),
                matrix(p.up()),
                matrix(p.down()));
        for (Map.Entry<String, QuantizedLinear> e : linears.entrySet()) {
            QuantizedLinear q = e.getValue();
            w = w.with(e.getKey(), new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
        }
        return new DecoderLayer(CFG, 0, w, KERNELS);
    }

    static float[] data(Tensor t) {
        return ((Tensor.F32) t).data();
    }

    static Matrix matrix(Tensor t) {
        return new Matrix.F32(data(t), t.rows(), t.cols());
    }

    /** MSE over all sequences of the production layer with {@code linears} against the targets, in double. */
    static double blockLoss(LayerParams p, Map<String, QuantizedLinear> linears, Data d) {
        DecoderLayer l = production(p, linears);
        double s = 0;
        long n = 0;
        for (int i = 0; i < SEQUENCES; i++) {
            float[] out = l.forward(d.x().get(i), 1, SEQ_LEN, LayerObserver.NONE);
            for (int j = 0; j < out.length; j++) {
                double e = out[j] - d.y().get(i)[j];
                s += e * e;
                n++;
            }
        }
        return s / n;
    }

    /**
     * With the batch = all 6 sequences every step's loss is over the same data, so: step 0's loss is the block
     * loss of iteration 0's codes, the reported best is the block loss of the codes returned, and it is below step
     * 0's. The loop's training forward and the production forward differ by fp32 rounding only (≤ 1e−6 relative
     * per output, DecoderLayerGradTest), hence 1e−5 relative on an MSE.
     */
    @Test
    void stepLossesMeasureTheCodesAndTheBestStepsCodesAreKept() {
        SplittableRandom r = new SplittableRandom(71);
        LayerParams p = layer(r);
        Data d = Data.of(r, p);
        SignRound sr = new SignRound(CFG, KERNELS, new AutoRoundOptions(40, 1.0 / 40, 1.0 / 40, SEQUENCES, G, 3));
        List<Double> steps = new ArrayList<>();
        SignRound.Result res = sr.tune(p, d, SEQUENCES, 3, (i, loss) -> steps.add(loss));
        assertEquals(40, steps.size());
        assertEquals(steps.getFirst(), res.firstLoss(), 0.0);
        assertEquals(steps.stream().mapToDouble(Double::doubleValue).min().orElseThrow(), res.bestLoss(), 0.0);
        assertEquals(res.bestLoss(), steps.get(res.bestStep()), 0.0);

        double rtn = blockLoss(p, sr.iterationZero(p), d);
        assertEquals(rtn, res.firstLoss(), 1e-5 * rtn);
        double tuned = blockLoss(p, res.linears(), d);
        assertEquals(tuned, res.bestLoss(), 1e-5 * tuned);
        assertTrue(
                res.bestStep() > 0 && tuned < 0.9 * rtn, "tuned " + tuned + " (step " + res.bestStep() + ") vs " + rtn);
    }

    /**
     * Group size −1, one group per row of each linear (K = 64 for q/k/v/o/gate/up, 128 for down): every exported
     * linear has a single group (G = K, g_idx all 0), and its codes reproduce the tuned loss the loop reported, to
     * the fp32 rounding between the training and production forwards (1e−5 relative, as above).
     */
    @Test
    void perRowGroupsTuneAndExportOneGroupPerRow() {
        SplittableRandom r = new SplittableRandom(74);
        LayerParams p = layer(r);
        Data d = Data.of(r, p);
        SignRound sr = new SignRound(CFG, KERNELS, new AutoRoundOptions(10, 0.1, 0.1, SEQUENCES, -1, 5));
        SignRound.Result res = sr.tune(p, d, SEQUENCES, 5, (i, loss) -> {});
        for (Map.Entry<String, QuantizedLinear> e : res.linears().entrySet()) {
            QuantizedLinear q = e.getValue();
            assertEquals(q.inFeatures(), q.groupSize(), e.getKey());
            assertEquals(1, q.groups(), e.getKey());
            assertArrayEquals(new int[q.inFeatures()], q.gIdx(), e.getKey());
        }
        assertEquals(128, res.linears().get("mlp.down_proj").inFeatures());
        double tuned = blockLoss(p, res.linears(), d);
        assertEquals(tuned, res.bestLoss(), 1e-5 * tuned);
        assertTrue(res.bestLoss() <= res.firstLoss(), res.bestLoss() + " vs " + res.firstLoss());
    }

    /**
     * The loop against a plain reference written here from ALGORITHMS.md §3 with fresh tensors for everything (no
     * in-place ŵ, no reused gradient buffers): the same batches (the sampler, same seed), so the same parameters at
     * every step, bit for bit. The loop reports each loss as its micro-batch means times their counts over the
     * total (two roundings away from MseLoss.value), hence 1e−12 relative; a step that updated V, α or β wrongly
     * (aliased buffers, a missed clamp) moves the next losses by far more.
     */
    @Test
    void stepsEqualAPlainReferenceLoop() {
        SplittableRandom r = new SplittableRandom(73);
        LayerParams p = layer(r);
        Data d = Data.of(r, p);
        int iters = 5;
        AutoRoundOptions o = new AutoRoundOptions(iters, 0.05, 0.1, SEQUENCES, G, 6);
        List<Double> got = new ArrayList<>();
        new SignRound(CFG, KERNELS, o).tune(p, d, SEQUENCES, 6, (i, loss) -> got.add(loss));

        FakeQuantizer fq = new FakeQuantizer(G);
        DecoderLayerGrad layer = new DecoderLayerGrad(CFG, KERNELS);
        SignSgd sgd = new SignSgd(0.05, 0.1, iters);
        BatchSampler sampler = new BatchSampler(SEQUENCES, SEQUENCES, 6);
        RoundingParams params = RoundingParams.initial(p, CFG.arch().linears(), G);
        int width = SEQ_LEN * CFG.hiddenSize();
        for (int i = 0; i < iters; i++) {
            LayerParams q = p;
            for (String m : CFG.arch().linears()) {
                RoundingParams.Linear x = params.get(m);
                q = q.with(m + ".weight", fq.forward(p.linear(m), x.v(), x.alpha(), x.beta()));
            }
            int[] batch = sampler.next();
            Tensor.F32 x = Tensor.f32(SEQUENCES * SEQ_LEN, CFG.hiddenSize());
            Tensor.F32 y = Tensor.f32(SEQUENCES * SEQ_LEN, CFG.hiddenSize());
            for (int s = 0; s < SEQUENCES; s++) {
                System.arraycopy(d.x().get(batch[s]), 0, x.data(), s * width, width);
                System.arraycopy(d.y().get(batch[s]), 0, y.data(), s * width, width);
            }
            DecoderLayerGrad.Trace t = layer.forward(q, x, SEQUENCES, SEQ_LEN);
            double loss = MseLoss.value(t.output(), y);
            assertEquals(loss, got.get(i), 1e-12 * loss, "step " + i);
            LayerParams g = q.map(Tensor::zerosLike);
            layer.backward(q, t, MseLoss.gradient(t.output(), y), g);
            for (String m : CFG.arch().linears()) {
                RoundingParams.Linear xm = params.get(m);
                RoundingParams.Linear gm = new RoundingParams.Linear(
                        xm.v().zerosLike(), xm.alpha().zerosLike(), xm.beta().zerosLike());
                fq.backward(p.linear(m), xm.v(), xm.alpha(), xm.beta(), g.linear(m), gm.v(), gm.alpha(), gm.beta());
                sgd.step(i, xm, gm);
            }
        }
    }

    /**
     * Micro-batches of one sequence give step 0 the batch's loss, and the gradients (hence the next steps) of the
     * whole batch up to summation order: the losses of the first steps agree to 1e−6 relative (fp32 sums over
     * 3072 outputs, ~1e−7 apart; a gradient scaled per micro-batch instead of per batch would be off by 6×).
     */
    @Test
    void microBatchesChangeOnlySummationOrder() {
        SplittableRandom r = new SplittableRandom(72);
        LayerParams p = layer(r);
        Data d = Data.of(r, p);
        AutoRoundOptions o = new AutoRoundOptions(3, 0.1, 0.1, SEQUENCES, G, 4);
        List<Double> whole = new ArrayList<>();
        List<Double> micro = new ArrayList<>();
        new SignRound(CFG, KERNELS, o).tune(p, d, SEQUENCES, 4, (i, loss) -> whole.add(loss));
        new SignRound(CFG, KERNELS, o).tune(p, d, 1, 4, (i, loss) -> micro.add(loss));
        for (int i = 0; i < 3; i++) {
            assertEquals(whole.get(i), micro.get(i), 1e-6 * whole.get(i), "step " + i);
        }
        assertNotEquals(
                whole.get(0), whole.get(1), "the steps moved the parameters, so steps 1 and 2 test the gradients");
    }
}
