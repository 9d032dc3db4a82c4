/**
 * Hand-written backward passes for training through a decoder layer (SignRound in AutoRound, the EAGLE-3 draft
 * head): each op a forward with the activations its backward needs, and a backward that adds gradients
 * ({@link dev.m2q.core.grad.Linear}, {@link dev.m2q.core.grad.RmsNorm}, {@link dev.m2q.core.grad.RotaryEmbedding},
 * {@link dev.m2q.core.grad.CausalAttention}, {@link dev.m2q.core.grad.SwiGlu}, {@link dev.m2q.core.grad.MseLoss},
 * SignRound's straight-through {@link dev.m2q.core.grad.FakeQuantizer}), composed into a Qwen2 layer by
 * {@link dev.m2q.core.grad.DecoderLayerGrad}. Everything is written once over {@link dev.m2q.core.grad.Tensor}, so
 * the same code runs in fp64 for the finite-difference checks and in fp32, on the kernels, in production.
 */
package dev.m2q.core.grad;
