/**
 * GPTQ (Frantar et al., 2022) for 4-bit symmetric weights: {@link dev.m2q.gptq.HessianAccumulator} collects
 * H = (2/T)·Σ x xᵀ per linear input, {@link dev.m2q.gptq.DampedCholesky} turns it into the upper Cholesky factor
 * of the damped H⁻¹, {@link dev.m2q.gptq.ActOrder} optionally reorders the columns, and {@link dev.m2q.gptq.Gptq}
 * runs the blocked quantize-and-compensate loop ({@link dev.m2q.gptq.GptqLoop}). The Cholesky inverse and the
 * loop run on {@link dev.m2q.gptq.GptqKernels}: a device backend's when it offers them, else the Java reference
 * {@link dev.m2q.gptq.JavaGptqKernels} over core's kernels. Round to nearest, the baseline and the per-column
 * rule, lives in core ({@code dev.m2q.core.quant.Rtn}) next to the format it produces.
 */
package dev.m2q.gptq;
