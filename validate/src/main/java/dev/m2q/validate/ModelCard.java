package dev.m2q.validate;

import dev.m2q.core.InputException;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.validate.tasks.TaskSection;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The release's model card: {@code README.md} in the hub's conventions (YAML front matter, then what was done, the
 * validation results and how to serve it), written by every validate run beside {@code validation.json} and read
 * from it, so each figure on the card is the file's figure printed with the pattern named in {@link Fmt}.
 *
 * <p>What the card says about the release comes from the release's own files: {@code config.json}'s {@code
 * quantization_config}, the tensor names of its checkpoint (KV-cache scales, a 16-bit {@code lm_head}), {@code
 * m2q-manifest.json} (method, calibration set with its sha256, samples × sequence length, seed) and {@code draft/}.
 * The license and its name and link are carried over from the reference model's {@code README.md} front matter; the
 * base model's hub id comes from {@code --base-model}, or from the hub cache's folder layout of the reference
 * ({@code models--ORG--NAME/snapshots/REV}). Neither is ever guessed: without one, the card names none and says so.
 *
 * <p>A card m2q wrote carries {@link #MARKER} and is replaced on each run; a {@code README.md} without it is the
 * user's and is never replaced (the run says so in one line and writes no card).
 */
public final class ModelCard {
    public static final String FILE = "README.md";

    /** The line that marks a card as m2q's, and so replaceable by the next validate run. */
    public static final String MARKER = "<!-- m2q:model-card";

    private static final String MARKER_LINE = MARKER
            + " written by m2q validate from validation.json and rewritten on every validate run; delete this"
            + " line to keep your own edits (m2q then leaves this file alone) -->";

    /** A hub repository id: owner/name. */
    private static final Pattern HUB_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*");

    /** A YAML value that needs no quotes: no space (so no ": " or " #"), no leading indicator, no trailing ':'. */
    private static final Pattern PLAIN = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.+/:%?=&-]*");

    private ModelCard() {}

    /**
     * Where the card's facts come from.
     *
     * @param release the quantized release (the candidate)
     * @param reference the BF16 model it was validated against, or null (a speculative-only run)
     * @param baseModel the base model's hub id ({@code --base-model}), or null
     */
    public record Source(Path release, Path reference, String baseModel) {
        public Source {
            if (baseModel != null && !HUB_ID.matcher(baseModel).matches()) {
                throw new InputException("--base-model " + baseModel
                        + ": not a hub model id (owner/name, letters, digits, '_', '.', '-')");
            }
        }
    }

    /**
     * What {@link #write} did: the card's path, or why there is none.
     *
     * @param written the card written, or null
     * @param skipped one line saying why no card was written, or null
     */
    public record Outcome(Path written, String skipped) {}

    /**
     * The number formats of the card, the rule both ways: a figure of validation.json is printed with its pattern
     * ({@link Locale#ROOT}), and a figure that is not a finite number (null in the JSON) as "–". A card figure parsed
     * back differs from the JSON's by at most half a unit of its last printed digit.
     */
    static final class Fmt {
        static final String PPL = "%.4f";
        static final String PPL_INCREASE = "%+.3f %%";
        static final String KL = "%.6f";
        /** top-1 agreement, task accuracy and its interval: a fraction printed in percent. */
        static final String PERCENT = "%.2f %%";

        static final String POINTS = "%+.1f";
        static final String TAU = "%.3f";
        static final String ALPHA = "%.3f";
        static final String SPEEDUP = "%.2f×";
        static final String TOKENS_PER_SECOND = "%.1f";

        private Fmt() {}
    }

    /** A figure in its pattern, or "–" when it is not a finite number. */
    /** The effective recipe {@code m2q release} writes into a release (before it validates it). */
    public static final String RECIPE_FILE = "m2q-recipe.yaml";

    static String figure(String pattern, double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, pattern, v) : "–";
    }

    /** A fraction in percent, or "–". */
    static String percent(double fraction) {
        return Double.isFinite(fraction) ? figure(Fmt.PERCENT, 100 * fraction) : "–";
    }

    /**
     * Writes the card into {@code dir} from the validation.json there (written just before), unless a README.md
     * that m2q did not write is in the way.
     *
     * @throws dev.m2q.core.io.OutputException when the card cannot be written
     */
    public static Outcome write(Path dir, Source source) {
        Path file = dir.resolve(FILE);
        if (Files.exists(file) && !ours(file)) {
            return new Outcome(
                    null,
                    file + ": kept, it is not a card m2q wrote (no \"" + MARKER + "\" line), so no model card was"
                            + " written; move it away to get one");
        }
        ValidationReport r = ValidationReport.read(dir.resolve(Report.JSON));
        AtomicFile.writeText(file, render(r, source));
        return new Outcome(file, null);
    }

    /** Whether {@code file} is a card m2q wrote (it carries the marker line). */
    static boolean ours(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8).lines().anyMatch(l -> l.startsWith(MARKER));
        } catch (IOException | java.io.UncheckedIOException e) {
            // Unreadable (not UTF-8, no permission): not provably ours, so it is kept.
            return false;
        }
    }

    /** The card's text for report {@code r} on the release and reference of {@code s}. */
    static String render(ValidationReport r, Source s) {
        Facts f = Facts.read(s.release());
        Map<String, String> refCard = s.reference() == null ? Map.of() : referenceFrontMatter(s.reference());
        String base = s.baseModel() != null ? s.baseModel() : hubIdOf(s.reference());
        StringBuilder md = new StringBuilder();
        frontMatter(md, f, refCard, base);
        md.append(MARKER_LINE).append("\n\n");
        md.append("# ").append(f.name()).append("\n\n");
        md.append(f.summary());
        if (base != null) {
            md.append(" of [")
                    .append(base)
                    .append("](https://huggingface.co/")
                    .append(base)
                    .append(")");
        } else {
            md.append(" of the model in the folder `")
                    .append(f.sourceName(s.reference()))
                    .append("` (its hub id was not given: `m2q validate --base-model OWNER/NAME` names it here)");
        }
        md.append(
                        f.m2qVersion() != null
                                ? ", made with m2q " + f.m2qVersion()
                                : ", made outside m2q (the release has no m2q-manifest.json)")
                .append(". Every figure on this card is read from `validation.json`, measured by m2q ")
                .append(r.m2qVersion())
                .append(" on the release's files.\n\n");
        whatWasDone(md, f, refCard, s.reference());
        validation(md, r);
        serve(md, f, r, s.release());
        return md.toString();
    }

    // ---- front matter

    private static void frontMatter(StringBuilder md, Facts f, Map<String, String> refCard, String base) {
        md.append("---\n");
        if (base != null) {
            md.append("base_model: ").append(base).append('\n');
            md.append("base_model_relation: quantized\n");
        }
        for (String k : List.of("license", "license_name", "license_link")) {
            String v = refCard.get(k);
            if (v != null) {
                md.append(k).append(": ").append(yaml(v)).append('\n');
            }
        }
        md.append("library_name: transformers\n");
        md.append("pipeline_tag: text-generation\n");
        md.append("tags:\n");
        for (String t : f.tags()) {
            md.append("- ").append(t).append('\n');
        }
        md.append("---\n");
    }

    /** A YAML scalar: plain when it is safe, else a double-quoted string (JSON's escapes are YAML's). */
    private static String yaml(String v) {
        return PLAIN.matcher(v).matches() && !v.endsWith(":") ? v : Json.write(v);
    }

    /**
     * The top-level {@code key: value} lines of a model's README.md front matter (between a first line "---" and the
     * next); nested or list values are left out. Empty when the folder has no README.md or it has no front matter.
     */
    static Map<String, String> referenceFrontMatter(Path modelDir) {
        Path file = modelDir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            return Map.of();
        }
        List<String> lines;
        try {
            lines = Files.readString(file, StandardCharsets.UTF_8).lines().toList();
        } catch (IOException | java.io.UncheckedIOException e) {
            throw new InputException(file + ": cannot read the reference's model card (" + e.getMessage() + ")", e);
        }
        Map<String, String> out = new LinkedHashMap<>();
        if (lines.isEmpty() || !lines.get(0).strip().equals("---")) {
            return out;
        }
        for (String line : lines.subList(1, lines.size())) {
            if (line.strip().equals("---")) {
                return out;
            }
            int colon = line.indexOf(':');
            if (colon <= 0 || Character.isWhitespace(line.charAt(0)) || line.startsWith("-") || line.startsWith("#")) {
                continue;
            }
            String key = line.substring(0, colon).strip();
            String value = unquote(line.substring(colon + 1).strip());
            if (!value.isEmpty() && !value.startsWith("[") && !value.startsWith("{")) {
                out.put(key, value);
            }
        }
        // No closing "---": not front matter.
        return Map.of();
    }

    private static String unquote(String v) {
        if (v.length() >= 2 && ((v.startsWith("\"") && v.endsWith("\"")) || (v.startsWith("'") && v.endsWith("'")))) {
            return v.substring(1, v.length() - 1);
        }
        int comment = v.indexOf(" #");
        return comment < 0 ? v : v.substring(0, comment).strip();
    }

    /**
     * The hub id of a model read from the hub's cache ({@code …/models--OWNER--NAME/snapshots/REVISION}), or null
     * for any other folder.
     */
    static String hubIdOf(Path model) {
        if (model == null) {
            return null;
        }
        Path p = model.toAbsolutePath().normalize();
        Path snapshots = p.getParent();
        Path repo = snapshots == null ? null : snapshots.getParent();
        if (repo == null
                || !snapshots.getFileName().toString().equals("snapshots")
                || !repo.getFileName().toString().startsWith("models--")) {
            return null;
        }
        String rest = repo.getFileName().toString().substring("models--".length());
        int sep = rest.indexOf("--");
        if (sep <= 0) {
            return null;
        }
        String id = rest.substring(0, sep) + "/" + rest.substring(sep + 2);
        return HUB_ID.matcher(id).matches() ? id : null;
    }

    // ---- what was done

    private static void whatWasDone(StringBuilder md, Facts f, Map<String, String> refCard, Path reference) {
        md.append("## What was done\n\n");
        md.append("- Method: ").append(f.methodLine()).append('\n');
        md.append("- Weights: ").append(f.weightsLine()).append('\n');
        if (f.actOrder() != null) {
            md.append("- Column order: ").append(f.actOrder()).append('\n');
        }
        md.append("- Activations: ").append(f.activations()).append('\n');
        md.append("- KV cache: ").append(f.kvCache()).append('\n');
        md.append("- `lm_head`: ").append(f.lmHead()).append('\n');
        md.append("- Calibration: ").append(f.calibrationLine()).append('\n');
        md.append("- Checkpoint format: ").append(f.formatLine()).append('\n');
        md.append("- Speculative decoding: ");
        if (f.draft()) {
            md.append("an EAGLE-3 draft head in `draft/`");
            if (f.draftManifest()) {
                md.append(" (its files hashed in `draft/m2q-manifest.json`)");
            }
        } else {
            md.append("no draft head");
        }
        md.append('\n');
        if (f.recipe()) {
            md.append("- Recipe: `")
                    .append(RECIPE_FILE)
                    .append("`, every option of every stage and the sha256 of every input; `m2q release --recipe ")
                    .append(RECIPE_FILE)
                    .append(" --out NEW_DIR` on the same inputs rebuilds these tensor files byte for byte\n");
        }
        String license = refCard.get("license");
        if (license != null) {
            md.append("- License: `")
                    .append(license)
                    .append("`, carried over from the reference model's card")
                    .append(refCard.containsKey("license_link") ? " (see `license_link` above)" : "")
                    .append("; the base model's terms apply to these weights\n");
        } else {
            md.append("- License: none named here: ")
                    .append(
                            reference == null
                                    ? "this run had no reference model (no `--reference`) to carry it from"
                                    : "the reference model's `README.md` front matter names none")
                    .append(", and m2q never invents one; the base model's terms apply to these weights")
                    .append(
                            reference != null && Files.isRegularFile(reference.resolve("LICENSE"))
                                    ? " (the reference folder has a `LICENSE` file)"
                                    : "")
                    .append('\n');
        }
        md.append('\n');
    }

    // ---- validation results

    private static void validation(StringBuilder md, ValidationReport r) {
        md.append("## Validation\n\n");
        if (r.reference() == null) {
            md.append("Accuracy was not measured in this run (no `--reference`): only speculative decoding.\n\n");
        } else {
            md.append("Verdict: **").append(r.verdict()).append("**");
            md.append(r.passed() ? "\n\n" : ":\n\n");
            for (String failure : r.failures()) {
                md.append("- ").append(failure).append('\n');
            }
            if (!r.passed()) {
                md.append('\n');
            }
        }
        ValidationReport.Accuracy acc = r.accuracy();
        if (acc != null) {
            md.append(String.format(
                    Locale.ROOT,
                    "Against the BF16 reference on %s tokens of `%s` (%s window(s) of up to %s tokens, %s next-token"
                            + " predictions); the candidate ran %s. KL is the mean per-token KL(P_ref ‖ P_quant) in"
                            + " nats; top-1 is the share of positions where both models' most likely next token"
                            + " agree.%s%n%n",
                    r.tokens(),
                    fileName(r.text()),
                    acc.windows(),
                    r.seqlen(),
                    acc.predictions(),
                    r.candidatePath(),
                    acc.pplWindows() == null
                            ? ""
                            : " In brackets, the Δ perplexity's 95 % interval: a paired bootstrap over the windows, how"
                                    + " far it moves with the text drawn."));
            if (acc.simulated8bit() != null) {
                md.append("The release was measured as it declares itself, ")
                        .append(r.scheme())
                        .append(": its 8-bit parts simulated from the written scales (`validation.md` has each part"
                                + " alone).\n\n");
            }
            md.append("| model | perplexity | Δ perplexity | KL mean | KL p99 | top-1 agreement |\n");
            md.append("|---|---|---|---|---|---|\n");
            md.append("| BF16 reference | ")
                    .append(figure(Fmt.PPL, acc.referencePpl()))
                    .append(" | – | – | – | – |\n");
            modelRow(md, "this release", acc.candidate());
            if (acc.baselineRtn() != null) {
                modelRow(md, "RTN, same group size", acc.baselineRtn());
            }
            md.append('\n');
        } else if (r.reference() != null) {
            md.append("Accuracy was not measured: ")
                    .append(r.skipped() != null ? r.skipped() : "the release failed its checks")
                    .append(".\n\n");
        }
        if (r.gates() != null && !r.gates().isEmpty()) {
            md.append("| gate | limit | value | result |\n|---|---|---|---|\n");
            for (ValidationReport.Gate g : r.gates()) {
                md.append(String.format(
                        Locale.ROOT,
                        "| `%s`%s | %.6g | %s | %s |%n",
                        g.gate(),
                        g.byDefault() ? " (default)" : "",
                        g.limit(),
                        figure("%.6g", g.value()),
                        g.passed() == null ? "not measured" : g.passed() ? "pass" : "**fail**"));
            }
            md.append('\n');
        } else if (r.gates() != null) {
            md.append("No accuracy gate was applied (`--no-gates`).\n\n");
        }
        if (r.tasks() != null) {
            tasks(md, r.tasks());
        }
        if (r.speculative() != null) {
            speculative(md, r.speculative());
        }
        md.append(
                acc != null
                        ? "The full report, with the per-layer error, the KL histogram and the integrity and format"
                                + " checks, is `validation.md` beside this card.\n\n"
                        : "The full report is `validation.md` beside this card.\n\n");
    }

    private static void modelRow(StringBuilder md, String label, ValidationReport.ModelFigures m) {
        md.append("| ")
                .append(label)
                .append(" | ")
                .append(figure(Fmt.PPL, m.ppl()))
                .append(" | ")
                .append(figure(Fmt.PPL_INCREASE, m.pplIncreasePercent()))
                .append(Report.interval(m.pplIncreaseCi95(), "%+.3f"))
                .append(" | ")
                .append(figure(Fmt.KL, m.klMean()))
                .append(" | ")
                .append(figure(Fmt.KL, m.klP99()))
                .append(" | ")
                .append(percent(m.top1Agreement()))
                .append(" |\n");
    }

    private static void tasks(StringBuilder md, TaskSection t) {
        md.append("### Task accuracy\n\n");
        md.append("Each model's accuracy with its 95 % interval (")
                .append(t.method().accuracyInterval())
                .append("); Δ = this release − reference in points with its 95 % interval (")
                .append(t.method().deltaInterval())
                .append(").\n\n");
        md.append("| task | metric | items | reference | this release | Δ points | 95 % interval of Δ |\n");
        md.append("|---|---|---|---|---|---|---|\n");
        List<TaskSection.Comparison> rows = new ArrayList<>(t.perTask());
        rows.addAll(t.overall());
        for (TaskSection.Comparison c : rows) {
            md.append("| ")
                    .append(c.task())
                    .append(" | ")
                    .append(c.metric())
                    .append(" | ")
                    .append(c.n())
                    .append(" | ")
                    .append(accuracy(c.reference()))
                    .append(" | ")
                    .append(accuracy(c.candidate()))
                    .append(" | ")
                    .append(figure(Fmt.POINTS, c.deltaPoints()))
                    .append(" | [")
                    .append(figure(Fmt.POINTS, c.deltaLow()))
                    .append(", ")
                    .append(figure(Fmt.POINTS, c.deltaHigh()))
                    .append("] |\n");
        }
        md.append('\n');
    }

    private static String accuracy(TaskSection.ModelAccuracy a) {
        return percent(a.accuracy()) + " [" + percent(a.low()) + ", " + percent(a.high()) + "]";
    }

    private static void speculative(StringBuilder md, SpecBench.Measurements s) {
        md.append("### Speculative decoding (EAGLE-3)\n\n");
        md.append(String.format(
                Locale.ROOT,
                "Measured on m2q's own engine, %s (batch 1, %s kernels, the release run %s), not on vLLM or SGLang:"
                        + " %s prompts of `%s`, %s new tokens each, T = %s. Plain decoding on the same engine: %s"
                        + " tokens/s. τ = tokens emitted per target forward; α = accepted / verified drafts; the"
                        + " speedup is measured tokens/s with the head over without it; the predicted one is"
                        + " (1 − α^(k+1)) / ((1 − α)(k·c + 1)), for an engine where verifying k + 1 tokens costs one"
                        + " decode step.%n%n",
                s.kernels() != null && s.kernels().startsWith("cuda") ? "on a GPU" : "on the CPU",
                s.kernels(),
                s.candidatePath(),
                s.prompts(),
                fileName(s.promptsFile()),
                s.specTokens(),
                s.temperature(),
                figure(Fmt.TOKENS_PER_SECOND, s.plain().tokensPerSecond())));
        md.append("| k | τ | α | tokens/s | measured speedup | predicted speedup |\n");
        md.append("|---|---|---|---|---|---|\n");
        for (SpecBench.SweepRow row : s.sweep()) {
            md.append("| ")
                    .append(row.k())
                    .append(" | ")
                    .append(figure(Fmt.TAU, row.tau()))
                    .append(" | ")
                    .append(figure(Fmt.ALPHA, row.alpha()))
                    .append(" | ")
                    .append(figure(Fmt.TOKENS_PER_SECOND, row.tokensPerSecond()))
                    .append(" | ")
                    .append(figure(Fmt.SPEEDUP, row.speedup()))
                    .append(" | ")
                    .append(figure(Fmt.SPEEDUP, row.predictedSpeedup()))
                    .append(" |\n");
        }
        SpecBench.SweepRow best = best(s);
        if (best != null) {
            md.append(String.format(
                    Locale.ROOT,
                    "%nBest measured: k = %d (%s, τ %s).%n%n",
                    best.k(),
                    figure(Fmt.SPEEDUP, best.speedup()),
                    figure(Fmt.TAU, best.tau())));
        }
    }

    /** The k with the highest measured speedup (the first of equals), or null when none is a number. */
    static SpecBench.SweepRow best(SpecBench.Measurements s) {
        SpecBench.SweepRow best = null;
        for (SpecBench.SweepRow row : s.sweep()) {
            if (Double.isFinite(row.speedup()) && (best == null || row.speedup() > best.speedup())) {
                best = row;
            }
        }
        return best;
    }

    // ---- serving

    private static void serve(StringBuilder md, Facts f, ValidationReport r, Path release) {
        String dir = "./" + f.name();
        md.append("## Serve it\n\n");
        md.append("From the folder that holds `")
                .append(f.name())
                .append("/` (this repository downloaded into a folder of that name works the same).")
                .append(" The engines read the quantization from `config.json`.");
        SpecBench.SweepRow best = null;
        if (f.draft()) {
            best = r.speculative() != null && sameFolder(r.speculative().draft(), release.resolve("draft"))
                    ? best(r.speculative())
                    : null;
            if (best == null) {
                md.append(" The EAGLE-3 head in `draft/` was not measured in this run, so no speculative setting is"
                                + " given: `m2q validate --draft ")
                        .append(dir)
                        .append("/draft --prompts FILE` measures it and puts the best k here.");
            } else {
                md.append(" The EAGLE-3 head in `draft/` proposes a chain of k = ")
                        .append(best.k())
                        .append(" tokens per step, the k with the best measured speedup above.");
            }
        }
        if (f.kvScales()) {
            md.append(" The FP8 KV cache runs from the calibrated `k_scale`/`v_scale` written in the checkpoint.");
        }
        md.append("\n\nvLLM:\n\n```bash\nvllm serve ").append(dir);
        if (f.kvScales()) {
            md.append(" \\\n  --kv-cache-dtype fp8");
        }
        if (best != null) {
            md.append(" \\\n  --speculative-config '{\"method\": \"eagle3\", \"model\": \"")
                    .append(dir)
                    .append("/draft\", \"num_speculative_tokens\": ")
                    .append(best.k())
                    .append("}'");
        }
        md.append("\n```\n\nSGLang:\n\n```bash\npython -m sglang.launch_server --model-path ")
                .append(dir);
        if (f.kvScales()) {
            md.append(" \\\n  --kv-cache-dtype fp8_e4m3");
        }
        if (best != null) {
            md.append(" \\\n  --speculative-algorithm EAGLE3 --speculative-draft-model-path ")
                    .append(dir)
                    .append("/draft \\\n  --speculative-num-steps ")
                    .append(best.k())
                    .append(" --speculative-eagle-topk 1 --speculative-num-draft-tokens ")
                    .append(best.k() + 1);
        }
        md.append("\n```\n\n");
        md.append("Transformers (with ").append(f.transformersPackages()).append(" installed):\n\n");
        md.append("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n");
        md.append("tokenizer = AutoTokenizer.from_pretrained(\"").append(dir).append("\")\n");
        md.append("model = AutoModelForCausalLM.from_pretrained(\"")
                .append(dir)
                .append("\", device_map=\"auto\", torch_dtype=\"auto\")\n");
        md.append("messages = [{\"role\": \"user\", \"content\": \"Hello!\"}]\n");
        md.append(
                "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\")\n");
        md.append("out = model.generate(inputs.to(model.device), max_new_tokens=64)\n");
        md.append("print(tokenizer.decode(out[0][inputs.shape[-1]:], skip_special_tokens=True))\n```\n");
        if (f.draft()) {
            md.append("\nTransformers runs the target alone: the EAGLE-3 head needs vLLM or SGLang.\n");
        }
    }

    private static boolean sameFolder(String measured, Path draft) {
        try {
            return measured != null
                    && Path.of(measured)
                            .toAbsolutePath()
                            .normalize()
                            .equals(draft.toAbsolutePath().normalize());
        } catch (java.nio.file.InvalidPathException e) {
            return false;
        }
    }

    private static String fileName(String path) {
        if (path == null) {
            return "–";
        }
        Path p = Path.of(path).getFileName();
        return p == null ? path : p.toString();
    }

    // ---- the release's facts

    /**
     * What the release's files say about it, each null where the file does not record it.
     *
     * @param name the release folder's name
     * @param qc config.json's quantization_config (empty when absent)
     * @param manifest m2q-manifest.json (empty when absent: not an m2q release)
     * @param tensors the checkpoint's tensor names (empty when it cannot be opened)
     * @param tiedEmbeddings config.json's tie_word_embeddings
     * @param draft whether draft/ holds a head (its config.json)
     * @param draftManifest whether draft/ has its m2q-manifest.json
     * @param recipe whether the release holds the effective recipe of {@code m2q release} ({@link #RECIPE_FILE})
     */
    record Facts(
            String name,
            Map<String, Object> qc,
            Map<String, Object> manifest,
            Set<String> tensors,
            boolean tiedEmbeddings,
            boolean draft,
            boolean draftManifest,
            boolean recipe) {

        static Facts read(Path release) {
            Path abs = release.toAbsolutePath().normalize();
            Map<String, Object> config = json(abs.resolve("config.json"));
            Map<String, Object> qc = map(config.get("quantization_config"));
            Set<String> tensors = new TreeSet<>();
            try (Checkpoint ck = Checkpoint.open(abs)) {
                tensors.addAll(ck.names());
            } catch (RuntimeException e) {
                // No readable checkpoint: the integrity check has already failed and says why.
            }
            return new Facts(
                    abs.getFileName() == null
                            ? abs.toString()
                            : abs.getFileName().toString(),
                    qc,
                    json(abs.resolve(Manifest.FILE)),
                    tensors,
                    Boolean.TRUE.equals(config.get("tie_word_embeddings")),
                    Files.isRegularFile(abs.resolve("draft").resolve("config.json")),
                    Files.isRegularFile(abs.resolve("draft").resolve(Manifest.FILE)),
                    Files.isRegularFile(abs.resolve(RECIPE_FILE)));
        }

        private static Map<String, Object> json(Path file) {
            if (!Files.isRegularFile(file)) {
                return Map.of();
            }
            try {
                return Json.parseObject(Files.readString(file, StandardCharsets.UTF_8));
            } catch (IOException | JsonException e) {
                throw new InputException(file + ": cannot read for the model card (" + e.getMessage() + ")", e);
            }
        }

        @SuppressWarnings("unchecked")
        private static Map<String, Object> map(Object o) {
            return o instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
        }

        String quantMethod() {
            return qc.get("quant_method") instanceof String s ? s : null;
        }

        boolean compressedTensors() {
            return "compressed-tensors".equals(quantMethod());
        }

        /** compressed-tensors' first config group, or empty. */
        private Map<String, Object> group() {
            Map<String, Object> groups = map(qc.get("config_groups"));
            return groups.isEmpty() ? Map.of() : map(groups.values().iterator().next());
        }

        Integer bits() {
            Object b = compressedTensors() ? map(group().get("weights")).get("num_bits") : qc.get("bits");
            return b instanceof Number n ? n.intValue() : null;
        }

        Integer groupSize() {
            Object g = compressedTensors() ? map(group().get("weights")).get("group_size") : qc.get("group_size");
            return g instanceof Number n ? n.intValue() : null;
        }

        Boolean symmetric() {
            Object s = compressedTensors() ? map(group().get("weights")).get("symmetric") : qc.get("sym");
            return s instanceof Boolean b ? b : null;
        }

        Map<String, Object> inputActivations() {
            return compressedTensors() ? map(group().get("input_activations")) : Map.of();
        }

        Map<String, Object> kvScheme() {
            return map(qc.get("kv_cache_scheme"));
        }

        /** Whether the checkpoint holds calibrated KV-cache scales (k_scale and v_scale tensors). */
        boolean kvScales() {
            return tensors.stream().anyMatch(n -> n.endsWith(".k_scale"))
                    && tensors.stream().anyMatch(n -> n.endsWith(".v_scale"));
        }

        String m2qVersion() {
            return manifest.get("m2q_version") instanceof String s ? s : null;
        }

        /** The hub tags: the format, the weight bits, 8-bit activations and KV cache, the draft head, m2q. */
        List<String> tags() {
            List<String> tags = new ArrayList<>();
            String m = quantMethod();
            if ("gptq".equals(m)) {
                tags.add("gptq");
            } else if ("auto-round".equals(m)) {
                tags.add("auto-round");
            } else if (compressedTensors()) {
                tags.add("compressed-tensors");
            }
            Integer bits = bits();
            if (bits != null) {
                tags.add(bits + "-bit");
                if (!inputActivations().isEmpty() && inputActivations().get("num_bits") instanceof Number a) {
                    tags.add("w" + bits + "a" + a.intValue());
                }
            }
            if (!kvScheme().isEmpty()) {
                tags.add("fp8-kv");
            }
            if (draft) {
                tags.add("eagle3");
            }
            tags.add("m2q");
            return tags;
        }

        /** "4-bit GPTQ quantization" and the like: the card's first words. */
        String summary() {
            String method = manifest.get("method") instanceof String s ? methodName(s) : formatName();
            Integer bits = bits();
            return (bits == null ? "" : bits + "-bit ") + method + " quantization";
        }

        private String formatName() {
            String m = quantMethod();
            if (m == null) {
                return "unknown-method";
            }
            return switch (m) {
                case "gptq" -> "GPTQ";
                case "auto-round" -> "AutoRound";
                default -> m;
            };
        }

        private static String methodName(String m) {
            return switch (m) {
                case "gptq" -> "GPTQ";
                case "autoround" -> "AutoRound";
                case "rtn" -> "round-to-nearest (RTN)";
                default -> m;
            };
        }

        String methodLine() {
            Object method = manifest.get("method");
            String seed = manifest.get("seed") instanceof Number n ? ", seed " + n : "";
            return method instanceof String s
                    ? methodName(s) + ", by m2q quantize" + seed.replace(", seed", " with seed")
                    : formatName() + " (no m2q-manifest.json: not quantized by m2q, so its recipe is not recorded)";
        }

        String weightsLine() {
            Integer bits = bits();
            Integer g = groupSize();
            Boolean sym = symmetric();
            return (bits == null ? "bits not recorded" : bits + "-bit integers")
                    + (g == null ? "" : g < 0 ? ", one group per row" : ", group size " + g)
                    + (sym == null ? "" : sym ? ", symmetric" : ", asymmetric (zero points)");
        }

        /** Act-order and static groups, where the format records them; null for AutoRound (no column order). */
        String actOrder() {
            if (compressedTensors()) {
                Object a = map(group().get("weights")).get("actorder");
                return a == null ? "original (no act-order)" : "act-order (`actorder: " + a + "`)";
            }
            if ("gptq".equals(quantMethod())) {
                boolean desc = Boolean.TRUE.equals(qc.get("desc_act"));
                boolean statics = Boolean.TRUE.equals(qc.get("static_groups"));
                if (desc) {
                    return "act-order (`desc_act: true`), columns by descending Hessian diagonal";
                }
                return statics
                        ? "act-order with static groups (groups fixed on the original column order, so"
                                + " `desc_act: false`)"
                        : "original (no act-order)";
            }
            return null;
        }

        String activations() {
            Map<String, Object> a = inputActivations();
            if (a.isEmpty()) {
                return "16-bit (weight-only quantization)";
            }
            String type = "float".equals(a.get("type")) ? "FP8 (e4m3)" : "INT8";
            return type + ", "
                    + (Boolean.TRUE.equals(a.get("dynamic"))
                            ? "a scale per token computed at run time"
                            : "one calibrated static scale per linear (`input_scale`)");
        }

        String kvCache() {
            Map<String, Object> k = kvScheme();
            if (k.isEmpty()) {
                return "16-bit (not quantized)";
            }
            return "FP8 (e4m3), calibrated static scales "
                    + ("attn_head".equals(k.get("strategy")) ? "per attention head" : "per layer")
                    + (kvScales() ? " (`k_scale`/`v_scale` in the checkpoint)" : " (declared, but no scales found)");
        }

        String lmHead() {
            if (tensors.contains("lm_head.weight")) {
                return "kept in 16 bits";
            }
            if (tensors.stream().anyMatch(n -> n.startsWith("lm_head."))) {
                return "quantized like the other linears";
            }
            return tiedEmbeddings ? "tied to the 16-bit input embeddings" : "not recorded";
        }

        String calibrationLine() {
            Map<String, Object> c = map(manifest.get("calibration"));
            if (c.isEmpty()) {
                return "not recorded (no m2q-manifest.json)";
            }
            StringBuilder b = new StringBuilder();
            if (c.get("files") instanceof List<?> files && !files.isEmpty()) {
                List<String> names = new ArrayList<>();
                files.forEach(x -> names.add("`" + fileName(String.valueOf(x)) + "`"));
                b.append(String.join(", ", names));
            } else {
                b.append("source not recorded");
            }
            if (c.get("sha256") instanceof String sha) {
                b.append(" (sha256 `").append(sha).append("`)");
            }
            if (c.get("nsamples") instanceof Number n && c.get("seqlen") instanceof Number l) {
                b.append(", ").append(n).append(" samples × ").append(l).append(" tokens");
            }
            if (c.get("tokens") instanceof Number t) {
                b.append(" drawn from ").append(t).append(" tokens");
            }
            return b.toString();
        }

        String formatLine() {
            String m = quantMethod();
            if (m == null) {
                return "not declared in config.json";
            }
            return switch (m) {
                case "gptq" ->
                    "GPTQ (`quant_method: gptq`, `checkpoint_format: " + qc.getOrDefault("checkpoint_format", "gptq")
                            + "`)";
                case "auto-round" ->
                    "AutoRound (`quant_method: auto-round`, `packing_format: " + qc.getOrDefault("packing_format", "–")
                            + "`)";
                case "compressed-tensors" -> "compressed-tensors (`format: " + qc.getOrDefault("format", "–") + "`)";
                default -> "`quant_method: " + m + "`";
            };
        }

        /** What transformers needs beside it for this format. */
        String transformersPackages() {
            String m = quantMethod();
            if ("gptq".equals(m)) {
                return "`gptqmodel` and `optimum`";
            }
            if ("auto-round".equals(m)) {
                return "`auto-round`";
            }
            if (compressedTensors()) {
                return "`compressed-tensors`";
            }
            return "the format's package";
        }

        /** The source model's folder name, for a card without a hub id. */
        String sourceName(Path reference) {
            if (reference != null) {
                Path n = reference.toAbsolutePath().normalize().getFileName();
                return n == null ? reference.toString() : n.toString();
            }
            if (manifest.get("input") instanceof Map<?, ?> in && in.get("model") instanceof String m) {
                return fileName(m);
            }
            return "–";
        }
    }
}
