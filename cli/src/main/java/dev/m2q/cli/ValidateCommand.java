package dev.m2q.cli;

import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Devices;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Perplexity;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.PromptFile;
import dev.m2q.core.tokenizer.Tokenizer;
import dev.m2q.validate.ModelCard;
import dev.m2q.validate.Report;
import dev.m2q.validate.SpecBench;
import dev.m2q.validate.ValidateOptions;
import dev.m2q.validate.ValidationReport;
import dev.m2q.validate.Validator;
import dev.m2q.validate.tasks.SideBySide;
import dev.m2q.validate.tasks.TaskEval;
import dev.m2q.validate.tasks.TaskFields;
import dev.m2q.validate.tasks.TaskFile;
import dev.m2q.validate.tasks.TaskScorer;
import dev.m2q.validate.tasks.TaskSection;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code m2q validate --reference BF16DIR --candidate QDIR --text FILE}: the near-lossless proof of a release, read
 * back from its files; without {@code --candidate}, the perplexity of one model. With {@code --draft DIR --prompts
 * FILE}: speculative decoding of the candidate with an EAGLE-3 head, beside the accuracy run or, without
 * {@code --reference}, alone.
 */
@Command(
        name = "validate",
        mixinStandardHelpOptions = true,
        description = {
            "Checks a quantized release against its BF16 reference, from the files on disk: manifest hashes, format"
                    + " rules, then perplexity, per-token KL(P_ref || P_cand) mean and p99, top-1 agreement,"
                    + " per-layer output error, batch-1 decode tokens/s, and your gates. Writes validation.json,"
                    + " validation.md, PNG plots and the release's model card (README.md, rewritten on every run unless"
                    + " a README.md that m2q did not write is there).",
            "Without --candidate: the perplexity of --reference over the text.",
            "With --draft and --prompts: EAGLE-3 speculative decoding of the candidate at batch 1 for each --k (τ,"
                    + " per-position acceptance, tokens/s with and without the head, measured and predicted speedup);"
                    + " without --reference only that runs.",
            "Without gate options the default gates apply (--max-ppl-increase 5, --max-kl 0.1, --min-top1 0.85); an"
                    + " option given overrides only its own default; --no-gates turns them all off and the verdict says"
                    + " \"accuracy not gated\".",
            "Exit 0 when everything passes, 1 when a check or gate fails, 2 on bad input (including a report folder"
                    + " that cannot be written)."
        })
final class ValidateCommand implements Callable<Integer> {
    @Option(
            names = {"--reference", "--model"},
            paramLabel = "DIR",
            description = "The BF16 Hugging Face model directory (config.json, *.safetensors, tokenizer.json);"
                    + " required unless --draft runs speculative decoding alone.")
    Path reference;

    @Mixin
    KernelOptions kernels;

    @Mixin
    DeviceOptions device;

    /** The kernels chosen by --device and --kernels, once per run. */
    private Devices.Selection selection;

    @Option(
            names = "--text",
            paramLabel = "FILE",
            description = "Held-out UTF-8 text, plain or gzip/xz/bzip2/zstd (required with --reference).")
    Path text;

    @Option(
            names = "--seqlen",
            defaultValue = "512",
            description = "Window length in tokens (default ${DEFAULT-VALUE}); each window starts fresh.")
    int seqlen;

    @Option(
            names = "--max-tokens",
            paramLabel = "N",
            description = "Score only the first N tokens of the text (default: all).")
    Integer maxTokens;

    @Option(
            names = "--candidate",
            paramLabel = "DIR",
            description = "The quantized release (GPTQ, auto_round or compressed-tensors) to validate.")
    Path candidate;

    @Option(
            names = "--baseline",
            paramLabel = "rtn",
            description = "Also quantize the reference with RTN on the fly (same group size) and report it beside.")
    String baseline;

    @Option(
            names = "--w4-kernel",
            description = "Run the candidate on the packed W4A16 kernel (default: dequantize its linears to fp32 once,"
                    + " the engines' arithmetic; needs 8x the candidate's weight memory).")
    boolean w4Kernel;

    @Option(
            names = "--tp",
            split = ",",
            defaultValue = "1",
            paramLabel = "N",
            description = "Tensor-parallel sizes the format checks apply (default ${DEFAULT-VALUE}).")
    List<Integer> tp;

    @Option(
            names = "--decode-tokens",
            defaultValue = "32",
            paramLabel = "N",
            description = "Tokens generated per model for batch-1 decode tokens/s (default ${DEFAULT-VALUE}; 0 skips).")
    int decodeTokens;

    @Option(
            names = "--max-ppl-increase",
            paramLabel = "PCT",
            description = "Fail (exit 1) when perplexity rises by more than PCT percent (default 5).")
    Double maxPplIncrease;

    @Option(
            names = "--max-kl",
            paramLabel = "NATS",
            description = "Fail (exit 1) when the mean per-token KL exceeds NATS (default 0.1).")
    Double maxKl;

    @Option(
            names = "--min-top1",
            paramLabel = "FRACTION",
            description = "Fail (exit 1) when top-1 agreement is below FRACTION (default 0.85).")
    Double minTop1;

    @Option(
            names = "--no-gates",
            description = "Apply no accuracy gate (not even the defaults): the figures are reported and the verdict"
                    + " says \"accuracy not gated\" instead of PASSED.")
    boolean noGates;

    @Option(
            names = "--draft",
            paramLabel = "DIR",
            description = "An EAGLE-3 head for the candidate (m2q eagle's output, or a release's draft/ folder):"
                    + " measure speculative decoding with it.")
    Path draft;

    @Option(
            names = "--prompts",
            paramLabel = "FILE",
            description = "Prompts for speculative decoding (.jsonl with messages/prompt/text, or one per line),"
                    + " rendered with the candidate's chat template; may be gzip/xz/bzip2/zstd or a tar (README,"
                    + " \"Input files\").")
    Path prompts;

    @Option(
            names = "--k",
            defaultValue = "1..7",
            paramLabel = "LIST",
            description = "Drafts per round to sweep: a list 1,3,5 or a range 1..7 (default ${DEFAULT-VALUE}).")
    String k;

    @Option(
            names = "--temperature",
            defaultValue = "0",
            paramLabel = "T",
            description = "Speculative decoding's temperature: 0 greedy (default), > 0 speculative sampling.")
    double temperature;

    @Option(
            names = "--spec-tokens",
            defaultValue = "64",
            paramLabel = "N",
            description = "New tokens per prompt for speculative decoding and its plain baseline"
                    + " (default ${DEFAULT-VALUE}).")
    int specTokens;

    @Option(
            names = "--seed",
            defaultValue = "0",
            paramLabel = "N",
            description = "Sampling seed; prompt i uses seed + i (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(
            names = "--report-dir",
            paramLabel = "DIR",
            description = "Where validation.json, validation.md, the plots and the model card (README.md) go (default:"
                    + " the candidate folder).")
    Path reportDir;

    @Option(
            names = "--tasks",
            split = ",",
            paramLabel = "FILE",
            description =
                    "Task files (JSONL, one item per line; several separated by commas): multiple-choice or"
                            + " generative items scored by the reference, the candidate and the RTN baseline when asked, with"
                            + " paired statistics (README, \"Task accuracy\"); each may be gzip/xz/bzip2/zstd or a tar of such files.")
    List<Path> tasks;

    @Option(
            names = "--task-fields",
            paramLabel = "SPEC",
            description = "Field names of the task files, e.g. question=question,choices=options,answer=answer_idx"
                    + " (README lists the mappings of MedQA, MedMCQA, PubMedQA and MMLU).")
    String taskFields;

    @Option(
            names = "--task-chat",
            description = "Render task questions through the model's chat template (the choice as the assistant's"
                    + " answer).")
    boolean taskChat;

    @Option(
            names = "--task-pack-rows",
            defaultValue = "" + TaskScorer.Options.PACK_ROWS,
            paramLabel = "N",
            description = "Multiple-choice items packed into one forward of at most N rows: each item's context once,"
                    + " then its choices' continuations, several items per forward (default ${DEFAULT-VALUE};"
                    + " 0 scores one item at a time from its KV cache; the scores are the same either way).")
    int taskPackRows;

    @Option(
            names = "--task-max-new-tokens",
            defaultValue = "32",
            paramLabel = "N",
            description = "Greedy tokens per generative item and per --generate prompt (default ${DEFAULT-VALUE}).")
    int taskMaxNewTokens;

    @Option(
            names = "--max-acc-drop",
            paramLabel = "POINTS",
            description = "Gate: exit 1 unless the accuracy drop (reference − candidate) is shown to be within POINTS:"
                    + " the upper end of its 95%% paired-bootstrap interval must be ≤ POINTS (each task's acc or"
                    + " exact_match, and the pooled one).")
    Double maxAccDrop;

    @Option(
            names = "--generate",
            paramLabel = "PROMPTS",
            description = "Generation only: both models' greedy answers to PROMPTS side by side as JSONL in --out, for"
                    + " grading outside m2q (PROMPTS as --prompts).")
    Path generate;

    @Option(names = "--out", paramLabel = "FILE", description = "The JSONL file --generate writes.")
    Path generateOut;

    @Option(names = "--overwrite", description = "Let --generate replace an existing --out file.")
    boolean overwrite;

    @Option(
            names = "--base-model",
            paramLabel = "HUB_ID",
            description = "The hub id (owner/name) of the model the release was made from, for the model card's"
                    + " base_model (default: read from a hub-cache --reference folder, else none).")
    String baseModel;

    @Option(names = "--no-report", description = "Write no report files and no model card (print only).")
    boolean noReport;

    @Option(names = "--json", description = "Print the report JSON instead of a summary.")
    boolean json;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    /**
     * {@code --w4-kernel} on a release that is not 4-bit: refused before any work (exit 2), naming the bits. The
     * W4A16 kernel has no 8-bit twin; without the option an 8-bit release is dequantized to fp32 and validates.
     */
    static void requireW4KernelFits(boolean w4Kernel, java.nio.file.Path candidate) {
        if (!w4Kernel || candidate == null || !java.nio.file.Files.isRegularFile(candidate.resolve("config.json"))) {
            return;
        }
        dev.m2q.core.model.ModelConfig.Quantization q =
                dev.m2q.core.model.ModelConfig.load(candidate).quantization();
        if (q != null && q.bits() != 4) {
            throw new InputException("--w4-kernel: " + candidate + " is an " + q.bits() + "-bit release"
                    + " (quantization_config bits " + q.bits() + "); the packed W4A16 kernel reads 4-bit linears only,"
                    + " run without --w4-kernel to validate it dequantized to fp32");
        }
    }

    @Override
    public Integer call() {
        // The report may go into the candidate (the default) but into no other input; it writes only its own files.
        PathGuard.check(
                PathGuard.of("--report-dir", reportDir),
                PathGuard.all(
                        PathGuard.of("--reference", reference),
                        PathGuard.of("--text", text),
                        PathGuard.of("--draft", draft),
                        PathGuard.of("--prompts", prompts)));
        if (generate != null) {
            return generateOnly();
        }
        if (generateOut != null) {
            throw new InputException("--out is the file --generate writes: give --generate PROMPTS too");
        }
        requireW4KernelFits(w4Kernel, candidate);
        TaskEval.Options taskOptions = taskOptions();
        Speculative sp = speculative();
        ModelCard.Source card = candidate == null ? null : new ModelCard.Source(candidate, reference, baseModel);
        if (reference == null) {
            if (sp == null) {
                throw new InputException("--reference is required (or --candidate with --draft and --prompts for a"
                        + " speculative-only run)");
            }
            return speculativeOnly(sp, card);
        }
        if (text == null) {
            throw new InputException("--text is required with --reference (the held-out text to score)");
        }
        if (seqlen < 2) {
            throw new InputException("--seqlen must be at least 2, got " + seqlen);
        }
        if (maxTokens != null && maxTokens < 2) {
            throw new InputException("--max-tokens must be at least 2, got " + maxTokens);
        }
        if (!Files.isDirectory(reference)) {
            throw new InputException(reference + ": not a directory (--reference takes the BF16 model directory)");
        }
        if (baseline != null && !baseline.equals("rtn")) {
            throw new InputException("--baseline " + baseline + ": the only baseline is rtn");
        }
        ValidateOptions.Gates gates = ValidateOptions.Gates.of(maxPplIncrease, maxKl, minTop1, noGates);
        if (candidate != null) {
            if (!Files.isDirectory(candidate)) {
                throw new InputException(candidate + ": not a directory (--candidate)");
            }
            requireReportDir();
        }
        String content = TextFiles.readUtf8(text, "--text");
        selection = device.select(kernels.get());
        PrintWriter err = spec.commandLine().getErr();
        int[] ids = Tokenizer.load(reference.resolve("tokenizer.json")).encode(content);
        if (maxTokens != null && ids.length > maxTokens) {
            ids = Arrays.copyOf(ids, maxTokens);
        }
        if (ids.length < 2) {
            throw new InputException(text + ": has " + ids.length + " token(s); perplexity needs at least 2");
        }
        PrintWriter out = spec.commandLine().getOut();
        if (candidate == null) {
            PerplexityReport ref = score(reference, ids, err);
            if (json) {
                out.print(Json.writePretty(ref));
            } else {
                out.println(sentence(ref));
            }
            out.flush();
            if (!Double.isFinite(ref.ppl())) {
                err.println("m2q: " + reference + ": the perplexity is not a finite number (the model's logits"
                        + " overflowed or are NaN)");
                err.flush();
                return Main.EXIT_CHECK_FAILED;
            }
            return Main.EXIT_OK;
        }
        ValidateOptions opts = new ValidateOptions(
                reference,
                candidate,
                text,
                ids,
                seqlen,
                selection.kernels(),
                w4Kernel,
                baseline != null,
                tp,
                decodeTokens,
                gates);
        say(err);
        Validator.Outcome run = Validator.run(opts, taskOptions, Version.get(), log(err));
        // Speculative decoding runs only on a candidate that passed its checks; asked for but not run, it is null.
        Validator.Outcome o =
                sp != null && run.report().accuracy() != null ? run.withSpeculative(runSpeculative(sp, err)) : run;
        List<Path> written = writeReport(o, card, () -> {
            if (json) {
                out.print(o.report().toJson());
            } else {
                summary(out, o.report());
                if (sp != null) {
                    out.println(specSummary(o.report()));
                }
            }
            out.flush();
        });
        if (!json) {
            written.forEach(p -> out.println("wrote " + p));
        }
        out.flush();
        return o.passed() ? Main.EXIT_OK : Main.EXIT_CHECK_FAILED;
    }

    /** The task files and scorer options of --tasks, read and checked before any work; null without --tasks. */
    private TaskEval.Options taskOptions() {
        if (tasks == null || tasks.isEmpty()) {
            if (maxAccDrop != null || taskFields != null || taskChat) {
                throw new InputException("--max-acc-drop, --task-fields and --task-chat apply to --tasks FILE");
            }
            return null;
        }
        if (reference == null || candidate == null) {
            throw new InputException("--tasks needs --reference and --candidate (both models answer every item)");
        }
        if (taskMaxNewTokens < 1) {
            throw new InputException("--task-max-new-tokens must be at least 1, got " + taskMaxNewTokens);
        }
        if (maxAccDrop != null && !(maxAccDrop >= 0 && maxAccDrop <= 100)) {
            throw new InputException("--max-acc-drop must be in [0, 100] points, got " + maxAccDrop);
        }
        if (taskPackRows < 0) {
            throw new InputException(
                    "--task-pack-rows must be 0 (one item at a time) or positive, got " + taskPackRows);
        }
        for (Path t : tasks) {
            PathGuard.check(PathGuard.of("--report-dir", reportDir), PathGuard.of("--tasks", t));
        }
        List<TaskFile> files =
                TaskFile.readAll(tasks, taskFields == null ? TaskFields.DEFAULT : TaskFields.parse(taskFields));
        TaskScorer.Options so = new TaskScorer.Options(
                taskChat ? ChatTemplate.load(reference) : null,
                taskMaxNewTokens,
                SpecBench.eosIds(reference),
                null,
                taskPackRows);
        return new TaskEval.Options(files, so, maxAccDrop);
    }

    /** --generate PROMPTS --out FILE: both models' answers side by side, nothing else. */
    private int generateOnly() {
        if (reference == null || candidate == null || generateOut == null) {
            throw new InputException("--generate needs --reference, --candidate and --out FILE");
        }
        if (taskMaxNewTokens < 1) {
            throw new InputException("--task-max-new-tokens must be at least 1, got " + taskMaxNewTokens);
        }
        PathGuard.check(
                PathGuard.of("--out", generateOut),
                PathGuard.all(
                        PathGuard.of("--reference", reference),
                        PathGuard.of("--candidate", candidate),
                        PathGuard.of("--generate", generate)));
        if (Files.isDirectory(generateOut)) {
            throw new InputException(generateOut + ": is a directory (--out takes a file)");
        }
        if (Files.exists(generateOut) && !overwrite) {
            throw new InputException(generateOut + ": exists (pass --overwrite to replace it)");
        }
        PromptFile.read(generate);
        selection = device.select(kernels.get());
        PrintWriter err = spec.commandLine().getErr();
        say(err);
        int n;
        try (Qwen2Model ref = Qwen2Model.load(reference, selection.kernels());
                Qwen2Model cand =
                        Qwen2Model.load(candidate, selection.kernels(), new Qwen2Model.LoadOptions(w4Kernel, null))) {
            n = SideBySide.run(
                    ref,
                    cand,
                    reference,
                    generate,
                    taskMaxNewTokens,
                    SpecBench.eosIds(reference),
                    generateOut,
                    log(err));
        }
        PrintWriter out = spec.commandLine().getOut();
        out.println("wrote " + generateOut + " (" + n + " prompts, reference and candidate side by side)");
        out.flush();
        return Main.EXIT_OK;
    }

    /** Where the report goes: --report-dir, else the candidate folder. */
    private Path reportFolder() {
        return reportDir != null ? reportDir : candidate;
    }

    /**
     * Before any work: the report folder can be written (a file given as --report-dir, or a read-only candidate
     * folder, would otherwise be found only after the whole run).
     */
    private void requireReportDir() {
        if (!noReport) {
            Report.requireWritable(
                    reportFolder(),
                    reportDir != null ? "--report-dir" : "the candidate folder (where the report goes by default)");
        }
    }

    /**
     * Prints the figures ({@code print}) and writes the report; when writing fails (a full disk, a folder that
     * changed since the check), the figures are printed all the same and the failure is one line, exit 2.
     */
    private List<Path> writeReport(Validator.Outcome o, ModelCard.Source card, Runnable print) {
        if (noReport) {
            print.run();
            return List.of();
        }
        List<Path> written;
        try {
            PrintWriter err = spec.commandLine().getErr();
            written = Report.write(reportFolder(), o, card, line -> {
                err.println("m2q: " + line);
                err.flush();
            });
        } catch (UncheckedIOException e) {
            print.run();
            throw new InputException(
                    e.getMessage() + " (the figures are printed above; free space or pass --report-dir DIR or"
                            + " --no-report)",
                    e);
        }
        print.run();
        return written;
    }

    /** What --draft asks for, checked before anything runs; null without --draft. */
    private record Speculative(SpecBench.Options options, DraftHead head) {}

    private Speculative speculative() {
        if (draft == null) {
            if (prompts != null) {
                throw new InputException("--prompts is for speculative decoding: give --draft DIR too");
            }
            return null;
        }
        if (candidate == null) {
            throw new InputException("--draft needs --candidate (the release the head drafts for)");
        }
        if (prompts == null) {
            throw new InputException("--draft needs --prompts FILE (the prompts to decode)");
        }
        if (!Files.isDirectory(candidate)) {
            throw new InputException(candidate + ": not a directory (--candidate)");
        }
        PromptFile.read(prompts);
        int[] ks = SpecBench.parseKs(k);
        SpecBench.Options opts =
                new SpecBench.Options(candidate, draft, prompts, ks, temperature, specTokens, seed, w4Kernel, null);
        DraftHead head = SpecBench.readHead(draft, ModelConfig.load(candidate));
        return new Speculative(opts, head);
    }

    private int speculativeOnly(Speculative sp, ModelCard.Source card) {
        requireReportDir();
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter out = spec.commandLine().getOut();
        ValidationReport report =
                ValidationReport.speculativeOnly(Version.get(), candidate.toString(), runSpeculative(sp, err));
        Validator.Outcome o = new Validator.Outcome(report, null, null, null);
        List<Path> written = writeReport(o, card, () -> {
            if (json) {
                out.print(report.toJson());
            } else {
                out.println(specSummary(report));
            }
            out.flush();
        });
        if (!json) {
            written.forEach(p -> out.println("wrote " + p));
        }
        out.flush();
        return Main.EXIT_OK;
    }

    private SpecBench.Measurements runSpeculative(Speculative sp, PrintWriter err) {
        if (selection == null) {
            selection = device.select(kernels.get());
            say(err);
        }
        SpecBench.Options o = sp.options();
        SpecBench.Options withKernels = new SpecBench.Options(
                o.candidate(),
                o.draft(),
                o.prompts(),
                o.ks(),
                o.temperature(),
                o.specTokens(),
                o.seed(),
                o.w4Kernel(),
                selection.kernels());
        return SpecBench.run(withKernels, sp.head(), log(err)).json();
    }

    /** The stage's log: the release's progress while m2q release runs it, else lines on stderr (none with --json). */
    private ProgressListener log(PrintWriter err) {
        return ReleaseProgress.forStage(() -> ProgressListener.lines(line -> {
            if (!json) {
                err.println(line);
                err.flush();
            }
        }));
    }

    /** One line: the plain baseline and the k with the best measured speedup. */
    static String specSummary(ValidationReport report) {
        SpecBench.Measurements s = report.speculative();
        if (s == null) {
            return "speculative decoding: not measured (the candidate failed its checks)";
        }
        SpecBench.SweepRow best = null;
        for (SpecBench.SweepRow r : s.sweep()) {
            if (best == null || r.speedup() > best.speedup()) {
                best = r;
            }
        }
        return String.format(
                Locale.ROOT,
                "speculative T=%s, %s prompts: plain %.1f tok/s; best k=%s: τ %.3f, %.1f tok/s, %.2fx (predicted %s), c"
                        + " %.3f",
                s.temperature(),
                s.prompts(),
                s.plain().tokensPerSecond(),
                best.k(),
                best.tau(),
                best.tokensPerSecond(),
                best.speedup(),
                num(best.predictedSpeedup(), "%.2fx", "-"),
                best.c());
    }

    /** The device line, once the options and the model are known good (bad input gets its one line alone). */
    private void say(PrintWriter err) {
        err.println(selection.line());
        err.flush();
    }

    /** The summary: the figures of each model, the task comparisons, the throughput, the verdict and failures. */
    static void summary(PrintWriter out, ValidationReport r) {
        ValidationReport.Accuracy acc = r.accuracy();
        if (acc != null) {
            out.printf(Locale.ROOT, "reference perplexity %s%n", num(acc.referencePpl(), "%.4f"));
            List<ValidationReport.ModelFigures> models = new ArrayList<>();
            models.add(acc.candidate());
            if (acc.baselineRtn() != null) {
                models.add(acc.baselineRtn());
            }
            for (ValidationReport.ModelFigures m : models) {
                out.printf(
                        Locale.ROOT,
                        "%-9s perplexity %s (%s), KL mean %s p99 %s, top-1 %s%n",
                        m == acc.candidate() ? "candidate" : "RTN",
                        num(m.ppl(), "%.4f"),
                        Report.pplIncrease(m, "n/a"),
                        num(m.klMean(), "%.5f"),
                        num(m.klP99(), "%.5f"),
                        percent(m.top1Agreement()));
            }
            if (r.tasks() != null) {
                List<TaskSection.Comparison> shown = new ArrayList<>(r.tasks().perTask());
                shown.addAll(r.tasks().overall());
                for (TaskSection.Comparison c : shown) {
                    out.printf(
                            Locale.ROOT,
                            "task %s (%s, %d items): reference %s, candidate %s, Δ %s points [%s, %s], McNemar p %s%n",
                            c.task(),
                            c.metric(),
                            c.n(),
                            percent1(c.reference().accuracy()),
                            percent1(c.candidate().accuracy()),
                            num(c.deltaPoints(), "%+.1f"),
                            num(c.deltaLow(), "%+.1f"),
                            num(c.deltaHigh(), "%+.1f"),
                            num(c.mcnemarP(), "%.3g"));
                    TaskSection.Paired p = c.rtnVsReference();
                    if (p != null) {
                        out.printf(
                                Locale.ROOT,
                                "  RTN %s, Δ %s points [%s, %s], McNemar p %s, flips r→w %d, w→r %d%n",
                                percent1(c.rtn().accuracy()),
                                num(p.deltaPoints(), "%+.1f"),
                                num(p.deltaLow(), "%+.1f"),
                                num(p.deltaHigh(), "%+.1f"),
                                num(p.mcnemarP(), "%.3g"),
                                p.rightToWrong(),
                                p.wrongToRight());
                    }
                }
            }
            if (acc.simulated8bit() != null) {
                for (ValidationReport.Simulated m : acc.simulated8bit()) {
                    out.printf(
                            Locale.ROOT,
                            "  %-28s perplexity %s (%s), KL mean %s (%s over W4A16), top-1 %s%n",
                            m.scheme(),
                            num(m.ppl(), "%.4f"),
                            num(m.pplIncreasePercent(), "%+.3f%%"),
                            num(m.klMean(), "%.5f"),
                            num(m.extraKlMean(), "%+.5f"),
                            percent(m.top1Agreement()));
                }
            }
        }
        if (r.throughput() != null) {
            StringBuilder b = new StringBuilder("decode batch 1:");
            r.throughput()
                    .tokensPerSecond()
                    .forEach((k, v) -> b.append(String.format(Locale.ROOT, " %s %.1f tok/s;", k, v)));
            out.println(b.substring(0, b.length() - 1));
        }
        out.println(r.verdict());
        r.failures().forEach(f -> out.println("  " + f));
    }

    /** A figure that may not be finite (null in the JSON), formatted, or "n/a". */
    private static String num(double v, String format) {
        return num(v, format, "n/a");
    }

    private static String num(double v, String format, String otherwise) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, format, v) : otherwise;
    }

    private static String percent(double fraction) {
        return num(100 * fraction, "%.2f%%");
    }

    private static String percent1(double fraction) {
        return num(100 * fraction, "%.1f%%");
    }

    /**
     * The perplexity of one model (no --candidate), as {@code --json} prints it.
     *
     * @param nll the summed next-token negative log-likelihood, nats (NaN, written null, when not finite)
     * @param ppl exp(nll / predicted)
     */
    record PerplexityReport(
            String model,
            String text,
            int tokens,
            long predicted,
            int windows,
            int seqlen,
            double nll,
            double ppl,
            String kernels,
            double seconds) {}

    private PerplexityReport score(Path modelDir, int[] ids, PrintWriter err) {
        long t0 = System.nanoTime();
        Perplexity.Result r;
        try (Qwen2Model m = Qwen2Model.load(modelDir, selection.kernels())) {
            say(err);
            r = Perplexity.evaluate(m, ids, seqlen);
        }
        return new PerplexityReport(
                modelDir.toString(),
                text.toString(),
                r.tokens(),
                r.predicted(),
                r.windows(),
                seqlen,
                r.nll(),
                r.ppl(),
                selection.kernels().name(),
                (System.nanoTime() - t0) / 1e9);
    }

    private static String sentence(PerplexityReport j) {
        return String.format(
                Locale.ROOT,
                "perplexity %s over %d tokens (%d predictions in %d windows of up to %d) [%s, %s kernels, %.1f s]",
                num(j.ppl(), "%.4f"),
                j.tokens(),
                j.predicted(),
                j.windows(),
                j.seqlen(),
                j.model(),
                j.kernels(),
                j.seconds());
    }
}
