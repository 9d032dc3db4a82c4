package dev.m2q.cli;

import dev.m2q.core.InputException;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.eagle.train.DraftTrainer;
import dev.m2q.eagle.train.DraftTraining;
import dev.m2q.eagle.train.TttObjective;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code m2q eagle train}: an EAGLE-3 head trained on features the target computes online, exported to --out. */
@Command(
        name = "train",
        mixinStandardHelpOptions = true,
        description = "Train an EAGLE-3 draft head (ALGORITHMS §5): draft vocabulary from the data's answers, features"
                + " of the target (or of --quantized) computed online, the 7-step training-time test, AdamW with"
                + " warm-up and cosine decay, held-out top-1 per step in train-log.jsonl, checkpoints for --resume;"
                + " writes config.json, model.safetensors (FORMATS §5) and m2q-manifest.json.")
final class EagleTrainCommand implements Callable<Integer> {
    @Option(names = "--target", required = true, paramLabel = "DIR", description = "The BF16 target model folder.")
    Path target;

    @Option(
            names = "--quantized",
            paramLabel = "QDIR",
            description = "A release of --target whose forward gives the features and target logits (the model the"
                    + " head will draft for); default: --target.")
    Path quantized;

    @Option(names = "--data", required = true, paramLabel = "FILE", description = "Data from m2q eagle data.")
    Path data;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "The head folder to write.")
    Path out;

    @Option(
            names = "--draft-vocab",
            defaultValue = "0",
            paramLabel = "N",
            description = "Draft vocabulary size: the N most frequent answer tokens. Default min(32000, V).")
    int draftVocab;

    @Option(
            names = "--aux-layers",
            split = ",",
            paramLabel = "a,b,c",
            description = "Pin the taps (state entering these target layers); default 2, L/2, L-3.")
    int[] auxLayers;

    @Option(names = "--steps", defaultValue = "1000", paramLabel = "N", description = "Optimizer steps. Default 1000.")
    int steps;

    @Option(
            names = "--batch-size",
            defaultValue = "2",
            paramLabel = "N",
            description = "Sequences per step. Default 2.")
    int batchSize;

    @Option(
            names = "--max-seq-len",
            defaultValue = "512",
            paramLabel = "N",
            description = "Sequences are cut to N tokens. Default 512.")
    int maxSeqLen;

    @Option(names = "--lr", defaultValue = "1e-4", paramLabel = "LR", description = "Peak learning rate. Default 1e-4.")
    double lr;

    @Option(names = "--warmup", paramLabel = "N", description = "Linear warm-up steps. Default steps/10.")
    Integer warmup;

    @Option(
            names = "--ttt-steps",
            defaultValue = "7",
            paramLabel = "N",
            description = "Training-time-test unroll length. Default 7.")
    int tttSteps;

    @Option(
            names = "--eval-every",
            defaultValue = "100",
            paramLabel = "N",
            description = "Held-out evaluation every N steps (and at the end; 0: only at the end). Default 100.")
    int evalEvery;

    @Option(
            names = "--holdout",
            defaultValue = "0.1",
            paramLabel = "FRACTION",
            description = "Share of sequences held out for evaluation (seeded). Default 0.1.")
    double holdout;

    @Option(
            names = "--checkpoint-every",
            defaultValue = "200",
            paramLabel = "N",
            description = "Checkpoint into OUT.m2q-partial/checkpoint/ every N steps (0: never). Default 200.")
    int checkpointEvery;

    @Option(names = "--resume", description = "Continue the interrupted run from its checkpoint in OUT.m2q-partial/.")
    boolean resume;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "N", description = "Init, split and order seed.")
    long seed;

    @Option(names = "--overwrite", description = "Replace an existing --out (only once the new head is complete).")
    boolean overwrite;

    @Mixin
    KernelOptions kernels;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        EagleCommand.dir(target, "--target");
        EagleCommand.file(data, "--data");
        if (quantized != null) {
            EagleCommand.dir(quantized, "--quantized");
        }
        if (tttSteps < 1) {
            throw new InputException("--ttt-steps must be at least 1, got " + tttSteps);
        }
        int w = warmup == null ? steps / 10 : warmup;
        DraftTrainer.Options opts =
                new DraftTrainer.Options(steps, batchSize, lr, w, 0.5, evalEvery, checkpointEvery, seed);
        Map<String, Object> objective = new LinkedHashMap<>();
        objective.put("name", "training-time test, soft cross-entropy, weights 0.8^(i-1)");
        objective.put("ttt_steps", tttSteps);
        DraftTraining job = new DraftTraining(
                target,
                quantized,
                data,
                out,
                draftVocab,
                auxLayers,
                maxSeqLen,
                holdout,
                opts,
                objective,
                resume,
                overwrite,
                new ArrayList<>(List.copyOf(spec.commandLine().getParseResult().originalArgs())),
                Version.get());
        job.checkOutput();
        var err = spec.commandLine().getErr();
        ProgressListener log = ReleaseProgress.forStage(() -> ProgressListener.lines(line -> {
            err.println(line);
            err.flush();
        }));
        DraftTraining.Summary s =
                job.run((config, vocab, k) -> new TttObjective(config, vocab, tttSteps, k), kernels.get(), log);
        var o = spec.commandLine().getOut();
        o.println("wrote " + s.out() + ": EAGLE-3 head, draft vocabulary "
                + s.head().vocab().size()
                + (s.evaluation() == null
                        ? ""
                        : String.format(
                                ", held-out top-1 at step 1 %.3f",
                                s.evaluation().top1()[0])));
        o.flush();
        return Main.EXIT_OK;
    }
}
