package dev.m2q.core.pipeline;

import java.util.function.Consumer;

/**
 * Told where a stage is, for progress bars and logs. Every stage reports the same way: units done of a total in its
 * current phase ({@link #units}; quantize also says the layer and module it is on), and lines for the log
 * ({@link #info}). As a {@code Consumer<String>} it takes log lines, so code that logs through a consumer can be
 * handed a listener; such code reports its units through {@link #units(Consumer, String, long, long, String)}.
 */
public interface ProgressListener extends Consumer<String> {
    /** Work on {@code module} (e.g. "mlp.down_proj", or a phase like "calibrate") of layer {@code layer} began. */
    default void module(int layer, int layers, String module) {}

    /** Layer {@code layer} is written and recorded; {@code seconds} it took. */
    default void layerDone(int layer, int layers, double seconds) {}

    /** A line for the log (resumes, spills, fallbacks, results). */
    default void info(String line) {}

    /**
     * {@code done} of {@code total} units of the phase {@code phase} (e.g. "step", "prompt", "window") are finished.
     * {@code line} is the plain progress line the stage prints for this report when it runs alone (null: none for
     * this unit; stages print one every few units); a display that draws its own progress may drop it. The default
     * logs the line, so a listener that only prints lines prints what the stage always printed.
     */
    default void units(String phase, long done, long total, String line) {
        if (line != null) {
            info(line);
        }
    }

    /** A log line: {@link #info}. */
    @Override
    default void accept(String line) {
        info(line);
    }

    /**
     * Reports units to {@code log}: to its {@link #units} when it is a listener, else only {@code line} (when not
     * null), as a plain consumer always received it. For stages whose log parameter is a {@code Consumer<String>}.
     */
    static void units(Consumer<String> log, String phase, long done, long total, String line) {
        if (log instanceof ProgressListener p) {
            p.units(phase, done, total, line);
        } else if (line != null) {
            log.accept(line);
        }
    }

    /** A listener that hands every log line, and every unit's plain line, to {@code lines}. */
    static ProgressListener lines(Consumer<String> lines) {
        return new ProgressListener() {
            @Override
            public void info(String line) {
                lines.accept(line);
            }
        };
    }

    ProgressListener NONE = new ProgressListener() {};
}
