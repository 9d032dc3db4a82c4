package dev.m2q.gptq;

import dev.m2q.core.quant.QuantizedLinear;
import java.time.Duration;
import java.util.List;

/**
 * What {@link Gptq#quantize} produced for one linear, and the numbers its report row needs.
 *
 * @param q the codes, fp16 scales and g_idx, in the original column order
 * @param proxyLoss tr((W − Ŵ)·H·(W − Ŵ)ᵀ)/N with the damped H the loop ran on: the loop's own Σ Err²/N
 *     ({@link GptqCodes#errSquares}), free
 * @param sampledLoss the same with the undamped H on a sample of rows ({@link Gptq#sampledLoss}) when {@link
 *     GptqOptions#exactLossRows} asked for it, else NaN
 * @param dampUsed the λ the Cholesky finally succeeded with
 * @param fallbacks automatic recoveries, one sentence each, for the log and the report (empty when none)
 * @param time wall time of the quantization (factorization included, the sampled loss excluded)
 */
public record GptqResult(
        QuantizedLinear q,
        double proxyLoss,
        double sampledLoss,
        double dampUsed,
        List<String> fallbacks,
        Duration time) {
    public GptqResult {
        fallbacks = List.copyOf(fallbacks);
    }
}
