package dev.m2q.gptq;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.pipeline.LayerContext;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.LayerResult;
import dev.m2q.core.pipeline.MethodStats;
import dev.m2q.core.pipeline.ReportRow;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GroupSize;
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Round-to-nearest: the baseline. Needs no calibration data; its report row gives the mean squared weight error
 * (there is no Hessian to weigh it with).
 */
public final class RtnMethod implements LayerMethod {
    private final int groupSize;
    private final boolean clipSearch;
    private final Bits bits;

    /** @param groupSize G, or -1 ({@link GroupSize#PER_ROW}): one group of each linear's whole row */
    public RtnMethod(int groupSize) {
        this(groupSize, false);
    }

    /**
     * @param groupSize G, or -1 ({@link GroupSize#PER_ROW}): one group of each linear's whole row
     * @param clipSearch each group's scale from {@link dev.m2q.core.quant.ClipSearch} instead of its absmax
     */
    public RtnMethod(int groupSize, boolean clipSearch) {
        this(groupSize, clipSearch, Bits.FOUR);
    }

    /**
     * @param groupSize G, or -1 ({@link GroupSize#PER_ROW}): one group of each linear's whole row
     * @param clipSearch each group's scale from {@link dev.m2q.core.quant.ClipSearch} instead of its absmax
     * @param bits the code width, 4 or 8
     */
    public RtnMethod(int groupSize, boolean clipSearch, Bits bits) {
        this.groupSize = groupSize;
        this.clipSearch = clipSearch;
        this.bits = bits;
    }

    @Override
    public Map<String, Object> settings() {
        return clipSearch ? Map.of("clip_search", true) : Map.of();
    }

    @Override
    public String name() {
        return "rtn";
    }

    @Override
    public LayerResult quantize(LayerContext ctx) {
        Map<String, QuantizedLinear> done = new LinkedHashMap<>();
        List<ReportRow> report = new ArrayList<>();
        for (String module : ctx.config().arch().linears()) {
            ctx.working(module);
            long t0 = System.nanoTime();
            Matrix w = ctx.source().linear(module);
            float[] wf = w.toFloatArray();
            QuantizedLinear q =
                    Rtn.quantize(wf, w.rows(), w.cols(), GroupSize.resolve(groupSize, w.cols()), bits, clipSearch);
            float[] dq = q.dequantize();
            double se = 0;
            for (int i = 0; i < wf.length; i++) {
                double d = wf[i] - dq[i];
                se += d * d;
            }
            done.put(module, q);
            report.add(new ReportRow(
                    ctx.layer(),
                    ctx.config().arch().module(ctx.layer(), module),
                    se / wf.length,
                    (System.nanoTime() - t0) / 1e9,
                    new MethodStats.RtnStats()));
        }
        return new LayerResult(done, report);
    }
}
