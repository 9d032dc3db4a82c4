package dev.m2q.core.model;

import dev.m2q.core.kernels.Backend;

/**
 * Sees the tensors a decoder layer computes, for calibration (Hessians, activation ranges, KV scales). The
 * arrays and buffers are the layer's working buffers: read them during the call, never keep them or write them.
 *
 * <p>The forward calls the resident methods (a {@link Backend.Buf} on the layer's backend). An observer that works
 * on the backend (a Hessian's syrk, a running absmax) overrides those; the defaults show the host-array methods
 * the buffer's values, which on a device backend is a crossing ({@link Backend#inspect}).
 */
public interface LayerObserver {
    /** The input of linear {@code module} (e.g. "mlp.down_proj"): x [rows, cols] fp32 row-major. */
    default void linearInput(String module, float[] x, int rows, int cols) {}

    /**
     * Keys after RoPE and values of this call's tokens: k, v [rows, kvHeads·headDim] fp32 row-major.
     */
    default void keysValues(float[] k, float[] v, int rows, int kvDim) {}

    /** The input of linear {@code module}, x [rows, cols] on {@code backend}; by default shown to the host method. */
    default void linearInput(String module, Backend backend, Backend.Buf x, int rows, int cols) {
        backend.inspect(x, a -> linearInput(module, a, rows, cols));
    }

    /** Keys and values on {@code backend}, [rows, kvDim] each; by default shown to the host method. */
    default void keysValues(Backend backend, Backend.Buf k, Backend.Buf v, int rows, int kvDim) {
        backend.inspect(k, kh -> backend.inspect(v, vh -> keysValues(kh, vh, rows, kvDim)));
    }

    /**
     * A {@link DecoderLayer.Midpoint}'s values [rows, cols] on {@code backend}, when the pass computes them (before the
     * next linear input is shown); by default ignored.
     */
    default void midpoint(DecoderLayer.Midpoint at, Backend backend, Backend.Buf values, int rows, int cols) {}

    /**
     * Asked after each observation: true when this observer has what it needs from the current call, so the
     * layer may stop early (the forward then returns null). Calibration passes that only need one group's
     * inputs skip the rest of the layer this way.
     */
    default boolean enough() {
        return false;
    }

    /** Sees nothing (and makes a device backend read nothing back). */
    LayerObserver NONE = new LayerObserver() {
        @Override
        public void linearInput(String module, Backend backend, Backend.Buf x, int rows, int cols) {}

        @Override
        public void keysValues(Backend backend, Backend.Buf k, Backend.Buf v, int rows, int kvDim) {}
    };
}
