package dev.m2q.gptq;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
import dev.m2q.core.pipeline.MethodStats;
import dev.m2q.core.pipeline.ReportRow;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * GPTQ as a pipeline method. With true-sequential (the default) the layer's linears are quantized in the
 * ArchSpec's groups — [q, k, v] → [o] → [gate, up] → [down] — and before each group the layer is run again with
 * the groups already quantized, so each group's Hessian is built from the inputs it will really see. Linears in
 * one group share an input and so one Hessian.
 */
public final class GptqMethod implements LayerMethod {
    private final GptqOptions options;
    private final boolean trueSequential;

    public GptqMethod(GptqOptions options, boolean trueSequential) {
        this.options = options;
        this.trueSequential = trueSequential;
    }

    /**
     * {@code clip_search: "loop-loss"} with the clipping search: GPTQ's search picks each row's scale rule by the
     * loop's loss (issue 17), so a progress file of a build whose search used the 2.4-norm alone ({@code true}) is
     * refused on resume rather than mixed with it.
     */
    @Override
    public Map<String, Object> settings() {
        return options.clipSearch() ? Map.of("clip_search", "loop-loss") : Map.of();
    }

    @Override
    public String name() {
        return "gptq";
    }

    /**
     * One group's Hessian and the factorization's working set at the widest input (the damped copy and its
     * Cholesky factor, W1), the dequantized weights of the whole layer (fp32), and with true-sequential off all
     * four Hessians at once.
     */
    @Override
    public long residentBytes(ModelConfig cfg) {
        long h = cfg.hiddenSize(), q = cfg.qDim(), kv = cfg.kvDim(), i = cfg.intermediateSize();
        long maxK = Math.max(Math.max(h, q), i);
        long hessians = trueSequential ? 4 * maxK * maxK : 4 * (3 * h * h + i * i);
        long factor = 2 * 4 * maxK * maxK + 4 * maxK * Math.max(h, i);
        long dequantized = 4 * (q * h + 2 * kv * h + h * q + 3 * i * h);
        return hessians + factor + dequantized;
    }

    /**
     * Everything on the context's backend: the Hessians accumulate and are finished there, each linear is
     * quantized there ({@link GptqKernels#quantize}), and its dequantized weight replaces the source's in the
     * resident layer for the next group's pass and for the pipeline's outputs pass ({@link LayerResult#weights}),
     * so only codes, scales, g_idx, H's diagonal and the report's numbers cross.
     */
    @Override
    public LayerResult quantize(LayerContext ctx) {
        GptqKernels gk = GptqKernels.of(ctx.kernels());
        List<List<String>> groups = ctx.config().arch().sequentialGroups();
        DecoderLayer.Resident current = ctx.resident();
        Map<String, QuantizedLinear> done = new LinkedHashMap<>();
        List<ReportRow> report = new ArrayList<>();
        Map<String, Buf> all = trueSequential ? Map.of() : hessians(ctx, gk, current, groups);
        try {
            for (List<String> group : groups) {
                String lead = group.getFirst();
                Buf h;
                if (trueSequential) {
                    ctx.working("calibrate " + String.join("+", group));
                    h = hessians(ctx, gk, current, List.of(group)).get(lead);
                } else {
                    h = all.get(lead);
                }
                try {
                    for (String module : group) {
                        ctx.working(module);
                        GptqKernels.Resident rq = gk.quantize(ctx.backend(), current.linear(module), h, options);
                        current = current.with(module, ctx.keep(rq.dequantized()));
                        GptqResult r = rq.result();
                        done.put(module, r.q());
                        report.add(new ReportRow(
                                ctx.layer(),
                                ctx.config().arch().module(ctx.layer(), module),
                                r.proxyLoss(),
                                r.time().toNanos() / 1e9,
                                new MethodStats.GptqStats(r.dampUsed(), r.fallbacks(), r.sampledLoss())));
                    }
                } finally {
                    if (trueSequential) {
                        h.close();
                    }
                }
            }
        } finally {
            all.values().forEach(Buf::close);
        }
        return new LayerResult(done, report, current);
    }

    /**
     * One pass of the layer with {@code weights}, accumulating on the backend the input Hessian of each group's
     * lead linear, and stopping each batch's forward once every one of them has been seen (the rest of the layer
     * is not needed). The inputs' ranges are calibrated by the pipeline itself, for every method. The caller owns
     * the returned buffers.
     */
    private static Map<String, Buf> hessians(
            LayerContext ctx, GptqKernels gk, DecoderLayer.Resident weights, List<List<String>> groups) {
        Map<String, HessianAccumulator> acc = new LinkedHashMap<>();
        Map<String, Buf> out = new HashMap<>();
        try {
            for (List<String> g : groups) {
                acc.put(
                        g.getFirst(),
                        new HessianAccumulator(weights.linear(g.getFirst()).cols(), ctx.backend(), gk));
            }
            LayerObserver inputs = new LayerObserver() {
                private int seen;

                @Override
                public void linearInput(String module, Backend backend, Buf x, int rows, int cols) {
                    HessianAccumulator a = acc.get(module);
                    if (a != null) {
                        a.add(x, rows);
                        seen++;
                    }
                }

                @Override
                public void keysValues(Backend backend, Buf k, Buf v, int rows, int kvDim) {}

                @Override
                public boolean enough() {
                    if (seen < acc.size()) {
                        return false;
                    }
                    seen = 0; // the forward stops here; the next batch starts over
                    return true;
                }
            };
            // One group's pass starts where the previous group's pass left the layer (the same weights up to there:
            // LayerContext#run with a midpoint); several groups at once need the whole layer.
            ctx.run(
                    weights,
                    inputs,
                    groups.size() == 1
                            ? DecoderLayer.Midpoint.before(groups.getFirst().getFirst())
                            : null);
            for (Map.Entry<String, HessianAccumulator> e : acc.entrySet()) {
                out.put(e.getKey(), e.getValue().finish());
            }
            return out;
        } catch (RuntimeException | Error e) {
            out.values().forEach(Buf::close);
            throw e;
        } finally {
            acc.values().forEach(HessianAccumulator::close);
        }
    }
}
