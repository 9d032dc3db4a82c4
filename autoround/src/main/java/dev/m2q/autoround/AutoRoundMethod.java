package dev.m2q.autoround;

import static dev.m2q.core.Seeds.GOLDEN;

import dev.m2q.core.grad.LayerParams;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.pipeline.ActivationStore;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
import dev.m2q.core.pipeline.MethodStats;
import dev.m2q.core.pipeline.ReportRow;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * AutoRound as a pipeline method: per decoder layer, {@link SignRound} tunes all the layer's linears jointly so
 * that the quantized layer, run on the quantized model's hidden states X̂ (the pipeline's stream), matches a target
 * Y, and the layer is released with the tuned codes. The target is chosen by {@link Target}: by default
 * ({@link Target#BF16_STREAM}, ALGORITHMS.md §3, as intel/auto-round runs with its quantized inputs) the BF16
 * layer's outputs on the BF16 model's own hidden states X, which the pipeline then carries as a second stream, so
 * each layer also learns to undo the error the layers before it left; with {@link Target#SAME_INPUT}, the BF16
 * layer's outputs on X̂ itself (one stream; each layer only matches its own BF16 twin).
 *
 * <p><b>Sampling.</b> Layer ℓ's batches come from a {@link BatchSampler} seeded with
 * {@code seed ^ ((ℓ + 1) · 0x9E3779B97F4A7C15)}, so a layer's batches depend only on --seed and its index, and a
 * resumed run draws what the uninterrupted one drew. Forward and backward run min(batch size, the pipeline's batch
 * of sequences) sequences at a time.
 *
 * <p><b>Report.</b> One row per linear (the layer's numbers repeated on each of its rows): {@code loss}, the block
 * MSE of the released layer over every calibration token; {@code loss_iter0}, the same for iteration 0 (RTN with
 * AutoRound's scale rule) — both through the pipeline's own forward, so they measure exactly what is written and
 * propagated; {@code batch_loss_iter0} and {@code batch_loss_best}, SignRound's step losses on their own batches
 * (AutoRound's "loss iter 0 → iter k"); {@code best_iter}; {@code codes_changed}, the fraction of this linear's
 * codes that differ from iteration 0's; {@code tune_s}, the SignRound loop, and {@code time_s}, the whole layer.
 */
public final class AutoRoundMethod implements LayerMethod {
    /** What each layer's quantized outputs (on the quantized stream X̂) are tuned to match. */
    public enum Target {
        /** The BF16 layer's outputs on the BF16 model's own hidden states (two streams). */
        BF16_STREAM("bf16-stream"),
        /** The BF16 layer's outputs on the quantized stream X̂ (one stream). */
        SAME_INPUT("same-input");

        /** The default: the better of the two on the fixture (docs/BENCHMARKS.md, issue 17). */
        public static final Target DEFAULT = BF16_STREAM;

        private final String id;

        Target(String id) {
            this.id = id;
        }

        /** The name {@code --autoround-target} takes. */
        public String id() {
            return id;
        }

        /** @throws dev.m2q.core.InputException naming the values when {@code id} is none of them */
        public static Target byId(String id) {
            for (Target t : values()) {
                if (t.id.equals(id)) {
                    return t;
                }
            }
            throw new dev.m2q.core.InputException(
                    "--autoround-target " + id + ": must be bf16-stream (the default) or same-input");
        }
    }

    private final AutoRoundOptions options;
    private final Target target;
    private final Bits bits;

    /** AutoRound with the {@link Target#DEFAULT} target. */
    public AutoRoundMethod(AutoRoundOptions options) {
        this(options, Target.DEFAULT);
    }

    public AutoRoundMethod(AutoRoundOptions options, Target target) {
        this(options, target, Bits.FOUR);
    }

    /** AutoRound with codes of {@code bits} (4 or 8). */
    public AutoRoundMethod(AutoRoundOptions options, Target target, Bits bits) {
        this.options = options;
        this.target = target;
        this.bits = bits;
    }

    @Override
    public boolean needsReferenceStream() {
        return target == Target.BF16_STREAM;
    }

    @Override
    public Map<String, Object> settings() {
        return Map.of("target", target.id());
    }

    @Override
    public String name() {
        return "autoround";
    }

    @Override
    public LayerResult quantize(LayerContext ctx) {
        long t0 = System.nanoTime();
        ctx.working("reference outputs");
        ActivationStore carried = ctx.referenceTargets();
        if (needsReferenceStream() && carried == null) {
            throw new IllegalStateException("AutoRound's bf16-stream target needs the pipeline's BF16 stream");
        }
        // The carried targets belong to the pipeline (the next layer's BF16 input); only our own are closed here.
        try (ActivationStore own = carried == null ? ctx.outputs(ctx.source()) : null) {
            ActivationStore y = carried != null ? carried : own;
            LayerParams base = LayerParams.of(ctx.source());
            ctx.working("iteration-0 block loss");
            SignRound signRound = new SignRound(ctx.config(), ctx.kernels(), options, bits);
            Baseline iter0 = baseline(ctx, y, signRound.iterationZero(base));
            double lossBefore = iter0.loss();

            long tune0 = System.nanoTime();
            SignRound.Calibration data = new SignRound.Calibration() {
                @Override
                public int samples() {
                    return ctx.samples();
                }

                @Override
                public int seqLen() {
                    return ctx.seqLen();
                }

                @Override
                public float[] input(int sample) {
                    return ctx.input(sample);
                }

                @Override
                public float[] target(int sample) {
                    return y.get(sample);
                }
            };
            int iters = options.iters();
            SignRound.Result r = signRound.tune(
                    base,
                    data,
                    Math.min(options.batchSize(), ctx.batchSequences()),
                    options.seed() ^ ((ctx.layer() + 1) * GOLDEN),
                    (i, loss) -> ctx.working(
                            String.format(Locale.ROOT, "signround %d/%d, batch loss %.4g", i + 1, iters, loss)));
            double tuneSeconds = (System.nanoTime() - tune0) / 1e9;
            ctx.working("tuned block loss");
            double lossAfter = blockLoss(ctx, y, r.linears());
            double seconds = (System.nanoTime() - t0) / 1e9;
            ctx.info(String.format(
                    Locale.ROOT,
                    "layer %d/%d: block loss (%s target) %.6g at iteration 0 → %.6g tuned (%+.1f%%; best batch at"
                            + " step %d of %d), %.1f s",
                    ctx.layer() + 1,
                    ctx.config().numLayers(),
                    target.id(),
                    lossBefore,
                    lossAfter,
                    100 * (lossAfter - lossBefore) / lossBefore,
                    r.bestStep(),
                    iters,
                    seconds));

            List<ReportRow> report = new ArrayList<>();
            for (String module : ctx.config().arch().linears()) {
                report.add(new ReportRow(
                        ctx.layer(),
                        ctx.config().arch().module(ctx.layer(), module),
                        lossAfter,
                        seconds,
                        new MethodStats.AutoRoundStats(
                                lossBefore,
                                iters,
                                r.bestStep(),
                                r.firstLoss(),
                                r.bestLoss(),
                                changed(
                                        iter0.codes().get(module),
                                        r.linears().get(module).codes()),
                                tuneSeconds)));
            }
            return new LayerResult(r.linears(), report);
        }
    }

    /**
     * Iteration 0's block loss and codes; the codes as bytes, a quarter of the size, since they are kept while the
     * layer is tuned (0.5 GB instead of 2 at the 32B shapes).
     */
    private record Baseline(double loss, Map<String, byte[]> codes) {}

    private static Baseline baseline(LayerContext ctx, ActivationStore y, Map<String, QuantizedLinear> rtn) {
        Map<String, byte[]> codes = new LinkedHashMap<>();
        rtn.forEach((m, q) -> codes.put(m, bytes(q.codes())));
        return new Baseline(blockLoss(ctx, y, rtn), codes);
    }

    /** MSE between the layer's outputs with {@code linears} and Y, over every calibration token. */
    private static double blockLoss(LayerContext ctx, ActivationStore y, Map<String, QuantizedLinear> linears) {
        DecoderLayer.Weights w = ctx.source();
        for (Map.Entry<String, QuantizedLinear> e : linears.entrySet()) {
            QuantizedLinear q = e.getValue();
            w = w.with(e.getKey(), new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
        }
        double[] squares = new double[1];
        int width = y.width();
        ctx.forEachOutput(w, (first, count, out) -> {
            for (int s = 0; s < count; s++) {
                float[] target = y.get(first + s);
                for (int i = 0; i < width; i++) {
                    double d = out[s * width + i] - target[i];
                    squares[0] += d * d;
                }
            }
        });
        return squares[0] / ((double) y.samples() * width);
    }

    private static byte[] bytes(int[] codes) {
        byte[] b = new byte[codes.length];
        for (int i = 0; i < codes.length; i++) {
            b[i] = (byte) codes[i];
        }
        return b;
    }

    private static double changed(byte[] before, int[] after) {
        int n = 0;
        for (int i = 0; i < before.length; i++) {
            if (before[i] != after[i]) {
                n++;
            }
        }
        return (double) n / before.length;
    }
}
