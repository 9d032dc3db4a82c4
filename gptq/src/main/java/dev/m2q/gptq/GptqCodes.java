package dev.m2q.gptq;

/**
 * What GPTQ's column loop produces, the parts of a {@link dev.m2q.core.quant.QuantizedLinear}.
 *
 * @param codes [K, N] row-major, row c for original input channel c, each in [0, 15]
 * @param scales [K/G, N] fp32 (for static groups, the problem's {@link GptqProblem#staticScales} array itself)
 * @param gIdx [K]: the group of each original input channel
 */
public record GptqCodes(int[] codes, float[] scales, int[] gIdx) {}
