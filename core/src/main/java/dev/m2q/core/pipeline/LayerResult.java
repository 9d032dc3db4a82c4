package dev.m2q.core.pipeline;

import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.List;
import java.util.Map;

/**
 * What a method produced for one layer.
 *
 * @param linears quantized weights by module name relative to the layer ("mlp.up_proj"), every linear of the
 *     layer present
 * @param report the method's row per module for {@code m2q-report.jsonl}, without the input's ranges (the
 *     pipeline adds them)
 * @param weights the layer with every linear replaced by its dequantized weights, resident on the context's
 *     backend and owned by the context (freed at the layer's end), bit for bit {@code linears}' {@link
 *     QuantizedLinear#dequantize()}: the pipeline's outputs pass then runs on them, so they never cross; null
 *     when the method kept none (the pipeline uploads the dequantized weights)
 */
public record LayerResult(Map<String, QuantizedLinear> linears, List<ReportRow> report, DecoderLayer.Resident weights) {
    public LayerResult {
        linears = Map.copyOf(linears);
        report = List.copyOf(report);
    }

    /** A result without resident weights. */
    public LayerResult(Map<String, QuantizedLinear> linears, List<ReportRow> report) {
        this(linears, report, null);
    }
}
