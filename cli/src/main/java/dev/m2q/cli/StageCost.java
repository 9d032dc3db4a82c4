package dev.m2q.cli;

import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.PromptFile;
import dev.m2q.core.tokenizer.Tokenizer;
import dev.m2q.eagle.data.DataGeneration;
import dev.m2q.eagle.train.DraftTrainer;
import dev.m2q.validate.SpecBench;
import dev.m2q.validate.Validator;
import dev.m2q.validate.tasks.TaskEval;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine;

/**
 * The cost model behind a first run's ETA: each stage's work, per phase, in one unit all stages share, a
 * <em>token-layer forward</em> (one token through one decoder layer of the target, about 2·P multiply-adds and
 * adds, P the layer's weights). The work follows what each command's code does with the recipe's options (read by
 * parsing the stage's own arguments with its own command class, so defaults are the command's); the factors are
 * named where they are derived. It is an estimate: time per unit differs between stages (a one-token decode step is
 * bound by memory, a long window by arithmetic), which is why a stage's own rate, and an earlier run's recorded
 * times, replace it as soon as they exist.
 */
final class StageCost {
    private final ModelConfig cfg;
    private final Path model;
    /** Multiply-adds of one token through one decoder layer's linears. */
    private final double layerMacs;
    /** The logits of one token (h × V multiply-adds) in token-layer forwards. */
    private final double logits;

    /**
     * One token through one layer in a one-token decode step, in token-layer forwards of a batched pass. A decode
     * step reads every weight for one token (bound by memory), a batched pass reuses each weight across its rows
     * (bound by arithmetic): on the 2-core machine of docs/BENCHMARKS.md a 32B layer's step reads 1 GB of bf16 at
     * about 70 GB/s (15 ms) against 2·488 M flops at about 330 GFLOP/s (3 ms) per token of a prefill, and the
     * fixture's first release ran its decode-heavy eagle-data about 4.5 times slower per unit than its batched
     * eagle-train. Without it a first run's ETA came out four times too long on the fixture.
     */
    static final double DECODE_STEP = 5;

    /** From the eagle-data stage, for eagle-train: prompts and their mean rendered length, the answers' bound. */
    private double prompts = Double.NaN;

    private double promptTokens = Double.NaN;
    private int maxNewTokens;

    StageCost(ModelConfig cfg, Path model) {
        this.cfg = cfg;
        this.model = model;
        long h = cfg.hiddenSize();
        layerMacs = (double) h * (cfg.qDim() + 2L * cfg.kvDim()) // q, k, v
                + (double) cfg.qDim() * h // o
                + 3.0 * h * cfg.intermediateSize(); // gate, up, down
        logits = (double) h * cfg.vocabSize() / layerMacs;
    }

    /** Stage {@code s}'s phases and their work, from its arguments; NaN work where it cannot be told. */
    Map<String, Double> phases(ReleaseCommand.Stage s, List<String> args) {
        try {
            return switch (s) {
                case QUANTIZE -> quantize(parsed(new QuantizeCommand(), args));
                case EAGLE_DATA -> eagleData(parsed(new EagleDataCommand(), args));
                case EAGLE_TRAIN -> eagleTrain(parsed(new EagleTrainCommand(), args));
                case ATTACH -> Map.of("attach", 0.0); // copies and checks files: no forwards
                case VALIDATE -> validate(parsed(new ValidateCommand(), args));
            };
        } catch (RuntimeException e) {
            // Unreadable options or inputs: the stage says so itself when it runs; the run's ETA then waits for
            // measured times instead of using a guess.
            return Map.of(s.section, Double.NaN);
        }
    }

    private static <T> T parsed(T command, List<String> args) {
        new CommandLine(command).parseArgs(args.toArray(String[]::new));
        return command;
    }

    /**
     * Every method runs the calibration tokens (nsamples × seqlen) through each layer once for the next layer's
     * inputs (LayerLoop's outputs pass, on which the input ranges are calibrated too). GPTQ adds the pass that
     * accumulates the Hessians (GptqMethod.hessians) and the solves: per linear with K inputs and N outputs about
     * N·K² multiply-adds for the column updates and K³ for the factor of each distinct Hessian (q/k/v share one,
     * gate/up share one), as token-layer forwards: over the layer's multiply-adds per token. AutoRound adds the
     * reference outputs and the iteration-0 loss passes (AutoRoundMethod.quantize) and per iteration a batch of
     * sequences forward and backward (the backward about twice the forward).
     */
    private Map<String, Double> quantize(QuantizeCommand q) {
        boolean autoRound = q.method == QuantizeCommand.Method.autoround;
        dev.m2q.autoround.Recipe rec = dev.m2q.autoround.Recipe.byName(q.recipe == null ? "default" : q.recipe);
        int nsamples = q.nsamplesOption != null ? q.nsamplesOption : autoRound ? rec.nsamples() : 128;
        int seqlen = q.seqlenOption != null ? q.seqlenOption : autoRound ? rec.seqlen() : 2048;
        double tokens = (double) nsamples * seqlen;
        double perLayer = tokens;
        if (q.method == QuantizeCommand.Method.gptq) {
            long h = cfg.hiddenSize();
            long i = cfg.intermediateSize();
            // The Hessians' rank-k updates (HessianAccumulator, the upper triangle): K(K+1)/2 per token for each
            // distinct input (q/k/v share theirs, gate/up theirs), about one forward's work per token.
            double hessians =
                    ((h * (h + 1) / 2.0) * 2 + cfg.qDim() * (cfg.qDim() + 1) / 2.0 + i * (i + 1) / 2.0) / layerMacs;
            double updates = (double) (cfg.qDim() + 2L * cfg.kvDim()) * h * h
                    + (double) h * cfg.qDim() * cfg.qDim()
                    + 2.0 * i * h * h
                    + (double) h * i * i;
            double factors = Math.pow(h, 3) * 2 + Math.pow(cfg.qDim(), 3) + Math.pow(i, 3);
            perLayer += tokens * (1 + hessians) + (updates + factors) / layerMacs;
        } else if (autoRound) {
            int iters = q.iters != null ? q.iters : rec.iters();
            int batch = q.batchSize != null ? q.batchSize : rec.batchSize();
            perLayer += 2 * tokens + 3.0 * iters * batch * seqlen;
        }
        return Map.of(ReleaseProgress.LAYER, perLayer * cfg.numLayers());
    }

    /**
     * Each prompt's rendered tokens go through the target once (the prefill), then each answer token is one
     * decode step of one token through every layer and the logits (ResponseGenerator), {@link #DECODE_STEP} units
     * per token-layer; answers stop at --max-new-tokens (or earlier at an end token: the bound is used).
     */
    private Map<String, Double> eagleData(EagleDataCommand d) {
        List<int[]> ids =
                PromptFile.encode(d.prompts, Tokenizer.load(model.resolve("tokenizer.json")), ChatTemplate.load(model));
        prompts = ids.size();
        promptTokens = ids.stream().mapToInt(a -> a.length).average().orElse(0);
        maxNewTokens = d.maxNewTokens;
        double perPrompt = promptTokens * cfg.numLayers() + d.maxNewTokens * (cfg.numLayers() + logits) * DECODE_STEP;
        return Map.of(DataGeneration.PHASE, prompts * perPrompt);
    }

    /**
     * Each step takes --batch-size sequences (at most --max-seq-len tokens: the prompt and its answer) through the
     * whole target for the features and logits (DraftTraining.online), then the head's training-time test:
     * --ttt-steps unrolled passes of one decoder layer plus its fc (3h → h) and draft lm_head (h → draft
     * vocabulary), forward and backward (three forwards' work). The held-out sequences are scored the same way,
     * forward only, every --eval-every steps and at the end.
     */
    private Map<String, Double> eagleTrain(EagleTrainCommand t) {
        double seq = Math.min(t.maxSeqLen, promptTokens + maxNewTokens);
        long h = cfg.hiddenSize();
        int vd = t.draftVocab == 0 ? Math.min(32000, cfg.vocabSize()) : t.draftVocab;
        double head = 1 + (3.0 * h * h + (double) h * vd) / layerMacs;
        double perToken = cfg.numLayers() + logits + 3 * t.tttSteps * head;
        double train = (double) t.steps * t.batchSize * seq * perToken;
        double evals = (t.evalEvery > 0 ? t.steps / t.evalEvery : 0) + 1;
        double held = Math.round(t.holdout * prompts);
        double eval = evals * held * seq * (cfg.numLayers() + logits + t.tttSteps * head);
        return Map.of(DraftTrainer.PHASE, train + eval);
    }

    /**
     * The perplexity windows run every text token through the reference and the candidate (and the RTN baseline
     * when asked) side by side, each with its logits (Validator.window); the throughput measure decodes
     * --decode-tokens on two models (three with the dequantized fp32 path) one token at a time; the speculative
     * sweep decodes each prompt's --spec-tokens once per k and twice plainly (SpecBench.measure), counted as plain
     * decode steps; a decode step's token-layer is {@link #DECODE_STEP} units.
     * Task scoring is not modelled (its items' lengths are known only once scored): its time shows as the stage's
     * own rate when it runs.
     */
    private Map<String, Double> validate(ValidateCommand v) {
        Map<String, Double> m = new LinkedHashMap<>();
        double perToken = cfg.numLayers() + logits;
        if (v.text != null) {
            int[] ids = Tokenizer.load(model.resolve("tokenizer.json")).encode(TextFiles.readUtf8(v.text, "--text"));
            int tokens = v.maxTokens != null ? Math.min(v.maxTokens, ids.length) : ids.length;
            int models = v.baseline != null ? 3 : 2;
            m.put(Validator.PHASE_WINDOWS, (double) tokens * models * perToken);
        }
        if (v.tasks != null && !v.tasks.isEmpty()) {
            m.put(TaskEval.PHASE, 0.0);
        }
        if (v.decodeTokens > 0) {
            m.put(Validator.PHASE_DECODE, (double) v.decodeTokens * (v.w4Kernel ? 2 : 3) * perToken * DECODE_STEP);
        }
        if (v.draft != null && v.prompts != null) {
            int n = PromptFile.read(v.prompts).size();
            int ks = SpecBench.parseKs(v.k).length;
            m.put(SpecBench.PHASE, (double) n * (ks + 2) * v.specTokens * perToken * DECODE_STEP);
        }
        return m;
    }
}
