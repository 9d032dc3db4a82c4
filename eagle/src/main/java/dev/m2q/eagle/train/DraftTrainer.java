package dev.m2q.eagle.train;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.Seeds;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.json.Json;
import dev.m2q.core.pipeline.ProgressListener;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;

/**
 * The draft head's training loop over any {@link DraftObjective}: one step = one batch's loss and gradients, the
 * global norm clipped, one AdamW update at the scheduled learning rate; held-out evaluation every
 * {@code evalEvery} steps and at the end; a checkpoint every {@code checkpointEvery} steps that {@code resume}
 * continues from bit for bit. Every step and evaluation is appended to {@code train-log.jsonl} in the run folder.
 */
public final class DraftTrainer {
    public static final String LOG = "train-log.jsonl";

    /** The unit of progress: an optimizer step (reported to a {@link ProgressListener} log after each). */
    public static final String PHASE = "step";

    /**
     * The trainer's options, written as they are into the fingerprint a resumed run must match and into the head's
     * manifest ({@code training}).
     *
     * @param steps optimizer steps
     * @param batchSize sequences per step
     * @param lr peak learning rate
     * @param warmup linear warm-up steps
     * @param clip global gradient-norm limit
     * @param evalEvery steps between held-out evaluations (0: only at the end)
     * @param checkpointEvery steps between checkpoints (0: none)
     * @param seed the data order's seed
     */
    public record Options(
            int steps,
            @JsonProperty("batch_size") int batchSize,
            double lr,
            int warmup,
            double clip,
            @JsonProperty("eval_every") int evalEvery,
            @JsonProperty("checkpoint_every") int checkpointEvery,
            long seed) {
        public Options {
            if (batchSize < 1 || evalEvery < 0 || checkpointEvery < 0 || !(clip > 0)) {
                throw new InputException("--batch-size must be ≥ 1, --eval-every and --checkpoint-every ≥ 0: batch "
                        + batchSize + ", eval every " + evalEvery + ", checkpoint every " + checkpointEvery);
            }
            new LrSchedule(lr, warmup, steps);
        }
    }

    /** What a held-out evaluation measured: the batch-size-weighted mean losses and pooled top-1 per TTT step. */
    public record Evaluation(int step, double loss, double[] stepLoss, double[] top1, long[] counted) {}

    private final Options opts;
    private final DraftObjective objective;
    private final SequenceSource source;
    private final List<Integer> train;
    private final List<Integer> holdout;
    private final Path runDir;
    private final Consumer<String> log;

    /**
     * @param train indices of the training sequences in {@code source}
     * @param holdout indices of the held-out sequences (may be empty: then no evaluation)
     * @param runDir the run folder: {@link #LOG} and {@link TrainCheckpoint#DIR} live there
     */
    public DraftTrainer(
            Options opts,
            DraftObjective objective,
            SequenceSource source,
            List<Integer> train,
            List<Integer> holdout,
            Path runDir,
            Consumer<String> log) {
        if (train.isEmpty()) {
            throw new InputException("no training sequences (all held out?); lower --holdout or add data");
        }
        this.opts = opts;
        this.objective = objective;
        this.source = source;
        this.train = List.copyOf(train);
        this.holdout = List.copyOf(holdout);
        this.runDir = runDir;
        this.log = log;
    }

    /**
     * Trains from {@code init} (or, with {@code resume}, from the checkpoint in the run folder, which must carry the
     * same {@code fingerprint}) to {@link Options#steps}; returns the final parameters and the last evaluation.
     */
    public Result run(Map<String, Tensor> init, Map<String, Object> fingerprint, boolean resume) {
        Map<String, Object> fp = new LinkedHashMap<>(fingerprint);
        fp.put("trainer", opts);
        Path ckDir = runDir.resolve(TrainCheckpoint.DIR);
        Path logFile = runDir.resolve(LOG);
        AdamW adam = AdamW.eagle3();
        Map<String, Tensor> params = new LinkedHashMap<>();
        int start = 0;
        if (resume) {
            TrainCheckpoint ck = TrainCheckpoint.load(ckDir, fp);
            if (!ck.params().keySet().equals(init.keySet())) {
                throw new InputException(ckDir + ": the checkpoint holds parameters "
                        + ck.params().keySet() + ", the head needs " + init.keySet());
            }
            params.putAll(ck.params());
            adam.restore(ck.step(), ck.first(), ck.second());
            start = ck.step();
            truncateLog(logFile, start);
            log.accept("eagle train: resuming after step " + start + " of " + opts.steps());
        } else {
            init.forEach((k, t) -> params.put(k, t.copy()));
            writeLog(logFile, List.of(), false);
        }
        Map<String, Tensor> grads = new LinkedHashMap<>();
        params.forEach((k, t) -> grads.put(k, t.zerosLike()));
        LrSchedule schedule = new LrSchedule(opts.lr(), opts.warmup(), opts.steps());
        Evaluation last = null;
        for (int s = start; s < opts.steps(); s++) {
            grads.values().forEach(Tensor::clear);
            List<TrainingSequence> batch =
                    batch(s).stream().map(source::sequence).toList();
            StepStats st = objective.lossAndGradients(params, batch, grads);
            double norm = AdamW.clipGlobalNorm(grads, opts.clip());
            double lr = schedule.lr(s);
            adam.step(params, grads, lr);
            int done = s + 1;
            writeLog(
                    logFile,
                    List.of(new TrainLogRow(done, st.loss(), EvalRow.boxed(st.stepLoss()), top1(st), lr, norm)),
                    true);
            if (!Double.isFinite(st.loss()) || !Double.isFinite(norm)) {
                throw new IllegalStateException("step " + done + ": loss " + st.loss() + ", gradient norm " + norm
                        + " (not finite); lower --lr");
            }
            boolean evalNow = done == opts.steps() || (opts.evalEvery() > 0 && done % opts.evalEvery() == 0);
            if (evalNow && !holdout.isEmpty()) {
                last = evaluate(params, done);
                writeLog(logFile, List.of(EvalRow.of(last)), true);
                ProgressListener.units(log, PHASE, done, opts.steps(), null);
                log.accept(describe(last));
            } else {
                ProgressListener.units(
                        log,
                        PHASE,
                        done,
                        opts.steps(),
                        done % 10 == 0 || done == 1
                                ? String.format(
                                        "eagle train: step %d/%d loss %.4f lr %.3g grad-norm %.3f",
                                        done, opts.steps(), st.loss(), lr, norm)
                                : null);
            }
            if (opts.checkpointEvery() > 0 && done % opts.checkpointEvery() == 0 && done < opts.steps()) {
                new TrainCheckpoint(done, params, adam.firstMoments(), adam.secondMoments()).save(ckDir, fp);
            }
        }
        if (last == null && !holdout.isEmpty()) {
            last = evaluate(params, opts.steps());
            writeLog(logFile, List.of(EvalRow.of(last)), true);
            log.accept(describe(last));
        }
        return new Result(params, last);
    }

    /** The trained parameters and the final held-out evaluation (null without a held-out split). */
    public record Result(Map<String, Tensor> params, Evaluation evaluation) {}

    /**
     * The training-sequence indices of step s: the steps walk an endless stream of epochs, epoch e being the training
     * indices shuffled by {@code Random(seed + e·φ)} (φ = 0x9E3779B97F4A7C15), batches taking the next
     * {@code batchSize} of them across epoch ends. A function of (seed, s) only, so a resumed run needs no RNG state.
     */
    public List<Integer> batch(int step) {
        List<Integer> out = new ArrayList<>();
        long pos = (long) step * opts.batchSize();
        List<Integer> order = null;
        long epoch = -1;
        for (int i = 0; i < opts.batchSize(); i++, pos++) {
            long e = pos / train.size();
            if (e != epoch) {
                epoch = e;
                order = new ArrayList<>(train);
                Collections.shuffle(order, new Random(opts.seed() + e * Seeds.GOLDEN));
            }
            out.add(order.get((int) (pos % train.size())));
        }
        return out;
    }

    /** The held-out split in batches of {@code batchSize}, forward only. */
    public Evaluation evaluate(Map<String, Tensor> params, int step) {
        double loss = 0;
        double[] stepLoss = null;
        long[] correct = null;
        long[] counted = null;
        for (int i = 0; i < holdout.size(); i += opts.batchSize()) {
            List<TrainingSequence> batch = holdout.subList(i, Math.min(holdout.size(), i + opts.batchSize())).stream()
                    .map(source::sequence)
                    .toList();
            StepStats st = objective.evaluate(params, batch);
            if (stepLoss == null) {
                stepLoss = new double[st.steps()];
                correct = new long[st.steps()];
                counted = new long[st.steps()];
            }
            loss += st.loss() * batch.size();
            for (int k = 0; k < st.steps(); k++) {
                stepLoss[k] += st.stepLoss()[k] * batch.size();
                correct[k] += st.correct()[k];
                counted[k] += st.counted()[k];
            }
        }
        double[] top1 = new double[stepLoss.length];
        for (int k = 0; k < stepLoss.length; k++) {
            stepLoss[k] /= holdout.size();
            top1[k] = counted[k] == 0 ? Double.NaN : (double) correct[k] / counted[k];
        }
        return new Evaluation(step, loss / holdout.size(), stepLoss, top1, counted);
    }

    private static String describe(Evaluation ev) {
        StringBuilder b =
                new StringBuilder(String.format("eagle train: step %d held-out loss %.4f top-1", ev.step(), ev.loss()));
        for (int k = 0; k < ev.top1().length; k++) {
            b.append(String.format(" %d:%.3f", k + 1, ev.top1()[k]));
        }
        return b.toString();
    }

    private static List<Double> top1(StepStats st) {
        List<Double> t = new ArrayList<>();
        for (int k = 1; k <= st.steps(); k++) {
            t.add(st.top1(k));
        }
        return t;
    }

    private static void writeLog(Path file, List<TrainLogLine> rows, boolean append) {
        StringBuilder b = new StringBuilder();
        for (TrainLogLine r : rows) {
            b.append(Json.write(r)).append('\n');
        }
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            if (append) {
                Files.writeString(
                        file, b, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            } else {
                Files.writeString(file, b, StandardCharsets.UTF_8);
            }
        } catch (IOException e) {
            throw new InputException(file + ": cannot write: " + e.getMessage(), e);
        }
    }

    /** Drops the log rows of steps after {@code step} (those a killed run did after its last checkpoint). */
    private static void truncateLog(Path file, int step) {
        StringBuilder keep = new StringBuilder();
        if (Files.isRegularFile(file)) {
            try {
                for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                    if (!line.isBlank() && Json.read(line, TrainLogLine.class).step() <= step) {
                        keep.append(line).append('\n');
                    }
                }
                Files.writeString(file, keep, StandardCharsets.UTF_8);
            } catch (IOException | RuntimeException e) {
                throw new InputException(file + ": cannot rewrite the log of the run to resume: " + e.getMessage(), e);
            }
        }
    }
}
