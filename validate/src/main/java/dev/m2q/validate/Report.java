package dev.m2q.validate;

import dev.m2q.core.InputException;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.io.OutputException;
import dev.m2q.validate.tasks.TaskReport;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Writes a validation run (FORMATS.md §6): {@code validation.json} (every figure), {@code validation.md} (the
 * same for people, with the verdict first), the PNG plots it embeds and, for a release, its model card
 * ({@link ModelCard}). Each file is written to a temporary name
 * and renamed, so a reader never sees half a report.
 */
public final class Report {
    public static final String JSON = "validation.json";
    public static final String MARKDOWN = "validation.md";
    public static final String LAYER_PLOT = "validation-layer-error.png";
    public static final String KL_PLOT = "validation-kl-histogram.png";
    public static final String THROUGHPUT_PLOT = "validation-throughput.png";

    private Report() {}

    /**
     * Checks, before any work, that the report can be written to {@code dir}: it is a directory, or does not exist
     * yet under a directory, and a file can be created there (probed with a hidden temporary file, removed at once).
     *
     * @param what how the user named the folder, for the message ("--report-dir", "the candidate folder")
     * @throws InputException naming the folder and the two ways out (--report-dir DIR, --no-report)
     */
    public static void requireWritable(Path dir, String what) {
        String fix = "; pass --report-dir DIR (a writable folder) or --no-report";
        Path existing = dir.toAbsolutePath().normalize();
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            throw new InputException(dir + ": " + what + " has no existing parent folder" + fix);
        }
        if (!Files.isDirectory(existing)) {
            throw new InputException(dir + ": " + what + " is not a directory ("
                    + (existing.equals(dir.toAbsolutePath().normalize()) ? "it is a file" : existing + " is a file")
                    + "), so the validation report cannot be written there" + fix);
        }
        try {
            Path probe = Files.createTempFile(existing, ".m2q-write-probe", ".tmp");
            Files.delete(probe);
        } catch (IOException e) {
            throw new InputException(
                    dir + ": " + what + " is not writable (" + e.getClass().getSimpleName() + ": " + e.getMessage()
                            + "), so the validation report cannot be written there" + fix,
                    e);
        }
    }

    /**
     * Writes the report files into {@code dir} (created if needed); returns the paths written. Plots are drawn only
     * from finite figures (the plots refuse NaN by design); a run whose figures are not finite gets its JSON and
     * markdown, which say so.
     */
    public static List<Path> write(Path dir, Validator.Outcome o) {
        return write(dir, o, null, line -> {});
    }

    /**
     * {@link #write(Path, Validator.Outcome)}, then the model card ({@link ModelCard}, README.md) read back from the
     * validation.json just written; {@code note} gets the one line saying why a card was not written (a README.md
     * that is not m2q's is kept).
     *
     * @param card where the card's facts come from; null writes no card
     */
    public static List<Path> write(Path dir, Validator.Outcome o, ModelCard.Source card, Consumer<String> note) {
        ValidationReport r = o.report();
        List<Path> written = new ArrayList<>();
        try {
            Files.createDirectories(dir);
            List<String> plots = new ArrayList<>();
            Validator.Figures c = o.candidate();
            Validator.Figures b = o.baseline();
            if (c != null && plottable(r)) {
                Plots.perLayerError(
                        dir.resolve(LAYER_PLOT),
                        c.layerErrors(),
                        b == null ? null : b.layerErrors(),
                        c.label(),
                        b == null ? null : b.label());
                plots.add(LAYER_PLOT);
                Plots.klHistogram(
                        dir.resolve(KL_PLOT),
                        c.kl(),
                        b == null ? null : b.kl(),
                        c.label(),
                        b == null ? null : b.label());
                plots.add(KL_PLOT);
            }
            if (r.throughput() != null) {
                Plots.throughput(
                        dir.resolve(THROUGHPUT_PLOT),
                        new LinkedHashMap<>(r.throughput().tokensPerSecond()),
                        "Batch-1 decode on the CPU: tokens/s");
                plots.add(THROUGHPUT_PLOT);
            }
            if (o.tasks() != null && r.tasks() != null && TaskReport.plottable(r.tasks())) {
                o.tasks().plot(dir);
                plots.add(TaskReport.PLOT);
            }
            plots.forEach(p -> written.add(dir.resolve(p)));
            written.add(atomic(dir.resolve(JSON), r.toJson()));
            written.add(atomic(dir.resolve(MARKDOWN), markdown(r)));
            if (card != null) {
                ModelCard.Outcome made = ModelCard.write(dir, card);
                if (made.written() != null) {
                    written.add(made.written());
                } else {
                    note.accept(made.skipped());
                }
            }
        } catch (OutputException e) {
            throw new UncheckedIOException(
                    dir + ": cannot write the validation report (" + e.getMessage() + ")",
                    e.getCause() instanceof IOException io ? io : new IOException(e));
        } catch (IOException e) {
            throw new UncheckedIOException(
                    dir + ": cannot write the validation report ("
                            + e.getClass().getSimpleName() + ": " + e.getMessage() + ")",
                    e);
        }
        return written;
    }

    /**
     * Whether every series the layer-error and KL plots would draw is finite: the per-layer errors, and the per-token
     * KL, whose mean is finite exactly when every term is (each is ≥ 0 or NaN).
     */
    static boolean plottable(ValidationReport r) {
        if (r.accuracy() == null) {
            return false;
        }
        for (ValidationReport.ModelFigures f : new ValidationReport.ModelFigures[] {
            r.accuracy().candidate(), r.accuracy().baselineRtn()
        }) {
            if (f != null
                    && !(Double.isFinite(f.klMean())
                            && f.layerRelError().stream().allMatch(Double::isFinite))) {
                return false;
            }
        }
        return true;
    }

    private static Path atomic(Path file, String text) {
        AtomicFile.writeText(file, text);
        return file;
    }

    /**
     * validation.md: the accuracy sections when a reference was given, the task section with {@code --tasks}, then
     * speculative decoding when measured. The plots {@link #write} draws from the same report are embedded.
     */
    public static String markdown(ValidationReport r) {
        StringBuilder md = new StringBuilder();
        md.append("# Validation of ").append(r.candidate()).append("\n\n");
        if (r.reference() != null) {
            accuracy(md, r);
        } else {
            md.append("Speculative decoding only (no `--reference`, so no accuracy checks; m2q ")
                    .append(r.m2qVersion())
                    .append(").\n\n");
        }
        if (r.tasks() != null) {
            md.append(TaskReport.markdown(r.tasks(), TaskReport.plottable(r.tasks())))
                    .append('\n');
        }
        if (r.speculative() != null) {
            speculative(md, r.speculative());
        }
        return md.toString();
    }

    private static void speculative(StringBuilder md, SpecBench.Measurements s) {
        md.append("## Speculative decoding (EAGLE-3)\n\n");
        md.append(fmt(
                "Head `%s` (draft vocabulary %s, taps %s) on `%s`, run %s with %s kernels; batch 1, %s prompts of `%s`"
                        + " (%.1f tokens on average), %s new tokens each, T = %s, seed %s. Plain decoding on the same"
                        + " engine: %.1f tokens/s, %.3f ms per target forward.%n%n",
                s.draft(),
                s.draftVocabSize(),
                s.taps(),
                s.candidate(),
                s.candidatePath(),
                s.kernels(),
                s.prompts(),
                s.promptsFile(),
                s.promptTokensMean(),
                s.specTokens(),
                s.temperature(),
                s.seed(),
                s.plain().tokensPerSecond(),
                s.plain().targetForwardMs()));
        md.append("τ = tokens emitted per target verify forward; acceptance per draft position j = accepted / verified;"
                + " α = all accepted / all verified drafts; c = draft time per proposed token / target decode forward;"
                + " predicted speedup = (1 − α^(k+1)) / ((1 − α)(k·c + 1)).\n\n");
        md.append("| k | τ | α | per-position acceptance | tokens/s without | tokens/s with | speedup | predicted |"
                + " c | verify forward (ms) |\n");
        md.append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (SpecBench.SweepRow r : s.sweep()) {
            StringBuilder acc = new StringBuilder();
            for (double a : r.acceptance()) {
                acc.append(acc.isEmpty() ? "" : " / ").append(num(a, "%.2f"));
            }
            md.append(fmt(
                    "| %s | %.3f | %s | %s | %.1f | %.1f | %.2f× | %s | %s | %s |%n",
                    r.k(),
                    r.tau(),
                    num(r.alpha(), "%.3f"),
                    acc,
                    r.plainTokensPerSecond(),
                    r.tokensPerSecond(),
                    r.speedup(),
                    num(r.predictedSpeedup(), "%.2f×"),
                    num(r.c(), "%.3f"),
                    num(r.verifyForwardMs(), "%.3f")));
        }
        md.append("\nThe formula counts a verify forward of k + 1 tokens as one decode forward; where it costs more"
                + " (compute-bound shapes, as on a CPU), the measured speedup falls below the prediction.\n\n");
        if (s.temperature() == 0) {
            md.append("At T = 0 each speculative output is compared with plain greedy decoding: ");
            StringBuilder b = new StringBuilder();
            for (SpecBench.SweepRow r : s.sweep()) {
                b.append(b.isEmpty() ? "" : ", ")
                        .append(fmt("k = %s %s/%s", r.k(), r.greedyIdenticalPrompts(), s.prompts()));
            }
            md.append(b).append(" prompts identical.\n\n");
        }
    }

    /**
     * A model's perplexity increase in percent with, when the report has it, the paired bootstrap 95% interval over
     * the held-out windows: "+0.232% [−0.041, +0.512]". Shared with the command's summary.
     */
    public static String pplIncrease(ValidationReport.ModelFigures m) {
        return pplIncrease(m, "–");
    }

    /** {@link #pplIncrease(ValidationReport.ModelFigures)} with {@code otherwise} for an increase that is not finite. */
    public static String pplIncrease(ValidationReport.ModelFigures m, String otherwise) {
        String point = Double.isFinite(m.pplIncreasePercent()) ? fmt("%+.3f%%", m.pplIncreasePercent()) : otherwise;
        return point + interval(m.pplIncreaseCi95(), "%+.3f");
    }

    /**
     * " [low, high]" in {@code f}, or "" when there is no interval or an end is not finite (shared with {@link
     * ModelCard}).
     */
    static String interval(List<Double> ci, String f) {
        if (ci == null || ci.size() != 2 || !Double.isFinite(ci.get(0)) || !Double.isFinite(ci.get(1))) {
            return "";
        }
        return " [" + fmt(f, ci.get(0)) + ", " + fmt(f, ci.get(1)) + "]";
    }

    /** A figure formatted, or "–" when it is not a finite number (null in validation.json). */
    private static String num(double v, String f) {
        return Double.isFinite(v) ? fmt(f, v) : "–";
    }

    private static void accuracy(StringBuilder md, ValidationReport r) {
        String verdict = r.verdict();
        int colon = verdict.indexOf(':');
        md.append("**")
                .append(colon < 0 ? verdict : verdict.substring(0, colon))
                .append("**")
                .append(colon < 0 ? "" : verdict.substring(colon))
                .append(" — against the BF16 reference `")
                .append(r.reference())
                .append("` (m2q ")
                .append(r.m2qVersion())
                .append(").\n\n");
        if (!r.passed()) {
            for (String f : r.failures()) {
                md.append("- ").append(f).append('\n');
            }
            md.append('\n');
        }

        ValidationReport.Integrity integrity = r.integrity();
        md.append("## Integrity\n\n");
        if (integrity.manifest()) {
            md.append(fmt(
                    "%d files and %d tensors hashed against m2q-manifest.json (every weight, config and tokenizer file"
                            + " must be listed); %d problem(s).%n%n",
                    integrity.filesChecked(),
                    integrity.tensorsChecked(),
                    integrity.problems().size()));
            for (ValidationReport.Problem p : integrity.problems()) {
                md.append(fmt("- `%s` (%s): %s%n", p.name(), p.rule(), p.detail()));
            }
            if (!integrity.problems().isEmpty()) {
                md.append('\n');
            }
        } else {
            md.append("No m2q-manifest.json: this is not an m2q release, so file hashes were not verified.\n\n");
        }
        List<ValidationReport.Violation> violations = r.formatChecks().violations();
        md.append("## Format\n\n");
        md.append(fmt(
                "%d rule(s) broken at tensor-parallel sizes %s",
                violations.size(), r.formatChecks().tp()));
        md.append(violations.isEmpty() ? ".\n\n" : ":\n\n");
        for (ValidationReport.Violation v : violations) {
            md.append(fmt("- `%s` (%s): %s%n", v.tensor(), v.rule(), v.detail()));
        }
        if (!violations.isEmpty()) {
            md.append('\n');
        }

        ValidationReport.Accuracy acc = r.accuracy();
        if (acc == null) {
            md.append("Accuracy was not measured: the candidate failed the checks above.\n\n");
            return;
        }
        md.append("## Accuracy\n\n");
        md.append(fmt(
                "%s layout, group size %s, candidate run %s with %s kernels; %s tokens of `%s` in %s windows of up to"
                        + " %s (%s next-token predictions).%n%n",
                r.format(),
                r.groupSize(),
                r.candidatePath(),
                r.kernels(),
                r.tokens(),
                r.text(),
                acc.windows(),
                r.seqlen(),
                acc.predictions()));
        if (acc.pplWindows() != null) {
            md.append(fmt(
                    "Δ perplexity in brackets: its 95%% interval, a paired bootstrap over the %s windows (%s resamples,"
                            + " seed %s): how far the increase moves with the text drawn.%n%n",
                    acc.windows(),
                    acc.pplWindows().resamples(),
                    acc.pplWindows().seed()));
        }
        md.append("| model | perplexity | Δ perplexity | KL mean (nats) | KL p99 | top-1 agreement |\n");
        md.append("|---|---|---|---|---|---|\n");
        md.append(fmt("| BF16 reference | %s | – | – | – | – |%n", num(acc.referencePpl(), "%.4f")));
        List<ValidationReport.ModelFigures> rows = new ArrayList<>();
        rows.add(acc.candidate());
        if (acc.baselineRtn() != null) {
            rows.add(acc.baselineRtn());
        }
        for (ValidationReport.ModelFigures m : rows) {
            md.append(fmt(
                    "| %s | %s | %s | %s | %s | %s |%n",
                    m.label().equals("rtn") ? "RTN (on the fly)" : "candidate",
                    num(m.ppl(), "%.4f"),
                    pplIncrease(m),
                    num(m.klMean(), "%.6f"),
                    num(m.klP99(), "%.6f"),
                    percent(m.top1Agreement())));
        }
        md.append('\n');
        if (acc.simulated8bit() != null) {
            md.append(fmt(
                    "The candidate declares %s: its 8-bit parts are simulated from the written scales (FP8 e4m3 round to"
                            + " nearest even, saturating; INT8 rint, clamped), and the same weights run as W4A16 and with"
                            + " each part alone. Extra = the scheme's figure minus W4A16's, with its paired 95%% interval over"
                            + " the windows in brackets; saturation = the share of"
                            + " values beyond the static scales' range on this text.%n%n",
                    r.scheme()));
            md.append("| scheme | perplexity | Δ perplexity | KL mean | extra KL over W4A16 | extra Δppl (points) |"
                    + " top-1 | saturated inputs / keys / values |\n");
            md.append("|---|---|---|---|---|---|---|---|\n");
            for (ValidationReport.Simulated m : acc.simulated8bit()) {
                ValidationReport.Saturation sat = m.saturation();
                md.append(fmt(
                        "| %s | %s | %s | %s | %s | %s | %s | %s |%n",
                        m.scheme(),
                        num(m.ppl(), "%.4f"),
                        num(m.pplIncreasePercent(), "%+.3f%%"),
                        num(m.klMean(), "%.6f"),
                        num(m.extraKlMean(), "%+.6f") + interval(m.extraKlMeanCi95(), "%+.6f"),
                        num(m.extraPplIncreasePoints(), "%+.3f") + interval(m.extraPplIncreaseCi95(), "%+.3f"),
                        percent(m.top1Agreement()),
                        sat == null
                                ? "–"
                                : share(sat.staticInputs()) + " / " + share(sat.keys()) + " / " + share(sat.values())));
            }
            md.append('\n');
        }
        if (!plottable(r)) {
            md.append("No plots: some figures are not finite numbers (NaN or infinite; null in validation.json).\n\n");
        } else {
            md.append("Per-layer relative output error ‖h_q − h_ref‖ / ‖h_ref‖ (hidden states after each layer, both")
                    .append(" models run on the same tokens):\n\n");
            md.append("![per-layer error](").append(LAYER_PLOT).append(")\n\n");
            md.append("| layer | candidate");
            ValidationReport.ModelFigures b = acc.baselineRtn();
            md.append(b != null ? " | RTN |\n|---|---|---|\n" : " |\n|---|---|\n");
            List<Double> ce = acc.candidate().layerRelError();
            for (int i = 0; i < ce.size(); i++) {
                md.append(fmt("| %d | %.5f", i, ce.get(i)));
                md.append(b != null ? fmt(" | %.5f |%n", b.layerRelError().get(i)) : " |\n");
            }
            md.append("\nPer-token KL(P_ref ‖ P_cand):\n\n");
            md.append("![KL histogram](").append(KL_PLOT).append(")\n\n");
        }

        ValidationReport.Throughput t = r.throughput();
        if (t != null) {
            md.append("## Throughput\n\n");
            md.append(fmt(
                    "Batch-1 greedy decoding, %s-token prompt, %s generated tokens timed after a warm-up, %s kernels"
                            + " on this machine's CPU.%n%n",
                    t.promptTokens(), t.decodeTokens(), t.kernels()));
            md.append("| configuration | tokens/s |\n|---|---|\n");
            t.tokensPerSecond().forEach((k, v) -> md.append(fmt("| %s | %.1f |%n", k, v)));
            md.append(fmt("%nW4A16 kernel over BF16: %.2f×.%n%n", t.w4SpeedupOverBf16()));
            md.append("![throughput](").append(THROUGHPUT_PLOT).append(")\n\n");
        }

        md.append("## Gates\n\n");
        if (r.gates().isEmpty()) {
            md.append("None: accuracy not gated (`--no-gates`).\n\n");
        } else {
            md.append("| gate | limit | set by | value | result |\n|---|---|---|---|---|\n");
            for (ValidationReport.Gate g : r.gates()) {
                md.append(fmt(
                        "| `%s` | %.6g | %s | %s | %s |%n",
                        g.gate(),
                        g.limit(),
                        g.byDefault() ? "default" : "option",
                        num(g.value(), "%.6g"),
                        Boolean.TRUE.equals(g.passed()) ? "pass" : "**fail**"));
            }
            md.append('\n');
        }
    }

    private static String percent(double fraction) {
        return Double.isFinite(fraction) ? fmt("%.2f%%", 100 * fraction) : "–";
    }

    private static String share(double fraction) {
        return Double.isFinite(fraction) ? fmt("%.3g%%", 100 * fraction) : "–";
    }

    private static String fmt(String f, Object... args) {
        return String.format(Locale.ROOT, f, args);
    }
}
