package dev.m2q.cli;

import dev.m2q.core.pipeline.ProgressListener;
import java.io.PrintWriter;
import java.io.Writer;
import java.util.Locale;
import java.util.OptionalDouble;
import java.util.function.DoubleSupplier;
import java.util.function.Supplier;

/**
 * The progress of {@code m2q release} on stderr, fed by the stage that runs (every stage command reports to the
 * {@link ProgressListener} that {@link #forStage} gives it while the release runs it). On a terminal: one line
 * redrawn in place, {@code release [3/5] eagle-train [#####.....] 45% step 135/300 stage 0:42 left run ~3:10 left},
 * with the lines the stages print for the log (and what they print on stdout) written above it. Otherwise: plain
 * lines, no carriage returns, one when a phase starts, at each tenth of a phase and at its end.
 *
 * <p>A stdout line is written between clearing the bar on stderr and redrawing it. The two streams reach the
 * terminal in that order only when nothing stands between them and it: {@code ./m2q} passes stderr through a
 * filter process (tools/launch-java.sh), so there a stdout line can now and then land beside the bar instead of
 * replacing it (cosmetic: nothing is lost, and the next redraw is whole).
 */
final class ReleaseProgress implements ProgressListener {
    private static final ThreadLocal<ProgressListener> ACTIVE = new ThreadLocal<>();

    /** Quantize's unit: a layer (its modules move the bar within it). */
    static final String LAYER = "layer";

    /** Bar width in characters. */
    private static final int BAR = 20;

    /** Plain lines per phase besides its first: one as each tenth of it is done. */
    private static final long LINES_PER_PHASE = 10;

    private final PrintWriter err;
    private final boolean terminal;
    private final DoubleSupplier clock;
    private final RunEta eta;

    private int index;
    private int count;
    private String stage;
    private String phase;
    private long done;
    private long total;
    private String detail = "";
    /** Quantize: modules seen in the current layer, and per layer (learned from the layer before). */
    private int modulesSeen;

    private int modulesPerLayer;
    private int moduleLayer = -1;
    private long lastPrinted = -1;
    private String lastPrintedPhase;
    private String drawn = "";

    /**
     * @param clock seconds on a monotonic clock
     * @param eta the run's stages, for the time left
     */
    ReleaseProgress(PrintWriter err, boolean terminal, DoubleSupplier clock, RunEta eta) {
        this.err = err;
        this.terminal = terminal;
        this.clock = clock;
        this.eta = eta;
    }

    /** The release's listener while it runs a stage in this thread, else {@code alone} (the command run by itself). */
    static ProgressListener forStage(Supplier<ProgressListener> alone) {
        ProgressListener p = ACTIVE.get();
        return p != null ? p : alone.get();
    }

    /** Runs {@code body} with this display as the listener stage commands get from {@link #forStage}. */
    <T> T around(Supplier<T> body) {
        ProgressListener was = ACTIVE.get();
        ACTIVE.set(this);
        try {
            return body.get();
        } finally {
            ACTIVE.set(was);
        }
    }

    /** Stage {@code i} (0-based) of the run, shown as {@code [i+1/count]}, starts. */
    synchronized void stageStarted(int i, int count, String name) {
        this.index = i + 1;
        this.count = count;
        this.stage = name;
        phase = null;
        done = 0;
        total = 0;
        detail = "";
        moduleLayer = -1;
        modulesSeen = 0;
        modulesPerLayer = 0;
        lastPrinted = -1;
        lastPrintedPhase = null;
        eta.start(i, clock.getAsDouble());
        redraw();
    }

    /** Stage {@code i} was skipped: nothing of it is left. */
    synchronized void stageSkipped(int i) {
        eta.skip(i);
    }

    /** The running stage ended: its bar goes. */
    synchronized void stageFinished() {
        eta.finish(clock.getAsDouble());
        stage = null;
        erase();
    }

    @Override
    public synchronized void module(int layer, int layers, String module) {
        if (layer != moduleLayer) {
            if (moduleLayer >= 0) {
                modulesPerLayer = Math.max(modulesPerLayer, modulesSeen);
            }
            moduleLayer = layer;
            modulesSeen = 0;
        }
        modulesSeen++;
        double within =
                modulesPerLayer > 0 ? Math.min(modulesSeen - 1, modulesPerLayer - 1) / (double) modulesPerLayer : 0;
        phase = LAYER;
        done = layer;
        total = layers;
        detail = module;
        eta.progress(phase, layer + within, layers, layer);
        redraw();
    }

    @Override
    public synchronized void layerDone(int layer, int layers, double seconds) {
        detail = "";
        units(LAYER, layer + 1, layers, null);
    }

    @Override
    public synchronized void units(String phase, long done, long total, String line) {
        this.phase = phase;
        this.done = done;
        this.total = total;
        if (!LAYER.equals(phase)) {
            detail = "";
        }
        eta.progress(phase, done, total);
        if (terminal) {
            redraw();
            return;
        }
        long tenth = total > 0 ? Math.min(done, total) * LINES_PER_PHASE / total : LINES_PER_PHASE;
        if (!phase.equals(lastPrintedPhase) || tenth > lastPrinted) {
            lastPrintedPhase = phase;
            lastPrinted = tenth;
            err.println(plainLine());
            err.flush();
        }
    }

    @Override
    public synchronized void info(String line) {
        above(err, line);
    }

    /** {@code line} for the log, on {@code to}: above the bar on a terminal, plainly otherwise. */
    synchronized void above(PrintWriter to, String line) {
        if (terminal) {
            erase();
        }
        to.println(line);
        to.flush();
        if (terminal) {
            redraw();
        }
    }

    /**
     * A writer for a stage's own prints to {@code to} (its stdout or stderr): on a terminal each whole line goes
     * above the bar; otherwise {@code to} itself.
     */
    PrintWriter lines(PrintWriter to) {
        if (!terminal) {
            return to;
        }
        return new PrintWriter(new Writer() {
            private final StringBuilder pending = new StringBuilder();

            @Override
            public void write(char[] buf, int off, int len) {
                for (int i = off; i < off + len; i++) {
                    char c = buf[i];
                    if (c == '\n') {
                        int end = pending.length();
                        if (end > 0 && pending.charAt(end - 1) == '\r') {
                            pending.setLength(end - 1);
                        }
                        above(to, pending.toString());
                        pending.setLength(0);
                    } else {
                        pending.append(c);
                    }
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {
                if (!pending.isEmpty()) {
                    above(to, pending.toString());
                    pending.setLength(0);
                }
            }
        });
    }

    /** The terminal line now: stage, bar, percent, units, the stage's and the run's time left. */
    String barLine() {
        double now = clock.getAsDouble();
        double f = eta.stageFraction();
        int filled = (int) Math.round(f * BAR);
        StringBuilder b = new StringBuilder();
        b.append(head())
                .append("  [")
                .append("#".repeat(filled))
                .append(".".repeat(BAR - filled))
                .append("]  ");
        b.append(String.format(Locale.ROOT, "%3d%%", (int) Math.floor(100 * f)));
        if (phase != null) {
            b.append("  ").append(units());
        }
        eta.stageLeft(now)
                .ifPresent(s -> b.append("  stage ").append(clockTime(s)).append(" left"));
        b.append("  ").append(runLeft(now));
        return b.toString();
    }

    /** The plain line now: the same facts, for a log. */
    String plainLine() {
        double now = clock.getAsDouble();
        StringBuilder b = new StringBuilder(head()).append(": ");
        b.append(phase == null ? "starting" : units());
        b.append(String.format(Locale.ROOT, " (%d%%)", (int) Math.floor(100 * eta.stageFraction())));
        eta.stageLeft(now)
                .ifPresent(s -> b.append(", stage ").append(clockTime(s)).append(" left"));
        b.append(", ").append(runLeft(now));
        return b.toString();
    }

    private String head() {
        return "release [" + index + "/" + count + "] " + stage;
    }

    private String units() {
        return phase + " " + Math.min(done + (LAYER.equals(phase) && !detail.isEmpty() ? 1 : 0), total) + "/" + total
                + (detail.isEmpty() ? "" : " " + detail);
    }

    /** The run's time left now, as the lines show it. */
    synchronized String runLeft() {
        return runLeft(clock.getAsDouble());
    }

    private String runLeft(double now) {
        OptionalDouble left = eta.runLeft(now);
        return left.isPresent()
                ? "run ~" + clockTime(left.getAsDouble()) + " left"
                : "run ETA after the first stage's first units";
    }

    /** m:ss, or h:mm:ss from an hour. */
    static String clockTime(double seconds) {
        long s = Math.max(0, Math.round(seconds));
        return s >= 3600
                ? String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                : String.format(Locale.ROOT, "%d:%02d", s / 60, s % 60);
    }

    /**
     * Redraws the terminal line. Every report redraws it: a unit is at least one forward of the model, so the line
     * never changes faster than a terminal shows it, and a skipped redraw would leave a stale module on the bar.
     */
    private void redraw() {
        if (!terminal || stage == null) {
            return;
        }
        String line = barLine();
        err.print("\r" + line + " ".repeat(Math.max(0, drawn.length() - line.length())));
        err.flush();
        drawn = line;
    }

    /** Clears the bar's line (terminal), leaving the cursor at its start. */
    private void erase() {
        if (terminal && !drawn.isEmpty()) {
            err.print("\r" + " ".repeat(drawn.length()) + "\r");
            err.flush();
            drawn = "";
        }
    }
}
