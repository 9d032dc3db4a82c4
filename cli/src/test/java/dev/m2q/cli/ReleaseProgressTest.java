package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The release's progress display on a fake clock, as a terminal sees it and as a log does. */
class ReleaseProgressTest {
    /** A clock the test moves. */
    private final double[] now = {0};

    private final StringWriter text = new StringWriter();

    private ReleaseProgress display(boolean terminal) {
        RunEta eta = new RunEta(List.of(
                new RunEta.Stage("eagle-train", Map.of("step", 300.0), Double.NaN),
                new RunEta.Stage("validate", Map.of("window", 100.0), Double.NaN)));
        return new ReleaseProgress(new PrintWriter(text), terminal, () -> now[0], eta);
    }

    @Test
    void onATerminalOneLineIsRedrawnAndLogLinesGoAboveIt() {
        ReleaseProgress p = display(true);
        PrintWriter stageErr = p.lines(new PrintWriter(text));
        p.stageStarted(0, 2, "eagle-train");
        String atStep135 = null;
        for (int step = 1; step <= 300; step++) {
            now[0] = step;
            p.units("step", step, 300, step % 10 == 0 ? "eagle train: step " + step : null);
            if (step == 135) {
                atStep135 = p.barLine();
                // A line a stage prints itself, and one it logs through the listener.
                stageErr.println("eagle train: resuming after step 134 of 300");
                p.info("eagle train: held-out top-1 0.5");
            }
        }
        // 135 steps in 135 s: 165 s left in the stage; validate's 100 units at 1 s per unit of work.
        assertEquals(
                "release [1/2] eagle-train  [#########...........]   45%  step 135/300  stage 2:45 left"
                        + "  run ~4:25 left",
                atStep135);
        String out = text.toString();
        assertTrue(out.contains("\r" + atStep135), "the bar is redrawn in place: " + out);
        // Each log line replaces the bar (cleared to its start), ends with a newline, and the bar comes back below.
        String clear = "\r" + " ".repeat(atStep135.length()) + "\r";
        assertTrue(out.contains(clear + "eagle train: resuming after step 134 of 300\n\r"), out);
        assertTrue(out.contains("eagle train: held-out top-1 0.5\n\r"), out);
        // The stage's own per-step lines are not printed: the bar shows the steps.
        assertFalse(out.contains("eagle train: step 10"), out);
        // No newline other than the log lines': everything else is redrawn in place.
        assertEquals(2, out.chars().filter(c -> c == '\n').count(), out);
        p.stageFinished();
        assertTrue(text.toString().endsWith("\r"), "the bar is cleared at the stage's end");
    }

    @Test
    void inALogThereAreOnlyPlainLinesAndAFewPerStage() {
        ReleaseProgress p = display(false);
        PrintWriter stageErr = p.lines(new PrintWriter(text));
        p.stageStarted(0, 2, "eagle-train");
        for (int step = 1; step <= 300; step++) {
            now[0] = step;
            p.units("step", step, 300, step % 10 == 0 ? "eagle train: step " + step : null);
            if (step == 150) {
                stageErr.println("eagle train: a warning");
            }
        }
        p.stageFinished();
        p.stageStarted(1, 2, "validate");
        for (int w = 1; w <= 4; w++) {
            now[0] = 300 + w;
            p.units("window", w, 4, "window " + w);
        }
        p.stageFinished();
        String out = text.toString();
        assertFalse(out.contains("\r"), out);
        List<String> lines = Arrays.asList(out.split("\n"));
        List<String> train = lines.stream()
                .filter(l -> l.startsWith("release [1/2] eagle-train: "))
                .toList();
        // The first step, every tenth of the stage and the last: 11 lines for 300 steps.
        assertEquals(11, train.size(), out);
        assertEquals("release [1/2] eagle-train: step 1/300 (0%), stage 4:59 left, run ~6:39 left", train.get(0));
        assertEquals("release [1/2] eagle-train: step 300/300 (100%), stage 0:00 left, run ~1:40 left", train.get(10));
        assertTrue(lines.contains("eagle train: a warning"), out);
        List<String> validate = lines.stream()
                .filter(l -> l.startsWith("release [2/2] validate: "))
                .toList();
        assertEquals(4, validate.size(), out); // four windows: each is a tenth or more
        assertEquals("release [2/2] validate: window 4/4 (100%), stage 0:00 left, run ~0:00 left", validate.get(3));
    }

    @Test
    void beforeAnyUnitTheRunEtaIsUnknown() {
        ReleaseProgress p = display(false);
        assertEquals("run ETA after the first stage's first units", p.runLeft());
        p.stageStarted(0, 2, "eagle-train");
        now[0] = 7;
        assertEquals(
                "release [1/2] eagle-train: starting (0%), run ETA after the first stage's first units", p.plainLine());
    }

    @Test
    void quantizeShowsTheLayerAndModuleOnTheBar() {
        ReleaseProgress p = new ReleaseProgress(
                new PrintWriter(text),
                true,
                () -> now[0],
                new RunEta(List.of(new RunEta.Stage("quantize", Map.of("layer", 2.0), Double.NaN))));
        p.stageStarted(0, 1, "quantize");
        String[] modules = {"self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj"};
        for (String m : modules) {
            now[0] += 1;
            p.module(0, 2, m);
        }
        p.layerDone(0, 2, 4);
        for (int i = 0; i < 3; i++) {
            now[0] += 1;
            p.module(1, 2, modules[i]);
        }
        // Layer 1 done and two of layer 2's four modules (the bar learned four per layer from layer 1): 75%.
        assertTrue(
                p.barLine()
                        .startsWith("release [1/1] quantize  [###############.....]   75%  layer 2/2"
                                + " mlp.gate_proj  stage 0:02 left"),
                p.barLine());
    }
}
