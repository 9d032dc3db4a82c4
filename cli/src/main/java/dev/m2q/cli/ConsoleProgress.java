package dev.m2q.cli;

import dev.m2q.core.pipeline.ProgressListener;
import java.io.PrintWriter;

/**
 * Progress on stderr: a one-line bar redrawn in place on a terminal ({@code [layer 3/64] mlp.down_proj … ETA}),
 * plain lines, one per finished layer, when the output is piped or logged.
 */
final class ConsoleProgress implements ProgressListener {
    private final PrintWriter err;
    private final boolean terminal;
    private final long start = System.nanoTime();
    private int layersDone;
    private int lastWidth;

    ConsoleProgress(PrintWriter err, boolean terminal) {
        this.err = err;
        this.terminal = terminal;
    }

    /** A terminal when the JVM has a console attached to an interactive terminal. */
    static boolean isTerminal() {
        java.io.Console c = System.console();
        return c != null && c.isTerminal();
    }

    @Override
    public void module(int layer, int layers, String module) {
        if (!terminal) {
            return;
        }
        String line = String.format("[layer %d/%d] %s  %s", layer + 1, layers, module, eta(layers));
        err.print("\r" + line + " ".repeat(Math.max(0, lastWidth - line.length())));
        err.flush();
        lastWidth = line.length();
    }

    @Override
    public void layerDone(int layer, int layers, double seconds) {
        layersDone++;
        String line = String.format("layer %d/%d done in %.1f s  %s", layer + 1, layers, seconds, eta(layers));
        if (terminal) {
            err.print("\r" + line + " ".repeat(Math.max(0, lastWidth - line.length())));
            lastWidth = line.length();
            if (layer + 1 == layers) {
                err.println();
                lastWidth = 0;
            }
        } else {
            err.println(line);
        }
        err.flush();
    }

    @Override
    public void info(String line) {
        if (terminal && lastWidth > 0) {
            err.println();
            lastWidth = 0;
        }
        err.println(line);
        err.flush();
    }

    private String eta(int layers) {
        if (layersDone == 0) {
            return "ETA --:--";
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        long left = Math.round(elapsed / layersDone * (layers - layersDone));
        return String.format("ETA %d:%02d:%02d", left / 3600, left / 60 % 60, left % 60);
    }
}
