package dev.m2q.core.pipeline;

import dev.m2q.core.quant.QuantizedLinear;
import java.util.List;
import java.util.Map;

/**
 * What a method produced for one layer.
 *
 * @param linears quantized weights by module name relative to the layer ("mlp.up_proj"), every linear of the
 *     layer present
 * @param report one row per module for {@code m2q-report.jsonl} (method, loss, damping, fallbacks, time, …)
 */
public record LayerResult(Map<String, QuantizedLinear> linears, List<Map<String, Object>> report) {
    public LayerResult {
        linears = Map.copyOf(linears);
        report = List.copyOf(report);
    }
}
