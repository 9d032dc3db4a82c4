package dev.m2q.core.model;

import java.util.List;

/**
 * Simulated low-precision activations in the reference forward: a {@link DecoderLayer} hands each linear input
 * and, after RoPE, its keys and values to this hook, which may replace them in place by their fake-quantized
 * values (ALGORITHMS.md §4: validation simulates 8-bit activations and an FP8 KV cache). The layer then computes
 * with whatever the arrays hold. {@link #NONE} leaves everything in fp32.
 */
public interface ActivationQuant {
    /**
     * The input x [rows, cols] fp32 row-major that the linears {@code modules} of layer {@code layer} share
     * (q/k/v, o, gate/up or down, by name relative to the layer).
     */
    default void linearInput(int layer, List<String> modules, float[] x, int rows, int cols) {}

    /**
     * Keys after RoPE and values of this call's tokens, k and v [rows, kvHeads·headDim], before they enter
     * attention (and the KV cache).
     */
    default void keysValues(int layer, float[] k, float[] v, int rows, int kvHeads, int headDim) {}

    ActivationQuant NONE = new ActivationQuant() {};
}
