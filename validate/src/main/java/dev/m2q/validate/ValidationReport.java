package dev.m2q.validate;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.validate.tasks.TaskSection;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * {@code validation.json} (FORMATS.md §6) as one record tree, written and read by {@link Json}: the producers
 * ({@link Validator}, {@link Agreement}, {@link SpecBench}, the task comparison) build it, and {@link Report} and the
 * command's summary read its fields, so a renamed key is a compile error rather than a silent {@code null}.
 *
 * <p>Keys are the file's snake_case names. A part that was not measured is {@code null}: the accuracy figures when
 * the candidate failed its integrity or format checks (then {@link #skipped} says why), the throughput without
 * {@code --decode-tokens}, the tasks without {@code --tasks}, the speculative figures without {@code --draft}; a
 * speculative-only run ({@code --draft} without {@code --reference}) has no reference, checks, gates or verdict.
 * A figure that is not a finite number (a NaN perplexity, KL or accuracy) is written as {@code null} and read back
 * as NaN, and is one of the {@link #failures}.
 *
 * @param m2qVersion the m2q that wrote the report
 * @param reference the BF16 reference folder; null in a speculative-only run
 * @param candidate the quantized release
 * @param integrity the manifest check; null in a speculative-only run
 * @param formatChecks the format rules at each tensor-parallel size; null in a speculative-only run
 * @param format the release's quantization method (config.json); null when the checks failed
 * @param groupSize its group size; null when the checks failed
 * @param candidatePath how the candidate ran ("w4a16 kernel (packed)" or "dequantized to fp32")
 * @param kernels the kernels' name
 * @param text the held-out text file
 * @param tokens tokens of the text scored
 * @param seqlen the window length
 * @param scheme the quantization scheme's label (W4A16, W4A8-FP8 static + KV8, ...)
 * @param skipped why accuracy was not measured; null when it was
 * @param accuracy the text metrics; null when the checks failed
 * @param throughput batch-1 decode tokens/s; null when not measured
 * @param gates the accuracy gates that apply, each with its value and verdict (value NaN and passed null when
 *     accuracy was not measured); null in a speculative-only run
 * @param tasks the task accuracy comparison; null without {@code --tasks}
 * @param passed whether every check and gate passed (that is, {@code failures} is empty)
 * @param failures one line per failed check or gate
 * @param verdict the verdict line; null in a speculative-only run
 * @param speculative the speculative-decoding measurements; null without {@code --draft} or when the checks failed
 */
public record ValidationReport(
        @JsonProperty("m2q_version") String m2qVersion,
        String reference,
        String candidate,
        Integrity integrity,
        @JsonProperty("format_checks") FormatChecks formatChecks,
        String format,
        @JsonProperty("group_size") Integer groupSize,
        @JsonProperty("candidate_path") String candidatePath,
        String kernels,
        String text,
        Integer tokens,
        Integer seqlen,
        String scheme,
        String skipped,
        Accuracy accuracy,
        Throughput throughput,
        List<Gate> gates,
        TaskSection tasks,
        boolean passed,
        List<String> failures,
        String verdict,
        SpecBench.Measurements speculative) {
    public ValidationReport {
        Objects.requireNonNull(m2qVersion, "m2q_version");
        Objects.requireNonNull(candidate, "candidate");
        Objects.requireNonNull(failures, "failures");
        failures = List.copyOf(failures);
        gates = gates == null ? null : List.copyOf(gates);
        if (passed != failures.isEmpty()) {
            throw new IllegalArgumentException(
                    "passed is " + passed + " but " + failures.size() + " failure(s) are" + " listed");
        }
        if (reference != null && (integrity == null || formatChecks == null || gates == null || verdict == null)) {
            throw new IllegalArgumentException(
                    "a report against a reference needs integrity, format_checks, gates" + " and verdict");
        }
    }

    /** The same report with the speculative-decoding measurements (null: asked for but not measured). */
    public ValidationReport withSpeculative(SpecBench.Measurements s) {
        return new ValidationReport(
                m2qVersion,
                reference,
                candidate,
                integrity,
                formatChecks,
                format,
                groupSize,
                candidatePath,
                kernels,
                text,
                tokens,
                seqlen,
                scheme,
                skipped,
                accuracy,
                throughput,
                gates,
                tasks,
                passed,
                failures,
                verdict,
                s);
    }

    /** A speculative-only report: no reference, so no checks, gates or verdict. */
    public static ValidationReport speculativeOnly(String m2qVersion, String candidate, SpecBench.Measurements s) {
        return new ValidationReport(
                m2qVersion,
                null,
                candidate,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                true,
                List.of(),
                null,
                s);
    }

    /**
     * Reads a validation.json strictly: an unknown key, a missing one, a wrongly typed value, a duplicate key or
     * trailing text is an {@link InputException} (exit 2) that names the file, line and column.
     */
    public static ValidationReport read(Path file) {
        try {
            return Json.read(file, ValidationReport.class);
        } catch (JsonException e) {
            throw new InputException(e.getMessage() + " (not a validation.json this m2q writes)", e);
        } catch (IOException e) {
            throw new InputException(
                    file + ": cannot read the validation report ("
                            + e.getClass().getSimpleName() + ": " + e.getMessage() + ")",
                    e);
        }
    }

    /** The report as written to validation.json. */
    public String toJson() {
        return Json.writePretty(this);
    }

    /**
     * The manifest check of the release's files.
     *
     * @param manifest whether the release has an m2q-manifest.json (without it nothing was hashed)
     * @param filesChecked files hashed
     * @param tensorsChecked tensors hashed
     * @param problems each file or tensor that did not match
     */
    public record Integrity(
            boolean manifest,
            @JsonProperty("files_checked") int filesChecked,
            @JsonProperty("tensors_checked") int tensorsChecked,
            List<Problem> problems) {
        public Integrity {
            problems = List.copyOf(problems);
        }
    }

    /** One integrity problem: the file or tensor, the rule it broke, and how. */
    public record Problem(String name, String rule, String detail) {}

    /**
     * The format rules engines load by, at each tensor-parallel size.
     *
     * @param tp the sizes checked
     * @param violations each broken rule
     */
    public record FormatChecks(List<Integer> tp, List<Violation> violations) {
        public FormatChecks {
            tp = List.copyOf(tp);
            violations = List.copyOf(violations);
        }
    }

    /** One broken format rule: the tensor, the rule and how. */
    public record Violation(String tensor, String rule, String detail) {}

    /**
     * The text metrics of ALGORITHMS.md §6.
     *
     * @param windows windows scored
     * @param predictions next-token predictions per model
     * @param referencePpl the reference's perplexity
     * @param candidate the candidate's figures
     * @param baselineRtn the RTN baseline's figures, or null without {@code --baseline rtn}
     * @param simulated8bit for a release declaring 8-bit activations or KV cache: the scheme, W4A16 and each 8-bit
     *     part alone on the same weights; null otherwise
     * @param seconds wall time of the accuracy run
     * @param pplWindows the windows behind the perplexity intervals (null when there are none to report; a
     *     validation.json without the key at all is refused, as every file this strict reader sees must be
     *     complete)
     */
    public record Accuracy(
            int windows,
            long predictions,
            @JsonProperty("reference_ppl") double referencePpl,
            ModelFigures candidate,
            @JsonProperty("baseline_rtn") ModelFigures baselineRtn,
            @JsonProperty("simulated_8bit") List<Simulated> simulated8bit,
            double seconds,
            @JsonProperty("ppl_windows") PplWindows pplWindows) {
        public Accuracy {
            Objects.requireNonNull(candidate, "candidate");
            simulated8bit = simulated8bit == null ? null : List.copyOf(simulated8bit);
        }

        /** Without the per-window figures (written as null). */
        public Accuracy(
                int windows,
                long predictions,
                double referencePpl,
                ModelFigures candidate,
                ModelFigures baselineRtn,
                List<Simulated> simulated8bit,
                double seconds) {
            this(windows, predictions, referencePpl, candidate, baselineRtn, simulated8bit, seconds, null);
        }
    }

    /**
     * The held-out windows behind the perplexity intervals ({@link PplStats}): the reference's summed next-token NLL
     * and the tokens predicted, per window in order, and the bootstrap's resamples and seed. With each model's own
     * {@link ModelFigures#windowNll} they let any two reports of the same reference and text be compared window by
     * window (tools/bench/PplCompare.java).
     *
     * @param referenceNll per window, the reference's summed NLL (nats)
     * @param tokens per window, the tokens predicted (the window's length − 1)
     * @param resamples the paired bootstrap's resamples
     * @param seed its seed
     */
    public record PplWindows(
            @JsonProperty("reference_nll") List<Double> referenceNll,
            List<Integer> tokens,
            @JsonProperty("bootstrap_resamples") int resamples,
            @JsonProperty("bootstrap_seed") long seed) {
        public PplWindows {
            referenceNll = List.copyOf(referenceNll);
            tokens = List.copyOf(tokens);
            if (referenceNll.size() != tokens.size()) {
                throw new IllegalArgumentException(
                        "ppl_windows: " + referenceNll.size() + " reference NLLs for " + tokens.size() + " windows");
            }
        }

        /** {@link #referenceNll} as an array, for {@link PplStats}. */
        public double[] referenceNllArray() {
            return referenceNll.stream().mapToDouble(Double::doubleValue).toArray();
        }

        /** {@link #tokens} as an array, for {@link PplStats}. */
        public int[] tokensArray() {
            return tokens.stream().mapToInt(Integer::intValue).toArray();
        }

        /**
         * Positions per window, the count behind a window's KL sum ({@link ModelFigures#windowKl}): its predictions
         * + 1, since the last position has no next token but counts for KL.
         */
        public int[] positionsArray() {
            return tokens.stream().mapToInt(t -> t + 1).toArray();
        }
    }

    /**
     * One model against the reference on the same tokens.
     *
     * @param label "candidate" or "rtn"
     * @param ppl its perplexity
     * @param pplIncreasePercent 100 · (ppl / reference ppl − 1)
     * @param klMean mean per-token KL(P_ref ‖ P), nats
     * @param klP99 its 99th percentile, nearest rank
     * @param top1Agreement the share of positions where both models' argmax agree
     * @param positions positions compared
     * @param layerRelError per layer, ‖h − h_ref‖ / ‖h_ref‖ (NaN, written null, where not finite)
     * @param pplIncreaseCi95 the paired bootstrap 95% interval of pplIncreasePercent over the held-out windows,
     *     [low, high] ({@link PplStats}); null in a report without {@link Accuracy#pplWindows}
     * @param windowNll per window, this model's summed next-token NLL (nats), the windows of {@link
     *     Accuracy#pplWindows}; null with it
     * @param windowKl per window, the sum of KL(P_ref ‖ P) over its positions (its predictions + 1: the last
     *     position has no next token but counts for KL), nats; null with it
     */
    public record ModelFigures(
            String label,
            double ppl,
            @JsonProperty("ppl_increase_percent") double pplIncreasePercent,
            @JsonProperty("ppl_increase_ci95") List<Double> pplIncreaseCi95,
            @JsonProperty("kl_mean") double klMean,
            @JsonProperty("kl_p99") double klP99,
            @JsonProperty("top1_agreement") double top1Agreement,
            int positions,
            @JsonProperty("layer_rel_error") List<Double> layerRelError,
            @JsonProperty("window_nll") List<Double> windowNll,
            @JsonProperty("window_kl") List<Double> windowKl) {
        public ModelFigures {
            layerRelError = nanForNull(layerRelError);
            pplIncreaseCi95 = pplIncreaseCi95 == null ? null : nanForNull(pplIncreaseCi95);
            windowNll = windowNll == null ? null : nanForNull(windowNll);
            windowKl = windowKl == null ? null : nanForNull(windowKl);
        }

        /** Without the windows' interval and NLLs. */
        public ModelFigures(
                String label,
                double ppl,
                double pplIncreasePercent,
                double klMean,
                double klP99,
                double top1Agreement,
                int positions,
                List<Double> layerRelError) {
            this(
                    label,
                    ppl,
                    pplIncreasePercent,
                    null,
                    klMean,
                    klP99,
                    top1Agreement,
                    positions,
                    layerRelError,
                    null,
                    null);
        }
    }

    /**
     * A scheme simulated on the candidate's weights, with what it adds over W4A16.
     *
     * @param saturation the share of values the static scales saturate; null for W4A16 (nothing simulated)
     * @param extraKlMeanCi95 the paired bootstrap 95% interval of extraKlMean over the held-out windows, [low,
     *     high] ({@link PplStats#meanDifferenceInterval}, the same weights run both ways); null for W4A16's own row
     * @param extraPplIncreaseCi95 the same for extraPplIncreasePoints ({@link PplStats#differenceInterval}); null
     *     for W4A16's own row
     */
    public record Simulated(
            String scheme,
            double ppl,
            @JsonProperty("ppl_increase_percent") double pplIncreasePercent,
            @JsonProperty("kl_mean") double klMean,
            @JsonProperty("kl_p99") double klP99,
            @JsonProperty("top1_agreement") double top1Agreement,
            @JsonProperty("extra_kl_mean") double extraKlMean,
            @JsonProperty("extra_ppl_increase_points") double extraPplIncreasePoints,
            Saturation saturation,
            @JsonProperty("extra_kl_mean_ci95") List<Double> extraKlMeanCi95,
            @JsonProperty("extra_ppl_increase_ci95") List<Double> extraPplIncreaseCi95) {
        public Simulated {
            extraKlMeanCi95 = extraKlMeanCi95 == null ? null : nanForNull(extraKlMeanCi95);
            extraPplIncreaseCi95 = extraPplIncreaseCi95 == null ? null : nanForNull(extraPplIncreaseCi95);
        }

        /** Without the intervals of the extras (W4A16's own row: written as null). */
        public Simulated(
                String scheme,
                double ppl,
                double pplIncreasePercent,
                double klMean,
                double klP99,
                double top1Agreement,
                double extraKlMean,
                double extraPplIncreasePoints,
                Saturation saturation) {
            this(
                    scheme,
                    ppl,
                    pplIncreasePercent,
                    klMean,
                    klP99,
                    top1Agreement,
                    extraKlMean,
                    extraPplIncreasePoints,
                    saturation,
                    null,
                    null);
        }
    }

    /** Shares of values beyond the static scales' range: linear inputs, keys, values. */
    public record Saturation(@JsonProperty("static_inputs") double staticInputs, double keys, double values) {}

    /**
     * Batch-1 greedy decode speed.
     *
     * @param tokensPerSecond per configuration, in the order measured
     * @param w4SpeedupOverBf16 the W4A16 kernel's tokens/s over BF16's
     */
    public record Throughput(
            int batch,
            @JsonProperty("prompt_tokens") int promptTokens,
            @JsonProperty("decode_tokens") int decodeTokens,
            String kernels,
            @JsonProperty("tokens_per_second") Map<String, Double> tokensPerSecond,
            @JsonProperty("w4_speedup_over_bf16") double w4SpeedupOverBf16) {
        public Throughput {
            Map<String, Double> m = new LinkedHashMap<>();
            tokensPerSecond.forEach((k, v) -> m.put(k, v == null ? Double.NaN : v));
            tokensPerSecond = Collections.unmodifiableMap(m);
        }
    }

    /**
     * One accuracy gate.
     *
     * @param gate the option, e.g. "--max-kl"
     * @param limit its limit
     * @param byDefault whether the limit is the default (no option given)
     * @param value the gated figure; NaN when it is not a number or was not measured
     * @param passed the verdict; null when accuracy was not measured
     */
    public record Gate(
            String gate,
            double limit,
            @JsonProperty("default") boolean byDefault,
            double value,
            Boolean passed) {}

    /** A list of figures where JSON's null stands for NaN (the writer's non-finite). */
    static List<Double> nanForNull(List<Double> values) {
        List<Double> out = new ArrayList<>(values.size());
        for (Double v : values) {
            out.add(v == null ? Double.NaN : v);
        }
        return Collections.unmodifiableList(out);
    }
}
