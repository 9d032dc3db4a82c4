package dev.m2q.cli;

import dev.m2q.autoround.AutoRoundMethod;
import dev.m2q.autoround.AutoRoundOptions;
import dev.m2q.autoround.Recipe;
import dev.m2q.core.InputException;
import dev.m2q.core.calib.CalibrationSet;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.kernels.Devices;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.pipeline.CompressedTensorsRelease;
import dev.m2q.core.pipeline.GptqRelease;
import dev.m2q.core.pipeline.LayerMethod;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.core.pipeline.QuantizeOptions;
import dev.m2q.core.pipeline.ReleaseFormat;
import dev.m2q.core.pipeline.WeightScan;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.GptqLayoutCheck;
import dev.m2q.core.quant.GroupSize;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.Tokenizer;
import dev.m2q.gptq.GptqMethod;
import dev.m2q.gptq.GptqOptions;
import dev.m2q.gptq.RtnMethod;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code m2q quantize}: GPTQ, AutoRound or RTN, 4-bit symmetric, written in the GPTQ layout engines load (labelled
 * gptq or auto_round) or as compressed-tensors with 8-bit activation and FP8 KV-cache scales.
 */
@Command(
        name = "quantize",
        mixinStandardHelpOptions = true,
        description = {
            "Quantize a BF16 checkpoint layer by layer (GPTQ, AutoRound or RTN; W4 g128 sym) into a release in the GPTQ"
                    + " layout, labelled gptq or auto_round, or as compressed-tensors, calibrating 8-bit activation and"
                    + " FP8 KV-cache scales on the way.",
            "AutoRound settings: an option given explicitly wins; otherwise --recipe's value (light: 50 iters, lr"
                    + " 5e-3; default: 200 iters; best: 1000 iters, 512 samples; all 128 × 2048 samples unless said,"
                    + " batch 8); otherwise lr = 1/iters and minmax lr = lr."
        })
final class QuantizeCommand implements Callable<Integer> {
    enum Method {
        gptq,
        autoround,
        rtn
    }

    /**
     * Options that only GPTQ reads, and those that only AutoRound reads: naming one with another method (RTN reads
     * neither) is refused.
     */
    private static final List<String> GPTQ_ONLY = List.of(
            "--damp", "--block-size", "--act-order", "--static-groups", "--true-sequential", "--exact-loss-rows");

    /** Options that GPTQ and RTN read, not AutoRound (whose tuned clip factors do this job). */
    private static final List<String> NOT_AUTOROUND = List.of("--clip-search");

    private static final List<String> AUTOROUND_ONLY =
            List.of("--recipe", "--iters", "--lr", "--minmax-lr", "--batch-size", "--autoround-target");

    @Mixin
    ModelOptions model;

    @Mixin
    KernelOptions kernels;

    @Mixin
    DeviceOptions device;

    @Option(
            names = "--out",
            required = true,
            paramLabel = "DIR",
            description = "Output directory (must not exist unless --overwrite, and may not be, contain or lie inside"
                    + " --model or a --calib file; built as DIR.m2q-partial by one run at a time, checked as inspect"
                    + " --check does, and only then swapped in).")
    Path out;

    @Option(names = "--method", defaultValue = "gptq", description = "gptq (default), autoround or rtn.")
    Method method;

    @Option(
            names = "--format",
            paramLabel = "FORMAT",
            description = "gptq (FORMATS §2; the default for gptq and rtn), auto_round (§3, AutoRound's"
                    + " \"auto_round:auto_gptq\"; the default for autoround, which can also write gptq), or"
                    + " compressed-tensors (§4, the one that carries 8-bit activation and KV-cache scales).")
    String format;

    @Mixin
    SchemeOptions scheme;

    @Option(
            names = "--bits",
            defaultValue = "4",
            description = "Weight bits: 4 (default) or 8 (GPTQ-Int8 / 8-bit auto_round / compressed-tensors num_bits 8,"
                    + " docs/FORMATS-8BIT.md; the CUDA GPTQ loop is 4-bit, so 8-bit GPTQ runs its column loop on the"
                    + " CPU).")
    int bits;

    @Option(
            names = "--group-size",
            defaultValue = "128",
            description = "Input channels per scale group (default 128), or -1 for one group per row. vLLM's Marlin"
                    + " kernels take -1, 32, 64 and 128; other sizes load on a slower kernel (warned).")
    int groupSize;

    @Option(
            names = "--sym",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description = "Symmetric quantization (default; --no-sym is refused: no engine path for it here).")
    boolean sym;

    @Option(names = "--damp", defaultValue = "0.01", description = "GPTQ dampening λ, as a fraction of mean diag(H).")
    double damp;

    @Option(names = "--block-size", defaultValue = "128", description = "GPTQ block size (lazy batch width).")
    int blockSize;

    @Option(
            names = "--exact-loss-rows",
            defaultValue = "0",
            paramLabel = "N",
            description = "GPTQ: also report the exact proxy loss with the undamped H on about N output rows of each"
                    + " linear (costs a product with H per row; default 0: only the loop's own loss, which is free).")
    int exactLossRows;

    @Option(
            names = "--clip-search",
            negatable = true,
            description = "RTN: choose each group's scale by a search over 101 ranges from its absmax down to 0.8 of"
                    + " it, keeping the least Σ|w − ŵ|^2.4 (the GPTQ reference quantizer's MSE search), instead of the"
                    + " absmax itself. GPTQ: run its column loop once per scale rule (the absmax, that search, the"
                    + " absmax × 0.95, 0.90, 0.85) and keep, per output row, the rule with the least GPTQ loss (never"
                    + " above plain GPTQ's). Java engine (on --device cuda GPTQ's loop then runs on the CPU).")
    boolean clipSearch;

    @Option(
            names = "--autoround-target",
            paramLabel = "bf16-stream|same-input",
            description = "AutoRound: what each quantized layer, run on the quantized model's hidden states, is tuned"
                    + " to match: bf16-stream (default; the BF16 layer's outputs on the BF16 model's own hidden"
                    + " states, carried as a second activation stream, as intel/auto-round does) or same-input (the"
                    + " BF16 layer's outputs on the same quantized hidden states).")
    String autoRoundTarget;

    @Option(names = "--act-order", description = "Quantize columns by descending Hessian diagonal.")
    boolean actOrder;

    @Option(
            names = "--static-groups",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description = "With --act-order, fix groups on the original column order (default; keeps desc_act"
                    + " false and vLLM's fast path).")
    boolean staticGroups;

    @Option(
            names = "--true-sequential",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description = "Quantize [q,k,v] → [o] → [gate,up] → [down], re-running the layer between groups (default).")
    boolean trueSequential;

    @Option(
            names = "--recipe",
            paramLabel = "NAME",
            description = "AutoRound recipe: light, default (the default) or best; explicit options override it.")
    String recipe;

    @Option(
            names = "--iters",
            paramLabel = "N",
            description = "AutoRound: SignRound steps per layer (recipe default: 200); 0 is RTN with AutoRound's"
                    + " scale rule.")
    Integer iters;

    @Option(
            names = "--lr",
            paramLabel = "RATE",
            description = "AutoRound: learning rate of the rounding offsets at step 0, decaying linearly to 0"
                    + " (default 1/iters).")
    Double lr;

    @Option(
            names = "--minmax-lr",
            paramLabel = "RATE",
            description = "AutoRound: learning rate of the clip factors α, β (default: the --lr value).")
    Double minmaxLr;

    @Option(
            names = "--batch-size",
            paramLabel = "N",
            description = "AutoRound: calibration sequences per step (default 8; at most --nsamples).")
    Integer batchSize;

    @Option(
            names = "--calib",
            paramLabel = "FILE",
            arity = "1..*",
            description = "Calibration files: text, or JSON lines with \"text\" or chat \"messages\"; plain,"
                    + " gzip, xz, bzip2 or zstd, or a tar of such files, told apart by content. Default: the model"
                    + " folder's calibration.txt when it has one (the bundled demo model does).")
    List<Path> calib;

    @Option(
            names = "--nsamples",
            paramLabel = "N",
            description = "Calibration windows (default 128; AutoRound: the recipe's, 512 for best; a default is"
                    + " lowered, with a note, to the whole windows a short text holds).")
    Integer nsamplesOption;

    @Option(
            names = "--seqlen",
            paramLabel = "N",
            description = "Tokens per window (default 2048; AutoRound: the recipe's).")
    Integer seqlenOption;

    @Option(
            names = "--seed",
            defaultValue = "0",
            description = "Seed for drawing the windows and AutoRound's batches (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(
            names = "--tp",
            split = ",",
            defaultValue = "1",
            paramLabel = "N",
            description = "Tensor-parallel sizes the release must load at; shapes are checked first (default 1).")
    List<Integer> tp;

    @Option(
            names = "--max-memory",
            defaultValue = "4g",
            paramLabel = "SIZE",
            description = "Budget for calibration activations (e.g. 512m, 8g); beyond it they spill to disk.")
    String maxMemory;

    @Option(
            names = "--max-shard-size",
            defaultValue = "4g",
            paramLabel = "SIZE",
            description = "Largest output shard (default ${DEFAULT-VALUE}).")
    String maxShard;

    @Option(names = "--overwrite", description = "Replace an existing output (only once the new one is complete).")
    boolean overwrite;

    @Option(names = "--resume", description = "Continue an interrupted run with the same options.")
    boolean resume;

    @Option(
            names = "--verify-device",
            description = "Quantize every layer a second time with the Java kernels on the same inputs and stop"
                    + " (exit 1) when more than 5%% of its codes differ from the device's (more than rounding ties"
                    + " flip). Doubles the work: a diagnostic for a GPU in doubt.")
    boolean verifyDevice;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        long t0 = System.nanoTime();
        Path dir = model.dir();
        if ((bits != 4 && bits != 8) || !sym) {
            throw new InputException("m2q writes 4- or 8-bit symmetric weights only (--bits 4 or 8, --sym): other"
                    + " schemes have no engine kernel that loads this layout; got --bits " + bits
                    + (sym ? "" : " --no-sym"));
        }
        Bits width = Bits.of(bits);
        boolean autoRound = method == Method.autoround;
        refuseOptionsOfOtherMethods();
        AutoRoundMethod.Target arTarget =
                autoRoundTarget == null ? AutoRoundMethod.Target.DEFAULT : AutoRoundMethod.Target.byId(autoRoundTarget);
        ReleaseFormat releaseFormat =
                format != null ? ReleaseFormat.byName(format) : autoRound ? GptqRelease.AUTO_ROUND : GptqRelease.GPTQ;
        if (releaseFormat.equals(GptqRelease.AUTO_ROUND) && !autoRound) {
            throw new InputException(
                    "--format auto_round labels AutoRound's output: use it with --method autoround (or write gptq)");
        }
        QuantScheme qs = scheme.get();
        releaseFormat.check(qs, width);
        Recipe rec = Recipe.byName(recipe == null ? "default" : recipe);
        int nsamples = nsamplesOption != null ? nsamplesOption : autoRound ? rec.nsamples() : 128;
        int seqlen = seqlenOption != null ? seqlenOption : autoRound ? rec.seqlen() : 2048;
        GroupSize.require(groupSize);
        if (nsamples < 1 || seqlen < 2) {
            throw new InputException("--nsamples must be ≥ 1 and --seqlen ≥ 2");
        }
        AutoRoundOptions autoRoundOptions = null;
        if (autoRound) {
            autoRoundOptions = AutoRoundOptions.resolve(rec, iters, lr, minmaxLr, batchSize, groupSize, seed);
            if (autoRoundOptions.batchSize() > nsamples) {
                throw new InputException("--batch-size " + autoRoundOptions.batchSize() + " is more than the "
                        + nsamples + " calibration samples (--nsamples): pass a smaller --batch-size or more samples");
            }
        }
        List<PathGuard.Named> inputs = new ArrayList<>(PathGuard.of("--model", dir));
        inputs.addAll(PathGuard.ofEach("--calib", calib));
        PathGuard.check(PathGuard.staged("--out", out), inputs);
        QuantizeJob.checkOutput(out, overwrite, resume);
        ModelConfig cfg = ModelConfig.load(dir);
        if (cfg.quantization() != null) {
            throw new InputException(dir + ": is already quantized (config.json has quantization_config)");
        }
        List<GptqLayoutCheck.Violation> problems = GptqLayoutCheck.checkPlanned(cfg, groupSize, tp);
        if (!problems.isEmpty()) {
            StringBuilder b = new StringBuilder("the release could not load at --tp " + tp + ":");
            problems.forEach(p -> b.append("\n  ").append(p));
            b.append("\n  with --group-size ")
                    .append(groupSize)
                    .append(" it ")
                    .append(GptqLayoutCheck.loadsAt(cfg, groupSize));
            throw new InputException(b.toString());
        }
        // NaN, Inf or fp16-overflowing weights: exit 2 before anything is written.
        WeightScan.check(dir, cfg, releaseFormat);
        // Printed once the inputs are all accepted, so a refusal stays one line on stderr.
        List<String> notes = new ArrayList<>();
        String marlin = GroupSize.marlinWarning(groupSize);
        if (marlin != null) {
            notes.add("warning: " + marlin);
        }
        seqlen = capSeqlen(seqlen, seqlenOption != null, cfg.maxPositionEmbeddings(), notes);
        List<Path> files = calib;
        if (files == null || files.isEmpty()) {
            Path bundled = dir.resolve("calibration.txt");
            if (!Files.isRegularFile(bundled)) {
                throw new InputException("--calib FILE is required (the model folder has no calibration.txt)");
            }
            files = List.of(bundled);
        }
        Tokenizer tok = Tokenizer.load(dir.resolve("tokenizer.json"));
        ChatTemplate chat = Files.isRegularFile(dir.resolve("tokenizer_config.json")) ? chatOrNull(dir) : null;
        CalibrationSet set = CalibrationSet.load(files, tok, chat);
        set.capped().ifPresent(note -> spec.commandLine().getErr().println("m2q: note: " + note));
        // Short text with the default count: as many whole samples as it holds, and AutoRound's default batch no
        // larger (an explicit --nsamples or --batch-size stays a request, refused when unmet). Everything below
        // (config keys, manifest, resume fingerprint) sees the counts used.
        if (nsamplesOption == null) {
            CalibrationSet.Fit fit = set.fit(nsamples, seqlen);
            nsamples = fit.nsamples();
            String note = fit.note().orElse(null);
            if (autoRoundOptions != null && autoRoundOptions.batchSize() > nsamples) {
                if (batchSize != null) {
                    throw new InputException("--batch-size " + batchSize + " is more than the " + nsamples
                            + " samples of " + seqlen + " tokens the calibration text holds: pass a smaller"
                            + " --batch-size or --seqlen, or more calibration text");
                }
                note += ", in AutoRound batches of " + nsamples + " (default " + autoRoundOptions.batchSize() + ")";
                autoRoundOptions = AutoRoundOptions.resolve(rec, iters, lr, minmaxLr, nsamples, groupSize, seed);
            }
            if (note != null) {
                notes.add(note);
            }
        }
        List<int[]> samples = set.sample(nsamples, seqlen, seed);
        Devices.Selection selected = device.select(kernels.get());
        LayerMethod m;
        Map<String, Object> qc = new LinkedHashMap<>();
        if (autoRound) {
            m = new AutoRoundMethod(autoRoundOptions, arTarget, width);
            qc.putAll(autoRoundOptions.configKeys(nsamples, seqlen));
            if (releaseFormat.equals(GptqRelease.GPTQ)) {
                // All linears of a layer are tuned jointly: nothing is sequential, no Hessian is damped.
                qc.put("desc_act", false);
                qc.put("static_groups", false);
                qc.put("true_sequential", false);
            }
        } else {
            // With one group per row, static and dynamic groups are the same single group: g_idx is all 0 and
            // desc_act false either way (vLLM's gptq_marlin.py also drops desc_act when group_size is -1).
            boolean perRow = groupSize == GroupSize.PER_ROW;
            boolean staticOn = actOrder && (staticGroups || perRow);
            GptqOptions gptq = new GptqOptions(
                    bits, groupSize, sym, damp, blockSize, actOrder, staticOn, exactLossRows, clipSearch);
            m = method == Method.gptq
                    ? new GptqMethod(gptq, trueSequential)
                    : new RtnMethod(groupSize, clipSearch, width);
            boolean descAct = actOrder && !staticOn;
            releaseFormat =
                    releaseFormat.withActOrder(CompressedTensorsRelease.ActOrder.of(descAct, staticOn && !perRow));
            qc.put("desc_act", descAct);
            qc.put("static_groups", staticOn && !perRow);
            if (method == Method.gptq) {
                qc.put("true_sequential", trueSequential);
                qc.put("damp_percent", damp);
            }
            if (descAct) {
                notes.add("note: --act-order without static groups writes desc_act true; vLLM reorders such"
                        + " weights at load and may not use its fastest kernel");
            }
        }

        Map<String, Object> calibration = new LinkedHashMap<>();
        calibration.put(
                "files", files.stream().map(p -> p.getFileName().toString()).toList());
        calibration.put("sha256", set.hash());
        calibration.put("tokens", set.totalTokens());
        calibration.put("nsamples", nsamples);
        calibration.put("seqlen", seqlen);

        QuantizeOptions opts = new QuantizeOptions(
                dir,
                out,
                groupSize,
                nsamples,
                seqlen,
                seed,
                Sizes.parse(maxMemory, "--max-memory"),
                Sizes.parse(maxShard, "--max-shard-size"),
                batch(cfg, nsamples, seqlen),
                overwrite,
                resume,
                qc,
                new ArrayList<>(spec.commandLine().getParseResult().originalArgs()),
                Version.get(),
                width);
        var err = spec.commandLine().getErr();
        ProgressListener progress =
                ReleaseProgress.forStage(() -> new ConsoleProgress(err, ConsoleProgress.isTerminal()));
        notes.forEach(progress::info);
        progress.info(String.format(
                Locale.ROOT,
                "m2q quantize: %s, %d layers, %s%s W%d %s sym, %s as %s, %d × %d calibration tokens, %s kernels",
                dir,
                cfg.numLayers(),
                m.name() + (clipSearch ? " with the clip search" : ""),
                autoRound
                        ? String.format(
                                Locale.ROOT,
                                " (%d iters, lr %.4g, minmax lr %.4g, batch %d)",
                                autoRoundOptions.iters(),
                                autoRoundOptions.lr(),
                                autoRoundOptions.minmaxLr(),
                                autoRoundOptions.batchSize())
                        : "",
                bits,
                GroupSize.label(groupSize),
                qs.label(width),
                releaseFormat.id(),
                nsamples,
                seqlen,
                selected.kernels().name()));
        progress.info(selected.line());
        QuantizeJob job = new QuantizeJob(opts, releaseFormat, qs, m, selected.kernels(), progress)
                .checkedBy(release -> InspectCommand.releaseViolations(release, tp));
        if (verifyDevice) {
            job.verifiedOn(kernels.get());
        }
        QuantizeJob.Summary s = job.run(samples, calibration);
        if (!s.violations().isEmpty()) {
            s.violations().forEach(v -> err.println("  " + v));
            err.println("m2q: " + s.out() + ": the new release fails m2q inspect --check at --tp " + tp + " ("
                    + s.violations().size() + " violation(s), listed above); nothing was replaced, the release as"
                    + " written is in " + QuantizeJob.partialDir(s.out()) + " for inspection");
            err.flush();
            return Main.EXIT_CHECK_FAILED;
        }
        var o = spec.commandLine().getOut();
        o.printf(
                Locale.ROOT,
                "wrote %s (%d files%s) in %.1f s%n",
                s.out(),
                s.files().size(),
                s.resumedLayers() > 0 ? ", " + s.resumedLayers() + " layers replayed from the interrupted run" : "",
                (System.nanoTime() - t0) / 1e9);
        o.flush();
        return Main.EXIT_OK;
    }

    /**
     * Refuses an option that belongs to another method than the one chosen, naming it: it would be ignored (and,
     * before this check, was even recorded in quantize_config.json for RTN weights). RTN reads neither GPTQ's nor
     * AutoRound's options.
     */
    private void refuseOptionsOfOtherMethods() {
        var args = spec.commandLine().getParseResult().originalArgs();
        Map<String, String> owner = new LinkedHashMap<>();
        if (method != Method.gptq) {
            GPTQ_ONLY.forEach(o -> owner.put(o, "gptq"));
        }
        if (method != Method.autoround) {
            AUTOROUND_ONLY.forEach(o -> owner.put(o, "autoround"));
        } else {
            NOT_AUTOROUND.forEach(o -> owner.put(o, "gptq and rtn"));
        }
        for (Map.Entry<String, String> e : owner.entrySet()) {
            String name = e.getKey();
            for (String given : List.of(name, "--no-" + name.substring(2))) {
                if (args.stream().anyMatch(a -> a.equals(given) || a.startsWith(given + "="))) {
                    throw new InputException(given + " applies to --method " + e.getValue()
                            + " only; it would be ignored with --method " + method + ": drop it");
                }
            }
        }
    }

    /**
     * The calibration window length against the positions the model was trained on: a default (2048, or
     * AutoRound's recipe value) above max_position_embeddings is lowered to it with a note; an explicit --seqlen
     * above it is honoured, because the user asked, with a warning that those positions were never seen. Notes go
     * to {@code notes}.
     */
    static int capSeqlen(int seqlen, boolean explicit, int maxPositions, List<String> notes) {
        if (seqlen <= maxPositions) {
            return seqlen;
        }
        if (!explicit) {
            notes.add("note: calibrating at --seqlen " + maxPositions + ", the model's max_position_embeddings (the"
                    + " default " + seqlen + " is longer than any position the model was trained on)");
            return maxPositions;
        }
        notes.add("warning: --seqlen " + seqlen + " is above the model's max_position_embeddings " + maxPositions
                + ": calibration runs at positions the model never saw; pass --seqlen " + maxPositions
                + " or less unless that is what you want");
        return seqlen;
    }

    private static ChatTemplate chatOrNull(Path dir) {
        try {
            return ChatTemplate.load(dir);
        } catch (InputException e) {
            return null;
        }
    }

    /**
     * Sequences per layer pass: keeps one batch's intermediate tensors under 256 MiB and an eighth of the heap,
     * so the heap a run needs depends on one layer, not on the calibration set or the model's depth.
     */
    private static int batch(ModelConfig cfg, int nsamples, int seqlen) {
        long perToken = 4L * (6L * cfg.hiddenSize() + 3L * cfg.intermediateSize() + 2L * cfg.qDim());
        long perSeq = perToken * seqlen;
        long budget = Math.min(256L << 20, Runtime.getRuntime().maxMemory() / 8);
        return (int) Math.max(1, Math.min(nsamples, budget / perSeq));
    }
}
