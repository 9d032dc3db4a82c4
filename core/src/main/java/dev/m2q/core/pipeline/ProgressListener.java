package dev.m2q.core.pipeline;

/** Told where the pipeline is, for progress bars and logs. */
public interface ProgressListener {
    /** Work on {@code module} (e.g. "mlp.down_proj", or a phase like "calibrate") of layer {@code layer} began. */
    default void module(int layer, int layers, String module) {}

    /** Layer {@code layer} is written and recorded; {@code seconds} it took. */
    default void layerDone(int layer, int layers, double seconds) {}

    /** A line for the log (resumes, spills, fallbacks). */
    default void info(String line) {}

    ProgressListener NONE = new ProgressListener() {};
}
