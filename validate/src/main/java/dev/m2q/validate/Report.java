package dev.m2q.validate;

import dev.m2q.core.InputException;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.io.OutputException;
import dev.m2q.core.json.Json;
import dev.m2q.validate.tasks.TaskReport;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Writes a validation run (FORMATS.md §6): {@code validation.json} (every figure), {@code validation.md} (the
 * same for people, with the verdict first) and the PNG plots it embeds. Each file is written to a temporary name
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
        List<Path> written = new ArrayList<>();
        try {
            Files.createDirectories(dir);
            List<String> plots = new ArrayList<>();
            Validator.Figures c = o.candidate();
            Validator.Figures b = o.baseline();
            if (c != null && plottable(o)) {
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
            if (!o.throughput().isEmpty()) {
                Plots.throughput(
                        dir.resolve(THROUGHPUT_PLOT),
                        new LinkedHashMap<>(o.throughput()),
                        "Batch-1 decode on the CPU: tokens/s");
                plots.add(THROUGHPUT_PLOT);
            }
            boolean taskPlot = o.tasks() != null && o.tasks().plot(dir) != null;
            if (taskPlot) {
                plots.add(TaskReport.PLOT);
            }
            plots.forEach(p -> written.add(dir.resolve(p)));
            written.add(atomic(dir.resolve(JSON), Json.writePretty(o.json())));
            written.add(atomic(dir.resolve(MARKDOWN), markdown(o, taskPlot)));
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

    /** Whether every series a plot would draw is finite. */
    static boolean plottable(Validator.Outcome o) {
        for (Validator.Figures f : new Validator.Figures[] {o.candidate(), o.baseline()}) {
            if (f != null
                    && !(Arrays.stream(f.kl()).allMatch(Double::isFinite)
                            && Arrays.stream(f.layerErrors()).allMatch(Double::isFinite))) {
                return false;
            }
        }
        return true;
    }

    private static Path atomic(Path file, String text) {
        AtomicFile.writeText(file, text);
        return file;
    }

    /** The report: the accuracy sections when a reference was given, then speculative decoding when measured. */
    static String markdown(Validator.Outcome o) {
        return markdown(o, false);
    }

    /** {@link #markdown(Validator.Outcome)}, the task section embedding its plot when {@code taskPlot}. */
    static String markdown(Validator.Outcome o, boolean taskPlot) {
        Map<String, Object> j = o.json();
        StringBuilder md = new StringBuilder();
        md.append("# Validation of ").append(j.get("candidate")).append("\n\n");
        if (j.get("reference") != null) {
            accuracy(md, o);
        } else {
            md.append("Speculative decoding only (no `--reference`, so no accuracy checks; m2q ")
                    .append(j.get("m2q_version"))
                    .append(").\n\n");
        }
        if (o.tasks() != null) {
            md.append(o.tasks().markdown(taskPlot)).append('\n');
        }
        if (j.get("speculative") instanceof Map<?, ?> s) {
            speculative(md, s);
        }
        return md.toString();
    }

    @SuppressWarnings("unchecked")
    private static void speculative(StringBuilder md, Map<?, ?> s) {
        md.append("## Speculative decoding (EAGLE-3)\n\n");
        Map<String, Object> plain = (Map<String, Object>) s.get("plain");
        md.append(fmt(
                "Head `%s` (draft vocabulary %s, taps %s) on `%s`, run %s with %s kernels; batch 1, %s prompts of `%s`"
                        + " (%.1f tokens on average), %s new tokens each, T = %s, seed %s. Plain decoding on the same"
                        + " engine: %.1f tokens/s, %.3f ms per target forward.%n%n",
                s.get("draft"),
                s.get("draft_vocab_size"),
                s.get("taps"),
                s.get("candidate"),
                s.get("candidate_path"),
                s.get("kernels"),
                s.get("prompts"),
                s.get("prompts_file"),
                s.get("prompt_tokens_mean"),
                s.get("spec_tokens"),
                s.get("temperature"),
                s.get("seed"),
                plain.get("tokens_per_second"),
                plain.get("target_forward_ms")));
        md.append("τ = tokens emitted per target verify forward; acceptance per draft position j = accepted / verified;"
                + " α = all accepted / all verified drafts; c = draft time per proposed token / target decode forward;"
                + " predicted speedup = (1 − α^(k+1)) / ((1 − α)(k·c + 1)).\n\n");
        md.append("| k | τ | α | per-position acceptance | tokens/s without | tokens/s with | speedup | predicted |"
                + " c | verify forward (ms) |\n");
        md.append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (Object x : (List<?>) s.get("sweep")) {
            Map<String, Object> r = (Map<String, Object>) x;
            StringBuilder acc = new StringBuilder();
            for (Object a : (List<?>) r.get("acceptance")) {
                acc.append(acc.isEmpty() ? "" : " / ").append(a == null ? "–" : fmt("%.2f", a));
            }
            md.append(fmt(
                    "| %s | %.3f | %s | %s | %.1f | %.1f | %.2f× | %s | %s | %s |%n",
                    r.get("k"),
                    r.get("tau"),
                    num(r.get("alpha"), "%.3f"),
                    acc,
                    r.get("plain_tokens_per_second"),
                    r.get("tokens_per_second"),
                    r.get("speedup"),
                    num(r.get("predicted_speedup"), "%.2f×"),
                    num(r.get("c"), "%.3f"),
                    num(r.get("verify_forward_ms"), "%.3f")));
        }
        md.append("\nThe formula counts a verify forward of k + 1 tokens as one decode forward; where it costs more"
                + " (compute-bound shapes, as on a CPU), the measured speedup falls below the prediction.\n\n");
        if (Double.valueOf(0).equals(s.get("temperature"))) {
            md.append("At T = 0 each speculative output is compared with plain greedy decoding: ");
            StringBuilder b = new StringBuilder();
            for (Object x : (List<?>) s.get("sweep")) {
                Map<String, Object> r = (Map<String, Object>) x;
                b.append(b.isEmpty() ? "" : ", ")
                        .append(fmt("k = %s %s/%s", r.get("k"), r.get("greedy_identical_prompts"), s.get("prompts")));
            }
            md.append(b).append(" prompts identical.\n\n");
        }
    }

    private static String num(Object v, String f) {
        return v == null ? "–" : fmt(f, v);
    }

    @SuppressWarnings("unchecked")
    private static void accuracy(StringBuilder md, Validator.Outcome o) {
        Map<String, Object> j = o.json();
        String verdict = String.valueOf(j.get("verdict"));
        int colon = verdict.indexOf(':');
        md.append("**")
                .append(colon < 0 ? verdict : verdict.substring(0, colon))
                .append("**")
                .append(colon < 0 ? "" : verdict.substring(colon))
                .append(" — against the BF16 reference `")
                .append(j.get("reference"))
                .append("` (m2q ")
                .append(j.get("m2q_version"))
                .append(").\n\n");
        if (!o.passed()) {
            for (String f : o.failures()) {
                md.append("- ").append(f).append('\n');
            }
            md.append('\n');
        }

        Map<String, Object> integrity = (Map<String, Object>) j.get("integrity");
        md.append("## Integrity\n\n");
        if (Boolean.TRUE.equals(integrity.get("manifest"))) {
            md.append(fmt(
                    "%d files and %d tensors hashed against m2q-manifest.json (every weight, config and tokenizer file"
                            + " must be listed); %d problem(s).%n%n",
                    integrity.get("files_checked"),
                    integrity.get("tensors_checked"),
                    ((List<?>) integrity.get("problems")).size()));
            for (Object x : (List<?>) integrity.get("problems")) {
                Map<String, Object> p = (Map<String, Object>) x;
                md.append(fmt("- `%s` (%s): %s%n", p.get("name"), p.get("rule"), p.get("detail")));
            }
            if (!((List<?>) integrity.get("problems")).isEmpty()) {
                md.append('\n');
            }
        } else {
            md.append("No m2q-manifest.json: this is not an m2q release, so file hashes were not verified.\n\n");
        }
        Map<String, Object> format = (Map<String, Object>) j.get("format_checks");
        List<Map<String, Object>> violations = (List<Map<String, Object>>) format.get("violations");
        md.append("## Format\n\n");
        md.append(fmt("%d rule(s) broken at tensor-parallel sizes %s", violations.size(), format.get("tp")));
        md.append(violations.isEmpty() ? ".\n\n" : ":\n\n");
        for (Map<String, Object> v : violations) {
            md.append(fmt("- `%s` (%s): %s%n", v.get("tensor"), v.get("rule"), v.get("detail")));
        }
        if (!violations.isEmpty()) {
            md.append('\n');
        }

        Map<String, Object> acc = (Map<String, Object>) j.get("accuracy");
        if (acc == null) {
            md.append("Accuracy was not measured: the candidate failed the checks above.\n\n");
            return;
        }
        md.append("## Accuracy\n\n");
        md.append(fmt(
                "%s layout, group size %s, candidate run %s with %s kernels; %s tokens of `%s` in %s windows of up to"
                        + " %s (%s next-token predictions).%n%n",
                j.get("format"),
                j.get("group_size"),
                j.get("candidate_path"),
                j.get("kernels"),
                j.get("tokens"),
                j.get("text"),
                acc.get("windows"),
                j.get("seqlen"),
                acc.get("predictions")));
        md.append("| model | perplexity | Δ perplexity | KL mean (nats) | KL p99 | top-1 agreement |\n");
        md.append("|---|---|---|---|---|---|\n");
        md.append(fmt("| BF16 reference | %s | – | – | – | – |%n", num(acc.get("reference_ppl"), "%.4f")));
        List<Map<String, Object>> rows = new ArrayList<>();
        rows.add((Map<String, Object>) acc.get("candidate"));
        if (acc.get("baseline_rtn") != null) {
            rows.add((Map<String, Object>) acc.get("baseline_rtn"));
        }
        for (Map<String, Object> r : rows) {
            md.append(fmt(
                    "| %s | %s | %s | %s | %s | %s |%n",
                    r.get("label").equals("rtn") ? "RTN (on the fly)" : "candidate",
                    num(r.get("ppl"), "%.4f"),
                    num(r.get("ppl_increase_percent"), "%+.3f%%"),
                    num(r.get("kl_mean"), "%.6f"),
                    num(r.get("kl_p99"), "%.6f"),
                    percent(r.get("top1_agreement"))));
        }
        md.append('\n');
        if (acc.get("simulated_8bit") instanceof List<?> sims) {
            md.append(fmt(
                    "The candidate declares %s: its 8-bit parts are simulated from the written scales (FP8 e4m3 round to"
                            + " nearest even, saturating; INT8 rint, clamped), and the same weights run as W4A16 and with"
                            + " each part alone. Extra = the scheme's figure minus W4A16's; saturation = the share of"
                            + " values beyond the static scales' range on this text.%n%n",
                    j.get("scheme")));
            md.append("| scheme | perplexity | Δ perplexity | KL mean | extra KL over W4A16 | extra Δppl (points) |"
                    + " top-1 | saturated inputs / keys / values |\n");
            md.append("|---|---|---|---|---|---|---|---|\n");
            for (Object x : sims) {
                Map<String, Object> r = (Map<String, Object>) x;
                Map<String, Object> sat = (Map<String, Object>) r.get("saturation");
                md.append(fmt(
                        "| %s | %s | %s | %s | %s | %s | %s | %s |%n",
                        r.get("scheme"),
                        num(r.get("ppl"), "%.4f"),
                        num(r.get("ppl_increase_percent"), "%+.3f%%"),
                        num(r.get("kl_mean"), "%.6f"),
                        num(r.get("extra_kl_mean"), "%+.6f"),
                        num(r.get("extra_ppl_increase_points"), "%+.3f"),
                        percent(r.get("top1_agreement")),
                        sat == null
                                ? "–"
                                : share(sat.get("static_inputs")) + " / " + share(sat.get("keys")) + " / "
                                        + share(sat.get("values"))));
            }
            md.append('\n');
        }
        if (o.candidate() != null && !plottable(o)) {
            md.append("No plots: some figures are not finite numbers (NaN or infinite; null in validation.json).\n\n");
        }
        if (o.candidate() != null && plottable(o)) {
            md.append("Per-layer relative output error ‖h_q − h_ref‖ / ‖h_ref‖ (hidden states after each layer, both")
                    .append(" models run on the same tokens):\n\n");
            md.append("![per-layer error](").append(LAYER_PLOT).append(")\n\n");
            md.append("| layer | candidate");
            md.append(o.baseline() != null ? " | RTN |\n|---|---|---|\n" : " |\n|---|---|\n");
            double[] ce = o.candidate().layerErrors();
            for (int i = 0; i < ce.length; i++) {
                md.append(fmt("| %d | %.5f", i, ce[i]));
                md.append(o.baseline() != null ? fmt(" | %.5f |%n", o.baseline().layerErrors()[i]) : " |\n");
            }
            md.append("\nPer-token KL(P_ref ‖ P_cand):\n\n");
            md.append("![KL histogram](").append(KL_PLOT).append(")\n\n");
        }

        if (j.get("throughput") instanceof Map<?, ?> t) {
            md.append("## Throughput\n\n");
            md.append(fmt(
                    "Batch-1 greedy decoding, %s-token prompt, %s generated tokens timed after a warm-up, %s kernels"
                            + " on this machine's CPU.%n%n",
                    t.get("prompt_tokens"), t.get("decode_tokens"), t.get("kernels")));
            md.append("| configuration | tokens/s |\n|---|---|\n");
            o.throughput().forEach((k, v) -> md.append(fmt("| %s | %.1f |%n", k, v)));
            md.append(fmt("%nW4A16 kernel over BF16: %.2f×.%n%n", t.get("w4_speedup_over_bf16")));
            md.append("![throughput](").append(THROUGHPUT_PLOT).append(")\n\n");
        }

        List<Map<String, Object>> gates = (List<Map<String, Object>>) j.get("gates");
        md.append("## Gates\n\n");
        if (gates == null || gates.isEmpty()) {
            md.append("None: accuracy not gated (`--no-gates`).\n\n");
        } else {
            md.append("| gate | limit | set by | value | result |\n|---|---|---|---|---|\n");
            for (Map<String, Object> g : gates) {
                md.append(fmt(
                        "| `%s` | %.6g | %s | %s | %s |%n",
                        g.get("gate"),
                        g.get("limit"),
                        Boolean.TRUE.equals(g.get("default")) ? "default" : "option",
                        num(g.get("value"), "%.6g"),
                        Boolean.TRUE.equals(g.get("passed")) ? "pass" : "**fail**"));
            }
            md.append('\n');
        }
    }

    private static String percent(Object fraction) {
        return fraction == null ? "–" : fmt("%.2f%%", 100 * (Double) fraction);
    }

    private static String share(Object fraction) {
        return fraction == null ? "–" : fmt("%.3g%%", 100 * (Double) fraction);
    }

    private static String fmt(String f, Object... args) {
        return String.format(Locale.ROOT, f, args);
    }
}
