package dev.m2q.validate;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.model.ActivationQuant;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.quant.ActivationSimulation;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.CompressedTensorsFormat;
import dev.m2q.core.quant.GptqLayoutCheck;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.tokenizer.Tokenizer;
import dev.m2q.validate.tasks.TaskEval;
import dev.m2q.validate.tasks.TaskSection;
import dev.m2q.validate.tasks.TaskStats;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * {@code m2q validate}: first the candidate's integrity (every file and tensor against m2q-manifest.json) and its
 * format (the rules engines load by), then, when both pass, its accuracy against the reference on held-out text
 * (ALGORITHMS.md §6), the optional RTN baseline, batch-1 decode throughput, and the user's gates.
 *
 * <p>The candidate is read only through {@code core}'s readers ({@link Qwen2Model} over {@code PackedLinears}):
 * what is measured is what is on disk. The three models run side by side, layer by layer, on the same window, so
 * the per-layer errors need no stored hidden states and memory stays at one window's activations.
 *
 * <p>A compressed-tensors release that declares 8-bit activations or an FP8 KV cache is run as the engines would run
 * it: its 8-bit parts are simulated from the scales it wrote ({@link ActivationSimulation}), and the candidate's
 * figures are those of the whole scheme. Beside it the same weights run as W4A16 and with each 8-bit part alone, so
 * the report gives the extra KL and perplexity each part costs over W4A16 (ALGORITHMS.md §4), and the fraction of
 * values the static scales saturate on the held-out text.
 */
public final class Validator {
    /**
     * The units of progress reported to a {@link ProgressListener} log: a perplexity window (every model compared
     * runs it), then a decode-throughput model.
     */
    public static final String PHASE_WINDOWS = "window";

    public static final String PHASE_DECODE = "decode model";

    /** Logit rows computed at once (bounds the [rows, vocab] buffers for a 152k vocabulary). */
    private static final int LOGIT_ROWS = 64;

    private static final int PROMPT_TOKENS = 16;

    private Validator() {}

    /**
     * What a run found.
     *
     * @param report the whole report (validation.json)
     * @param candidate the candidate's per-token and per-layer series, null when checks failed before accuracy ran
     * @param baseline the RTN baseline's, or null
     * @param tasks the task comparisons (for the plot), or null without {@code --tasks}
     */
    public record Outcome(ValidationReport report, Figures candidate, Figures baseline, TaskEval.Result tasks) {
        public Outcome {
            Objects.requireNonNull(report);
        }

        /** One line per failed check or gate; empty when the candidate passed. */
        public List<String> failures() {
            return report.failures();
        }

        public boolean passed() {
            return report.passed();
        }

        /** Decode tokens/s per configuration, in the order measured (empty when not measured). */
        public Map<String, Double> throughput() {
            return report.throughput() == null ? Map.of() : report.throughput().tokensPerSecond();
        }

        /** The same outcome, its report with the speculative-decoding measurements. */
        public Outcome withSpeculative(SpecBench.Measurements s) {
            return new Outcome(report.withSpeculative(s), candidate, baseline, tasks);
        }
    }

    /** The per-token and per-layer series the plots draw. */
    public record Figures(String label, double[] kl, double[] layerErrors) {}

    public static Outcome run(ValidateOptions o, String m2qVersion, Consumer<String> log) {
        return run(o, null, m2qVersion, log);
    }

    /**
     * {@link #run(ValidateOptions, String, Consumer)} with task accuracy ({@code --tasks}) when {@code tasks} is
     * not null: every task scored by the reference, the candidate and the RTN baseline (when asked) on the models
     * the text metrics use, compared and gated ({@link TaskEval}).
     */
    public static Outcome run(ValidateOptions o, TaskEval.Options tasks, String m2qVersion, Consumer<String> log) {
        List<String> failures = new ArrayList<>();

        Manifest.Verification v = Manifest.verifyRelease(o.candidate());
        ValidationReport.Integrity integrity = new ValidationReport.Integrity(
                v.present(),
                v.files(),
                v.tensors(),
                v.problems().stream().map(Validator::problem).toList());
        log.accept(
                v.present()
                        ? "integrity: " + v.files() + " files and " + v.tensors() + " tensors checked against "
                                + Manifest.FILE + ", " + v.problems().size() + " problem(s)"
                        : "integrity: no " + Manifest.FILE + " (not an m2q release): file hashes not verified");
        v.problems().forEach(p -> failures.add("integrity: " + p));

        List<GptqLayoutCheck.Violation> violations = GptqLayoutCheck.checkCheckpoint(o.candidate(), o.tpSizes());
        ValidationReport.FormatChecks format = new ValidationReport.FormatChecks(
                o.tpSizes(), violations.stream().map(Validator::violation).toList());
        log.accept("format: " + violations.size() + " rule(s) broken at --tp " + o.tpSizes());
        violations.forEach(x -> failures.add("format: " + x));

        if (!failures.isEmpty()) {
            ValidationReport report = new ValidationReport(
                    m2qVersion,
                    o.reference().toString(),
                    o.candidate().toString(),
                    integrity,
                    format,
                    null,
                    null,
                    null,
                    null,
                    null,
                    null,
                    null,
                    null,
                    "accuracy was not measured: the candidate failed the integrity or format checks",
                    null,
                    null,
                    unevaluated(o.gates()),
                    null,
                    false,
                    failures,
                    verdict(integrity, format, null, failures, o.gates()),
                    null);
            return new Outcome(report, null, null, null);
        }

        ModelConfig refCfg = ModelConfig.load(o.reference());
        ModelConfig candCfg = ModelConfig.load(o.candidate());
        requireSameModel(refCfg, candCfg, o);
        QuantScheme scheme = CompressedTensorsFormat.scheme(o.candidate());
        long t0 = System.nanoTime();
        Agreement cand = new Agreement("candidate", refCfg.numLayers());
        Agreement base = o.baselineRtn() ? new Agreement("rtn", refCfg.numLayers()) : null;
        List<QuantScheme> parts = parts(scheme);
        List<Simulated> simulated = new ArrayList<>();
        double refNll = 0;
        List<Double> refWindowNll = new ArrayList<>();
        List<Integer> windowTokens = new ArrayList<>();
        long predicted = 0;
        int windows = 0;
        TaskEval.Result taskResult = null;
        try (Qwen2Model ref = Qwen2Model.load(o.reference(), o.kernels());
                Qwen2Model q =
                        Qwen2Model.load(o.candidate(), o.kernels(), new Qwen2Model.LoadOptions(o.w4Kernel(), null));
                Qwen2Model rtn = o.baselineRtn()
                        ? Qwen2Model.load(
                                o.reference(),
                                o.kernels(),
                                new Qwen2Model.LoadOptions(
                                        true,
                                        RtnBaseline.transform(
                                                candCfg.quantization().groupSize(),
                                                Bits.of(candCfg.quantization().bits()))))
                        : null) {
            List<Run> runs = new ArrayList<>();
            ActivationQuant whole = ActivationQuant.NONE;
            if (scheme.eightBit()) {
                ActivationSimulation sim = ActivationSimulation.read(o.candidate(), candCfg, scheme);
                whole = sim;
                for (QuantScheme part : parts) {
                    ActivationSimulation ps =
                            part.eightBit() ? ActivationSimulation.read(o.candidate(), candCfg, part) : null;
                    Agreement a = new Agreement(part.label(), refCfg.numLayers());
                    simulated.add(new Simulated(part, a, ps));
                    runs.add(new Run(q, ps == null ? ActivationQuant.NONE : ps, a));
                }
                simulated.add(new Simulated(scheme, cand, sim));
                log.accept("8-bit: simulating " + scheme.label() + " from the written scales, beside "
                        + String.join(
                                ", ", parts.stream().map(QuantScheme::label).toList()));
            }
            runs.addFirst(new Run(q, whole, cand));
            if (rtn != null) {
                runs.add(new Run(rtn, ActivationQuant.NONE, base));
            }
            int[] ids = o.ids();
            int allWindows = windows(ids.length, o.seqLen());
            for (int start = 0; start + 1 < ids.length; start += o.seqLen()) {
                int[] w = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + o.seqLen()));
                double wn = window(ref, runs, w);
                refNll += wn;
                refWindowNll.add(wn);
                windowTokens.add(w.length - 1);
                predicted += w.length - 1;
                windows++;
                ProgressListener.units(
                        log,
                        PHASE_WINDOWS,
                        windows,
                        allWindows,
                        String.format(
                                Locale.ROOT,
                                "window %d: %d tokens, running KL mean %.5f, top-1 %.4f",
                                windows,
                                w.length,
                                cand.klMean(),
                                cand.top1()));
            }
            if (tasks != null) {
                Tokenizer tok = Tokenizer.load(o.reference().resolve("tokenizer.json"));
                if (whole == ActivationQuant.NONE) {
                    taskResult = TaskEval.run(ref, q, rtn, tok, tasks, log);
                } else {
                    // The release as declared: its 8-bit activations and KV cache simulated in every forward.
                    try (Qwen2Model declared = q.withActivationQuant(whole)) {
                        taskResult = TaskEval.run(ref, declared, rtn, tok, tasks, log);
                    }
                }
            }
        }
        double refPpl = Math.exp(refNll / predicted);
        ValidationReport.PplWindows pplWindows = new ValidationReport.PplWindows(
                refWindowNll, windowTokens, TaskStats.DEFAULT_RESAMPLES, TaskStats.DEFAULT_SEED);
        ValidationReport.Accuracy accuracy = new ValidationReport.Accuracy(
                windows,
                predicted,
                refPpl,
                cand.figures(refPpl, pplWindows),
                base == null ? null : base.figures(refPpl, pplWindows),
                simulated.isEmpty() ? null : simulatedFigures(simulated, refPpl, pplWindows),
                (System.nanoTime() - t0) / 1e9,
                pplWindows);

        ValidationReport.Throughput throughput = o.decodeTokens() > 0 ? throughput(o, log) : null;

        nonFinite(refPpl, cand, failures);
        List<ValidationReport.Gate> gates = gates(o.gates(), refPpl, cand, failures);
        TaskSection taskSection = null;
        if (taskResult != null) {
            taskSection = taskResult.json();
            failures.addAll(taskSection.failures());
        }
        ValidationReport report = new ValidationReport(
                m2qVersion,
                o.reference().toString(),
                o.candidate().toString(),
                integrity,
                format,
                candCfg.quantization().format().quantMethod(),
                candCfg.quantization().groupSize(),
                o.w4Kernel() ? "w4a16 kernel (packed)" : "dequantized to fp32",
                o.kernels().name(),
                o.text().toString(),
                o.ids().length,
                o.seqLen(),
                scheme.label(Bits.of(candCfg.quantization().bits())),
                null,
                accuracy,
                throughput,
                gates,
                taskSection,
                failures.isEmpty(),
                failures,
                verdict(integrity, format, taskSection, failures, o.gates()),
                null);
        return new Outcome(
                report,
                new Figures("candidate", cand.kl(), cand.layerErrors()),
                base == null ? null : new Figures("RTN", base.kl(), base.layerErrors()),
                taskResult);
    }

    /**
     * The windows {@code tokens} tokens make at {@code seqLen} per window (a window needs two tokens: one to predict
     * from, one predicted).
     */
    public static int windows(int tokens, int seqLen) {
        int n = 0;
        for (int start = 0; start + 1 < tokens; start += seqLen) {
            n++;
        }
        return n;
    }

    /** One model compared with the reference: its weights, the activations it simulates, its figures. */
    private record Run(Qwen2Model model, ActivationQuant activations, Agreement agreement) {}

    /** A scheme simulated on the candidate's weights, with its figures and the simulation (null: W4A16). */
    private record Simulated(QuantScheme scheme, Agreement agreement, ActivationSimulation simulation) {}

    /**
     * The parts of a declared 8-bit scheme measured beside it: W4A16, then the KV cache alone and the activations
     * alone when the scheme has both.
     */
    static List<QuantScheme> parts(QuantScheme s) {
        List<QuantScheme> out = new ArrayList<>();
        if (!s.eightBit()) {
            return out;
        }
        out.add(QuantScheme.W4A16);
        if (s.activations() != null && s.kvCache() != null) {
            out.add(s.withoutActivations());
            out.add(s.withoutKvCache());
        }
        return out;
    }

    /** One window through all models side by side; returns the reference's summed next-token NLL. */
    private static double window(Qwen2Model ref, List<Run> runs, int[] w) {
        int n = w.length;
        float[] xr = ref.embed(w);
        float[][] xs = new float[runs.size()][];
        for (int j = 0; j < runs.size(); j++) {
            xs[j] = runs.get(j).model().embed(w);
        }
        for (int i = 0; i < ref.numLayers(); i++) {
            xr = ref.layer(i).forward(xr, 1, n, LayerObserver.NONE);
            for (int j = 0; j < runs.size(); j++) {
                Run run = runs.get(j);
                xs[j] = run.model()
                        .layer(i)
                        .withActivationQuant(run.activations())
                        .forward(xs[j], 1, n, LayerObserver.NONE);
                run.agreement().layer(i, xr, xs[j]);
            }
        }
        int hd = ref.config().hiddenSize();
        int vocab = ref.config().vocabSize();
        double nll = 0;
        for (int r0 = 0; r0 < n; r0 += LOGIT_ROWS) {
            int rows = Math.min(LOGIT_ROWS, n - r0);
            float[] lr = ref.logits(Arrays.copyOfRange(xr, r0 * hd, (r0 + rows) * hd), rows);
            float[][] ls = new float[runs.size()][];
            for (int j = 0; j < runs.size(); j++) {
                ls[j] = runs.get(j).model().logits(Arrays.copyOfRange(xs[j], r0 * hd, (r0 + rows) * hd), rows);
            }
            for (int r = 0; r < rows; r++) {
                int t = r0 + r;
                int target = t + 1 < n ? w[t + 1] : -1;
                Agreement.Row refRow = Agreement.Row.of(lr, r * vocab, vocab);
                for (int j = 0; j < runs.size(); j++) {
                    runs.get(j).agreement().position(lr, refRow, ls[j], r * vocab, vocab, target);
                }
                if (target >= 0) {
                    nll -= refRow.logProb(lr, r * vocab, target);
                }
            }
        }
        return nll;
    }

    /**
     * Each simulated scheme's figures with what it adds over W4A16 on the same weights: the difference of the mean
     * KL(P_ref ‖ ·) and of the perplexity increase (in percentage points), and the share of values the static scales
     * saturate on this text.
     */
    private static List<ValidationReport.Simulated> simulatedFigures(
            List<Simulated> simulated, double refPpl, ValidationReport.PplWindows windows) {
        Agreement w4a16 = simulated.stream()
                .filter(s -> !s.scheme().eightBit())
                .findFirst()
                .orElseThrow()
                .agreement();
        double w4Increase = 100 * (w4a16.ppl() / refPpl - 1);
        List<ValidationReport.Simulated> out = new ArrayList<>();
        for (Simulated s : simulated) {
            Agreement a = s.agreement();
            ValidationReport.Saturation saturation = null;
            if (s.simulation() != null) {
                ActivationSimulation.Saturation sat = s.simulation().saturation();
                saturation = new ValidationReport.Saturation(sat.staticInputs(), sat.keys(), sat.values());
            }
            List<Double> klCi = null;
            List<Double> pplCi = null;
            if (a != w4a16) {
                // The same weights with and without the 8-bit parts, window by window.
                TaskStats.Interval kl = PplStats.meanDifferenceInterval(
                        a.windowKl(), w4a16.windowKl(), windows.positionsArray(), windows.resamples(), windows.seed());
                TaskStats.Interval ppl = PplStats.differenceInterval(
                        windows.referenceNllArray(),
                        a.windowNll(),
                        w4a16.windowNll(),
                        windows.tokensArray(),
                        windows.resamples(),
                        windows.seed());
                klCi = List.of(kl.low(), kl.high());
                pplCi = List.of(ppl.low(), ppl.high());
            }
            out.add(new ValidationReport.Simulated(
                    s.scheme().label(),
                    a.ppl(),
                    100 * (a.ppl() / refPpl - 1),
                    a.klMean(),
                    a.klP99(),
                    a.top1(),
                    a.klMean() - w4a16.klMean(),
                    100 * (a.ppl() / refPpl - 1) - w4Increase,
                    saturation,
                    klCi,
                    pplCi));
        }
        return out;
    }

    private static ValidationReport.Throughput throughput(ValidateOptions o, Consumer<String> log) {
        int[] prompt = Arrays.copyOf(o.ids(), Math.min(PROMPT_TOKENS, o.ids().length));
        Map<String, Double> out = new LinkedHashMap<>();
        int models = o.w4Kernel() ? 2 : 3;
        try (Qwen2Model ref = Qwen2Model.load(o.reference(), o.kernels())) {
            out.put("BF16", Decode.tokensPerSecond(ref, prompt, o.decodeTokens()));
        }
        ProgressListener.units(log, PHASE_DECODE, 1, models, null);
        try (Qwen2Model q = Qwen2Model.load(o.candidate(), o.kernels(), new Qwen2Model.LoadOptions(true, null))) {
            out.put("W4A16 kernel", Decode.tokensPerSecond(q, prompt, o.decodeTokens()));
        }
        ProgressListener.units(log, PHASE_DECODE, 2, models, null);
        if (!o.w4Kernel()) {
            try (Qwen2Model q = Qwen2Model.load(o.candidate(), o.kernels())) {
                out.put("W4 dequantized (fp32)", Decode.tokensPerSecond(q, prompt, o.decodeTokens()));
            }
            ProgressListener.units(log, PHASE_DECODE, 3, models, null);
        }
        log.accept(String.format(
                Locale.ROOT,
                "decode batch 1: BF16 %.1f tok/s, W4A16 kernel %.1f tok/s",
                out.get("BF16"),
                out.get("W4A16 kernel")));
        return new ValidationReport.Throughput(
                1, prompt.length, o.decodeTokens(), o.kernels().name(), out, out.get("W4A16 kernel") / out.get("BF16"));
    }

    /**
     * A candidate whose figures are not numbers has failed, gated or not: NaN or infinite logits mean a weight, scale
     * or activation overflowed, and no limit can be checked against them.
     */
    static void nonFinite(double refPpl, Agreement cand, List<String> failures) {
        if (!Double.isFinite(refPpl)) {
            failures.add("accuracy: the reference's perplexity is " + refPpl + " (its logits are not finite numbers)");
        }
        double[][] figures = {{cand.ppl()}, {cand.klMean()}, {cand.top1()}};
        String[] names = {"perplexity", "mean KL", "top-1 agreement"};
        for (int i = 0; i < names.length; i++) {
            double v = figures[i][0];
            if (!Double.isFinite(v)) {
                failures.add("accuracy: the candidate's " + names[i] + " is " + v
                        + " (its logits are not finite numbers: a weight, scale or activation overflowed)");
            }
        }
    }

    /**
     * Evaluates each gate on the candidate's figures; a failed gate (a figure that is not a number fails every gate
     * on it) adds its line to {@code failures}.
     *
     * @return the gates with their values and verdicts, in the order of {@code g}
     */
    static List<ValidationReport.Gate> gates(
            ValidateOptions.Gates g, double refPpl, Agreement cand, List<String> failures) {
        List<ValidationReport.Gate> list = new ArrayList<>();
        for (ValidateOptions.Gate gate : g.list()) {
            double value =
                    switch (gate.kind()) {
                        case MAX_PPL_INCREASE -> 100 * (cand.ppl() / refPpl - 1);
                        case MAX_KL -> cand.klMean();
                        case MIN_TOP1 -> cand.top1();
                    };
            boolean passed = gate.kind().passes(value, gate.limit());
            list.add(new ValidationReport.Gate(gate.kind().option(), gate.limit(), gate.byDefault(), value, passed));
            if (!passed) {
                ValidateOptions.GateKind k = gate.kind();
                failures.add(String.format(
                        Locale.ROOT,
                        "gate %s%s: %s is %s, limit %s%s",
                        k.option(),
                        gate.byDefault() ? " (default)" : "",
                        k.what(),
                        Double.isFinite(value) ? String.format(Locale.ROOT, "%.6g%s", value, k.unit()) : value,
                        limit(gate.limit()),
                        k.unit()));
            }
        }
        return list;
    }

    /** A limit as the user would type it: 5, 0.1, 0.85 (no trailing zeros, no exponent). */
    private static String limit(double v) {
        return java.math.BigDecimal.valueOf(v).stripTrailingZeros().toPlainString();
    }

    /** The gates that apply, each with its limit and whether it is the default, not evaluated (no accuracy). */
    private static List<ValidationReport.Gate> unevaluated(ValidateOptions.Gates g) {
        return g.list().stream()
                .map(gate -> new ValidationReport.Gate(
                        gate.kind().option(), gate.limit(), gate.byDefault(), Double.NaN, null))
                .toList();
    }

    /**
     * The verdict line, naming what it covers: PASSED only when the integrity and format checks passed and at least
     * one accuracy gate applied; with {@code --no-gates} "accuracy not gated"; a folder without a manifest says its
     * files were not verified.
     *
     * @param tasks the task comparison, or null without {@code --tasks}
     */
    static String verdict(
            ValidationReport.Integrity integrity,
            ValidationReport.FormatChecks format,
            TaskSection tasks,
            List<String> failures,
            ValidateOptions.Gates g) {
        if (!failures.isEmpty()) {
            return "FAILED: " + failures.size() + " check(s) or gate(s)";
        }
        List<String> covered = new ArrayList<>();
        covered.add(
                integrity.manifest()
                        ? "integrity (" + integrity.filesChecked() + " files, " + integrity.tensorsChecked()
                                + " tensors match " + Manifest.FILE + ")"
                        : "integrity NOT verified (no " + Manifest.FILE + ")");
        covered.add("format rules at --tp "
                + String.join(",", format.tp().stream().map(String::valueOf).toList()));
        if (g.list().isEmpty()) {
            return "accuracy not gated (--no-gates): " + String.join(", ", covered) + "; the figures are not held to"
                    + " any limit";
        }
        List<String> limits = new ArrayList<>();
        for (ValidateOptions.Gate gate : g.list()) {
            ValidateOptions.GateKind k = gate.kind();
            limits.add(String.format(
                    Locale.ROOT,
                    "%s %s %s%s%s",
                    k.what(),
                    k == ValidateOptions.GateKind.MIN_TOP1 ? "≥" : "≤",
                    limit(gate.limit()),
                    k.unit(),
                    gate.byDefault() ? " (default)" : ""));
        }
        covered.add("gates " + String.join(", ", limits));
        if (tasks != null && !tasks.gates().isEmpty()) {
            covered.add(tasks.gates().size() + " task accuracy gate(s): the drop's 95% interval within "
                    + tasks.gates().getFirst().limit() + " points");
        }
        return "PASSED: " + String.join(", ", covered);
    }

    private static void requireSameModel(ModelConfig ref, ModelConfig cand, ValidateOptions o) {
        if (ref.quantization() != null) {
            throw new InputException(o.reference() + ": --reference is itself quantized ("
                    + ref.quantization().format().quantMethod() + "); pass the BF16 checkpoint");
        }
        if (cand.quantization() == null) {
            throw new InputException(o.candidate() + ": config.json has no quantization_config; --candidate must be a"
                    + " quantized release");
        }
        if (ref.numLayers() != cand.numLayers()
                || ref.hiddenSize() != cand.hiddenSize()
                || ref.intermediateSize() != cand.intermediateSize()
                || ref.vocabSize() != cand.vocabSize()
                || ref.numHeads() != cand.numHeads()
                || ref.numKvHeads() != cand.numKvHeads()) {
            throw new InputException(o.candidate() + " is not a release of " + o.reference() + ": layers/hidden/"
                    + "intermediate/vocab/heads differ (" + ref.numLayers() + "/" + ref.hiddenSize() + "/"
                    + ref.intermediateSize() + "/" + ref.vocabSize() + "/" + ref.numHeads() + "/" + ref.numKvHeads()
                    + " vs " + cand.numLayers() + "/" + cand.hiddenSize() + "/" + cand.intermediateSize() + "/"
                    + cand.vocabSize() + "/" + cand.numHeads() + "/" + cand.numKvHeads() + ")");
        }
    }

    private static ValidationReport.Problem problem(Manifest.Problem p) {
        return new ValidationReport.Problem(p.name(), p.rule(), p.detail());
    }

    private static ValidationReport.Violation violation(GptqLayoutCheck.Violation x) {
        return new ValidationReport.Violation(x.tensor(), x.rule(), x.detail());
    }
}
