package dev.m2q.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;

/**
 * The arithmetic of a release's time left: for the running stage, from its own rate (the seconds it has taken per
 * unit of work it has done in this process); for a stage not started, from an earlier run's recorded time of that
 * stage when there is one, else from its work in the cost model ({@link StageCost}) at the seconds per unit of work
 * measured on this run's stages so far. With neither (the first stage's first units not done yet, no earlier
 * times), the run's time left is unknown: no rate is invented. Times are in seconds on the caller's clock.
 */
final class RunEta {
    /**
     * A stage of the run.
     *
     * @param name the stage's name (its recipe section)
     * @param phases its phases in the order it runs them, each with its work in the cost model's units (a phase the
     *     stage reports that is not here counts no work)
     * @param previousSeconds how long it took in an earlier run (NaN: no such record)
     * @param passes whether its work is passes of the model (forwards, decode steps, training steps) whose measured
     *     rate sizes the other such stages; quantize's is not: its seconds per unit also hold its Hessians and solves
     *     (on the fixture three times the others' per unit), so its rate sizes the rest only until one of them ran
     */
    record Stage(String name, Map<String, Double> phases, double previousSeconds, boolean passes) {
        Stage {
            phases = new LinkedHashMap<>(phases);
        }

        /** A stage whose work is passes of the model. */
        Stage(String name, Map<String, Double> phases, double previousSeconds) {
            this(name, phases, previousSeconds, true);
        }

        double work() {
            return phases.values().stream().mapToDouble(Double::doubleValue).sum();
        }

        /** The work done at {@code done}/{@code total} of {@code phase}: the phases before it and its share. */
        double workAt(String phase, double done, long total) {
            double w = 0;
            for (Map.Entry<String, Double> e : phases.entrySet()) {
                if (e.getKey().equals(phase)) {
                    return w + (total > 0 ? e.getValue() * Math.min(1, done / total) : 0);
                }
                w += e.getValue();
            }
            return Double.NaN;
        }
    }

    private final List<Stage> stages;
    /** Per stage: seconds it took in this run (NaN: not finished in this run), or skipped. */
    private final double[] took;

    private final boolean[] skipped;
    private int running = -1;
    private double startedAt;
    /** The running stage's work done when it reported its first unit in this process (a resumed stage's part). */
    private double baseWork = Double.NaN;

    private double workDone;
    /** The running stage's fraction when it has no work in the cost model: the current phase's share done. */
    private double phaseFraction;

    private double phaseBase = Double.NaN;
    private String phase;

    RunEta(List<Stage> stages) {
        this.stages = new ArrayList<>(stages);
        took = new double[stages.size()];
        java.util.Arrays.fill(took, Double.NaN);
        skipped = new boolean[stages.size()];
    }

    List<Stage> stages() {
        return stages;
    }

    /** Stage {@code i} was skipped (unchanged since an earlier run): no time left for it. */
    void skip(int i) {
        skipped[i] = true;
    }

    /** Stage {@code i} started at {@code now}. */
    void start(int i, double now) {
        running = i;
        startedAt = now;
        baseWork = Double.NaN;
        workDone = 0;
        phaseFraction = 0;
        phaseBase = Double.NaN;
        phase = null;
    }

    /**
     * The running stage finished {@code done} (may be fractional: a layer's modules) of {@code total} units of
     * {@code phase}. Its first report in a phase counts the unit before it as done in this process, so a stage that
     * continues an interrupted run (its first report at step 201 of 300) is timed on the units it really ran.
     */
    void progress(String phase, double done, long total) {
        progress(phase, done, total, Math.max(0, Math.ceil(done) - 1));
    }

    /** {@link #progress(String, double, long)} saying how many units were done before this one ({@code before}). */
    void progress(String phase, double done, long total, double before) {
        if (running < 0) {
            return;
        }
        Stage s = stages.get(running);
        if (!phase.equals(this.phase)) {
            this.phase = phase;
            phaseBase = total > 0 ? before / total : 0;
        }
        phaseFraction = total > 0 ? Math.min(1, done / total) : 1;
        double w = s.workAt(phase, done, total);
        if (!Double.isNaN(w)) {
            if (Double.isNaN(baseWork)) {
                baseWork = s.workAt(phase, before, total);
            }
            workDone = Math.max(workDone, w);
        }
    }

    /** The running stage finished at {@code now}. */
    void finish(double now) {
        if (running >= 0) {
            took[running] = now - startedAt;
            running = -1;
        }
    }

    int running() {
        return running;
    }

    /** The running stage's share done: by work when the cost model gives it work, else its current phase's. */
    double stageFraction() {
        if (running < 0) {
            return 0;
        }
        double w = stages.get(running).work();
        return w > 0 ? Math.min(1, workDone / w) : phaseFraction;
    }

    /** The running stage's time left from its own rate; empty before it has done a unit of work in this process. */
    OptionalDouble stageLeft(double now) {
        if (running < 0) {
            return OptionalDouble.empty();
        }
        double elapsed = now - startedAt;
        double w = stages.get(running).work();
        if (w > 0) {
            double ran = workDone - (Double.isNaN(baseWork) ? 0 : baseWork);
            if (!(ran > 0)) {
                return OptionalDouble.empty();
            }
            return OptionalDouble.of(elapsed / ran * (w - workDone));
        }
        double ran = phaseFraction - (Double.isNaN(phaseBase) ? 0 : phaseBase);
        if (!(ran > 0)) {
            return OptionalDouble.empty();
        }
        return OptionalDouble.of(elapsed / ran * (1 - phaseFraction));
    }

    /**
     * Seconds per unit of work measured in this run: the finished stages' times and the running stage's elapsed
     * time over the work they did in this process, from the stages whose work is passes of the model once one has
     * done some, else from all. Empty before any work is done.
     */
    OptionalDouble secondsPerWork(double now) {
        OptionalDouble passes = secondsPerWork(now, true);
        return passes.isPresent() ? passes : secondsPerWork(now, false);
    }

    /** {@link #secondsPerWork(double)} over the stages whose work is passes of the model, or over all of them. */
    private OptionalDouble secondsPerWork(double now, boolean passesOnly) {
        double secs = 0;
        double work = 0;
        for (int i = 0; i < stages.size(); i++) {
            Stage s = stages.get(i);
            if (!Double.isNaN(took[i]) && s.work() > 0 && (s.passes() || !passesOnly)) {
                secs += took[i];
                work += s.work();
            }
        }
        Stage r = running >= 0 ? stages.get(running) : null;
        if (r != null && r.work() > 0 && (r.passes() || !passesOnly) && !Double.isNaN(baseWork)) {
            double ran = workDone - baseWork;
            if (ran > 0) {
                secs += now - startedAt;
                work += ran;
            }
        }
        return work > 0 ? OptionalDouble.of(secs / work) : OptionalDouble.empty();
    }

    /** The whole run's time left: the running stage's and every stage's after it; empty when one is unknown. */
    OptionalDouble runLeft(double now) {
        OptionalDouble rate = secondsPerWork(now);
        double left = 0;
        int from = running >= 0 ? running : firstPending();
        if (from < 0) {
            return OptionalDouble.of(0);
        }
        for (int i = from; i < stages.size(); i++) {
            if (skipped[i] || !Double.isNaN(took[i])) {
                continue;
            }
            Stage s = stages.get(i);
            if (i == running) {
                OptionalDouble own = stageLeft(now);
                if (own.isPresent()) {
                    left += own.getAsDouble();
                } else if (s.previousSeconds() > 0) {
                    left += Math.max(0, s.previousSeconds() - (now - startedAt));
                } else if (s.work() == 0) {
                    continue;
                } else if (rate.isPresent() && !Double.isNaN(s.work())) {
                    left += Math.max(0, s.work() * rate.getAsDouble() - (now - startedAt));
                } else {
                    return OptionalDouble.empty();
                }
            } else if (s.previousSeconds() > 0) {
                left += s.previousSeconds();
            } else if (s.work() == 0) {
                continue;
            } else if (rate.isPresent() && !Double.isNaN(s.work())) {
                left += s.work() * rate.getAsDouble();
            } else {
                return OptionalDouble.empty();
            }
        }
        return OptionalDouble.of(left);
    }

    private int firstPending() {
        for (int i = 0; i < stages.size(); i++) {
            if (!skipped[i] && Double.isNaN(took[i])) {
                return i;
            }
        }
        return -1;
    }
}
