package dev.m2q.autoround;

import dev.m2q.core.grad.DecoderLayerGrad;
import dev.m2q.core.grad.FakeQuantizer;
import dev.m2q.core.grad.LayerParams;
import dev.m2q.core.grad.MseLoss;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SignRound (Cheng et al., 2023; ALGORITHMS.md §3) on one decoder layer: all its linears W are replaced by
 * fake-quantized ŵ = FQ(W; V, α, β), and V, α, β are tuned jointly by signed gradient descent on the block loss
 * L = MSE(layer_ŵ(X), Y), where X are the layer's calibration inputs and Y the unquantized layer's outputs on them.
 *
 * <pre>
 * V ← 0, α ← 1, β ← 1                                    (step 0 evaluates RTN with AutoRound's scale rule)
 * for i in 0 .. iters−1:
 *     B  ← the sampler's next batch of sequences
 *     ŵ  ← FQ(W; V, α, β) for every linear
 *     Lᵢ ← MSE(layer_ŵ(X_B), Y_B);  ∂L/∂ŵ by the layer's backward   (micro-batches, gradients summed)
 *     if Lᵢ < best: best ← Lᵢ, keep ŵ's codes and scales
 *     ∂L/∂V, ∂L/∂α, ∂L/∂β ← FQ's straight-through backward
 *     V, α, β ← SignSgd step i (not after the last step: its result would never be measured)
 * </pre>
 *
 * <p>As in AutoRound, "best" compares each step's loss on that step's own batch, and the parameters kept are the
 * ones that loss was measured with: their ŵ, as codes that dequantize to it exactly ({@link ExactCodes}).
 *
 * <p>Memory, beyond the layer's fp32 weights W: V, ŵ (rewritten in place each step) and the layer's weight
 * gradients, each the size of W; the best step's codes, a byte per weight; ∂L/∂V for one linear at a time; and one
 * micro-batch's training trace ({@link DecoderLayerGrad}). At the 32B shapes (487.6 M weights) that is
 * 4 × 1.95 GB + 0.49 GB + 0.69 GB plus the trace.
 */
public final class SignRound {
    private final ModelConfig cfg;
    private final AutoRoundOptions opts;
    private final DecoderLayerGrad layer;
    private final FakeQuantizer fq;
    private final Bits bits;

    /** A layer's calibration data: inputs X and targets Y per sequence, each [seqLen, hidden] fp32. */
    public interface Calibration {
        int samples();

        int seqLen();

        float[] input(int sample);

        float[] target(int sample);
    }

    /** Told after each step's loss is known (progress bars). */
    @FunctionalInterface
    public interface Listener {
        void step(int step, double batchLoss);
    }

    /**
     * The tuned layer.
     *
     * @param linears by module: the codes of the kept ŵ (the best step's, or RTN's when iters is 0)
     * @param firstLoss step 0's batch loss (RTN with AutoRound's scale rule on the first batch); NaN when iters is 0
     * @param bestLoss the lowest batch loss seen, the one {@code linears} were measured with; NaN when iters is 0
     * @param bestStep the step that loss was measured at (0 when iters is 0)
     */
    public record Result(Map<String, QuantizedLinear> linears, double firstLoss, double bestLoss, int bestStep) {}

    public SignRound(ModelConfig cfg, Kernels kernels, AutoRoundOptions opts) {
        this(cfg, kernels, opts, Bits.FOUR);
    }

    /** SignRound with codes of {@code bits} (4 or 8: {@link FakeQuantizer}'s range and {@link ExactCodes}'). */
    public SignRound(ModelConfig cfg, Kernels kernels, AutoRoundOptions opts, Bits bits) {
        this.cfg = cfg;
        this.opts = opts;
        this.layer = new DecoderLayerGrad(cfg, kernels);
        this.fq = new FakeQuantizer(opts.groupSize(), bits);
        this.bits = bits;
    }

    /**
     * Tunes every linear of {@code base} (fp32 layer parameters) on {@code data}; forward and backward run
     * {@code microBatch} sequences at a time.
     *
     * @param seed the batch sampler's seed ({@link BatchSampler})
     */
    public Result tune(LayerParams base, Calibration data, int microBatch, long seed, Listener listener) {
        List<String> modules = cfg.arch().linears();
        if (opts.iters() == 0) {
            return new Result(iterationZero(base), Double.NaN, Double.NaN, 0);
        }
        RoundingParams params = RoundingParams.initial(base, modules, opts.groupSize());
        SignSgd sgd = new SignSgd(opts.lr(), opts.minmaxLr(), opts.iters());
        BatchSampler sampler = new BatchSampler(data.samples(), opts.batchSize(), seed);
        Map<String, Tensor> wq = new LinkedHashMap<>();
        for (String m : modules) {
            wq.put(m, base.linear(m).zerosLike());
        }
        LayerParams p = withWeights(base, wq); // ŵ is rewritten in place each step
        LayerParams weightGrads = p.map(Tensor::zerosLike);
        Scratch scratch = new Scratch();
        Map<String, byte[]> bestCodes = new LinkedHashMap<>();
        Map<String, Tensor> bestScales = new LinkedHashMap<>();
        double bestLoss = Double.POSITIVE_INFINITY;
        double firstLoss = Double.NaN;
        int bestStep = 0;
        for (int i = 0; i < opts.iters(); i++) {
            for (String m : modules) {
                RoundingParams.Linear x = params.get(m);
                fq.forward(base.linear(m), x.v(), x.alpha(), x.beta(), wq.get(m));
            }
            for (Tensor t : weightGrads.tensors()) {
                if (t != null) {
                    t.clear();
                }
            }
            double loss = lossAndGradients(p, data, sampler.next(), microBatch, weightGrads);
            if (i == 0) {
                firstLoss = loss;
            }
            if (loss < bestLoss) {
                bestLoss = loss;
                bestStep = i;
                for (String m : modules) {
                    RoundingParams.Linear x = params.get(m);
                    Tensor s = fq.scales(base.linear(m), x.alpha(), x.beta());
                    byte[] codes =
                            bestCodes.computeIfAbsent(m, k -> new byte[wq.get(k).size()]);
                    ExactCodes.codes(wq.get(m), s, opts.groupSize(), codes, bits);
                    bestScales.put(m, s);
                }
            }
            listener.step(i, loss);
            if (i + 1 < opts.iters()) {
                for (String m : modules) {
                    RoundingParams.Linear x = params.get(m);
                    RoundingParams.Linear g = scratch.zeroGradients(x);
                    fq.backward(
                            base.linear(m),
                            x.v(),
                            x.alpha(),
                            x.beta(),
                            weightGrads.linear(m),
                            g.v(),
                            g.alpha(),
                            g.beta());
                    sgd.step(i, x, g);
                }
            }
        }
        if (bestCodes.isEmpty()) {
            throw new IllegalStateException("SignRound's block loss is " + firstLoss + " at step 0: the layer's"
                    + " calibration inputs or weights are not finite");
        }
        Map<String, QuantizedLinear> out = new LinkedHashMap<>();
        for (String m : modules) {
            out.put(m, ExactCodes.of(bestCodes.get(m), bestScales.get(m), opts.groupSize(), bits));
        }
        return new Result(out, firstLoss, bestLoss, bestStep);
    }

    /**
     * Gradient buffers for one linear at a time, reused across linears and steps: per role (∂L/∂V, ∂L/∂α, ∂L/∂β —
     * never aliased, though α and β have one shape) one array per distinct size; at the 32B shapes 173 M floats for
     * the seven linears' ∂L/∂V instead of 488 M.
     */
    private static final class Scratch {
        private final List<Map<Integer, float[]>> pools = List.of(new HashMap<>(), new HashMap<>(), new HashMap<>());

        RoundingParams.Linear zeroGradients(RoundingParams.Linear like) {
            return new RoundingParams.Linear(zeros(0, like.v()), zeros(1, like.alpha()), zeros(2, like.beta()));
        }

        private Tensor zeros(int role, Tensor like) {
            float[] data = pools.get(role).computeIfAbsent(like.size(), float[]::new);
            Tensor t = new Tensor.F32(data, like.rows(), like.cols());
            t.clear();
            return t;
        }
    }

    /**
     * Step 0's codes, V = 0 and α = β = 1: RTN with AutoRound's scale rule (the result of {@code --iters 0}, and the
     * baseline the tuned layer is compared with).
     */
    public Map<String, QuantizedLinear> iterationZero(LayerParams base) {
        RoundingParams start = RoundingParams.initial(base, cfg.arch().linears(), opts.groupSize());
        return export(fakeQuantize(base, start), scales(base, start));
    }

    /**
     * The batch's loss MSE(layer_p(X_B), Y_B) over all its elements; adds ∂L/∂(every parameter) into grads, running
     * micro-batches whose gradients sum to the batch's (each scaled by the batch's element count).
     */
    private double lossAndGradients(LayerParams p, Calibration data, int[] batch, int microBatch, LayerParams grads) {
        int width = data.seqLen() * cfg.hiddenSize();
        long total = (long) batch.length * width;
        double squares = 0;
        for (int from = 0; from < batch.length; from += microBatch) {
            int count = Math.min(microBatch, batch.length - from);
            float[] x = new float[count * width];
            float[] y = new float[count * width];
            for (int s = 0; s < count; s++) {
                System.arraycopy(data.input(batch[from + s]), 0, x, s * width, width);
                System.arraycopy(data.target(batch[from + s]), 0, y, s * width, width);
            }
            int rows = count * data.seqLen();
            Tensor target = new Tensor.F32(y, rows, cfg.hiddenSize());
            DecoderLayerGrad.Trace t =
                    layer.forward(p, new Tensor.F32(x, rows, cfg.hiddenSize()), count, data.seqLen());
            squares += MseLoss.value(t.output(), target) * t.output().size();
            layer.backward(p, t, MseLoss.gradient(t.output(), target, total), grads);
        }
        return squares / total;
    }

    private Map<String, Tensor> fakeQuantize(LayerParams base, RoundingParams params) {
        Map<String, Tensor> wq = new LinkedHashMap<>();
        for (String m : params.modules()) {
            RoundingParams.Linear x = params.get(m);
            wq.put(m, fq.forward(base.linear(m), x.v(), x.alpha(), x.beta()));
        }
        return wq;
    }

    private Map<String, Tensor> scales(LayerParams base, RoundingParams params) {
        Map<String, Tensor> s = new LinkedHashMap<>();
        for (String m : params.modules()) {
            RoundingParams.Linear x = params.get(m);
            s.put(m, fq.scales(base.linear(m), x.alpha(), x.beta()));
        }
        return s;
    }

    private Map<String, QuantizedLinear> export(Map<String, Tensor> wq, Map<String, Tensor> scales) {
        Map<String, QuantizedLinear> out = new LinkedHashMap<>();
        wq.forEach((m, w) -> out.put(m, ExactCodes.of(w, scales.get(m), opts.groupSize(), bits)));
        return out;
    }

    private static LayerParams withWeights(LayerParams base, Map<String, Tensor> wq) {
        LayerParams p = base;
        for (Map.Entry<String, Tensor> e : wq.entrySet()) {
            p = p.with(e.getKey() + ".weight", e.getValue());
        }
        return p;
    }
}
