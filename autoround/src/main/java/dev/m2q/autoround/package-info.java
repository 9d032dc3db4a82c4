/**
 * AutoRound (SignRound: Cheng et al., 2023; ALGORITHMS.md §3): per decoder layer, {@link dev.m2q.autoround.SignRound}
 * tunes each linear's rounding offsets V and clip factors α, β ({@link dev.m2q.autoround.RoundingParams}) by signed
 * gradient descent ({@link dev.m2q.autoround.SignSgd}) on the block's output error, through core's hand-written
 * backward pass ({@code dev.m2q.core.grad}); {@link dev.m2q.autoround.ExactCodes} turns the tuned fake-quantized
 * weights into the GPTQ layout's codes and scales; {@link dev.m2q.autoround.AutoRoundMethod} runs it in the layer
 * pipeline with the settings of {@link dev.m2q.autoround.AutoRoundOptions} and {@link dev.m2q.autoround.Recipe}.
 */
package dev.m2q.autoround;
