package dev.m2q.gptq;

import dev.m2q.core.quant.QuantizedLinear;
import java.time.Duration;
import java.util.List;

/**
 * What {@link Gptq#quantize} produced for one linear, and the numbers its report row needs.
 *
 * @param q the codes, fp16 scales and g_idx, in the original column order
 * @param proxyLoss tr((W − Ŵ)·H·(W − Ŵ)ᵀ)/N with the undamped H
 * @param dampUsed the λ the Cholesky finally succeeded with
 * @param fallbacks automatic recoveries, one sentence each, for the log and the report (empty when none)
 * @param time wall time of the quantization (factorization included, proxy loss excluded)
 */
public record GptqResult(QuantizedLinear q, double proxyLoss, double dampUsed, List<String> fallbacks, Duration time) {
    public GptqResult {
        fallbacks = List.copyOf(fallbacks);
    }
}
