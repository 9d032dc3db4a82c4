package dev.m2q.core.model;

/**
 * Sees the tensors a decoder layer computes, for calibration (Hessians, activation ranges, KV scales). The
 * arrays are the layer's working buffers: read them during the call, never keep them.
 */
public interface LayerObserver {
    /** The input of linear {@code module} (e.g. "mlp.down_proj"): x [rows, cols] fp32 row-major. */
    default void linearInput(String module, float[] x, int rows, int cols) {}

    /**
     * Keys after RoPE and values of this call's tokens: k, v [rows, kvHeads·headDim] fp32 row-major.
     */
    default void keysValues(float[] k, float[] v, int rows, int kvDim) {}

    /**
     * Asked after each observation: true when this observer has what it needs from the current call, so the
     * layer may stop early (the forward then returns null). Calibration passes that only need one group's
     * inputs skip the rest of the layer this way.
     */
    default boolean enough() {
        return false;
    }

    LayerObserver NONE = new LayerObserver() {};
}
