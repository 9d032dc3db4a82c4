package dev.m2q.gptq;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
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

    @Override
    public String name() {
        return "gptq";
    }

    @Override
    public LayerResult quantize(LayerContext ctx) {
        List<List<String>> groups = ctx.config().arch().sequentialGroups();
        DecoderLayer.Weights current = ctx.source();
        Map<String, QuantizedLinear> done = new LinkedHashMap<>();
        List<Map<String, Object>> report = new ArrayList<>();
        Map<String, Float> amax = new HashMap<>();
        Map<String, float[]> hessians = trueSequential ? Map.of() : hessians(ctx, current, groups, amax);
        for (List<String> group : groups) {
            String lead = group.getFirst();
            float[] h;
            if (trueSequential) {
                ctx.working("calibrate " + String.join("+", group));
                h = hessians(ctx, current, List.of(group), amax).get(lead);
            } else {
                h = hessians.get(lead);
            }
            for (String module : group) {
                ctx.working(module);
                Matrix w = current.linear(module);
                GptqResult r = Gptq.quantize(w.toFloatArray(), w.rows(), w.cols(), h, options, ctx.kernels());
                QuantizedLinear q = r.q();
                done.put(module, q);
                current = current.with(module, new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("layer", ctx.layer());
                row.put("module", ctx.config().arch().module(ctx.layer(), module));
                row.put("method", "gptq");
                row.put("loss", r.proxyLoss());
                row.put("damp", r.dampUsed());
                row.put("fallbacks", r.fallbacks());
                row.put("act_amax", amax.get(lead));
                row.put("time_s", r.time().toNanos() / 1e9);
                report.add(row);
            }
        }
        return new LayerResult(done, report);
    }

    /**
     * One pass of the layer with {@code weights}, accumulating the input Hessian of each group's lead linear and
     * the absolute maximum of that input over all calibration tokens (into {@code amax}, for the report).
     */
    private static Map<String, float[]> hessians(
            LayerContext ctx, DecoderLayer.Weights weights, List<List<String>> groups, Map<String, Float> amax) {
        Map<String, HessianAccumulator> acc = new HashMap<>();
        for (List<String> g : groups) {
            acc.put(
                    g.getFirst(),
                    new HessianAccumulator(weights.linear(g.getFirst()).cols(), ctx.kernels()));
        }
        ctx.run(weights, new LayerObserver() {
            @Override
            public void linearInput(String module, float[] x, int rows, int cols) {
                HessianAccumulator a = acc.get(module);
                if (a != null) {
                    a.add(x, rows);
                    float[] columns = new float[cols];
                    ctx.kernels().absMaxColumns(x, 0, rows, cols, columns, 0);
                    float m = amax.getOrDefault(module, 0f);
                    for (float c : columns) {
                        m = Math.max(m, c);
                    }
                    amax.put(module, m);
                }
            }
        });
        Map<String, float[]> out = new HashMap<>();
        acc.forEach((m, a) -> out.put(m, a.hessian()));
        return out;
    }
}
