package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.model.ModelConfig;
import dev.m2q.validate.SpecBench;
import dev.m2q.validate.ValidationReport;
import dev.m2q.validate.tasks.TaskSection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The model card of a real validate run: a GPTQ-format release of the fixture with an EAGLE-3 head attached in
 * {@code draft/}, validated against a reference whose README.md names a license, with tasks and speculative
 * decoding. Every figure the card prints is parsed back and compared with validation.json's.
 *
 * <p>The formatting rule, both ways: a figure of validation.json is printed with its pattern below in
 * {@link Locale#ROOT} (a fraction in percent as 100 × value); so the card's text must equal the JSON value formatted
 * with that pattern, and the number parsed back from the card must lie within half a unit of the pattern's last
 * decimal of the JSON value (the rounding the pattern does, nothing more).
 */
class ModelCardCliTest {
    @TempDir
    static Path tmp;

    static Path release;
    static Path reference;
    static Path prompts;
    static Path tasks;

    static final String PPL = "%.4f";
    static final String PPL_INCREASE = "%+.3f %%";
    static final String KL = "%.6f";
    static final String PERCENT = "%.2f %%";
    static final String POINTS = "%+.1f";
    static final String TAU = "%.3f";
    static final String SPEEDUP = "%.2f×";

    @BeforeAll
    static void prepare() throws IOException {
        release = CliTest.rtnRelease(tmp.resolve("tiny-w4"));
        Path head = tmp.resolve("head");
        SpecValidateTest.randomHead(ModelConfig.load(release)).write(head);
        CliTest.Run a = CliTest.run("eagle", "attach", "--draft", head.toString(), "--release", release.toString());
        assertEquals(0, a.code(), a.err());
        reference = Files.createDirectories(tmp.resolve("reference"));
        try (Stream<Path> files = Files.list(CliTest.FIXTURE)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                Files.copy(f, reference.resolve(f.getFileName()));
            }
        }
        Files.writeString(
                reference.resolve("README.md"),
                "---\nlicense: other\nlicense_name: tiny-terms\nlicense_link: https://example.org/tiny-terms\n"
                        + "---\n# The tiny reference\n");
        prompts = tmp.resolve("prompts.txt");
        Files.writeString(prompts, "Tell me about the sea.\n\nWhat is a prime number?\n");
        tasks = tmp.resolve("verses.jsonl");
        try (Stream<String> lines =
                Files.lines(CliTest.FIXTURE.resolveSibling("tasks").resolve("verse-endings.jsonl"))) {
            Files.write(tasks, lines.limit(24).toList());
        }
    }

    private static CliTest.Run validate(Path ref, String... extra) {
        return CliTest.validateBrief(ref, release, extra);
    }

    /** The cells of the markdown table row that starts with {@code first}. */
    private static String[] row(String card, String first) {
        for (String line : card.lines().toList()) {
            if (line.startsWith("| " + first + " |")) {
                String[] cells = line.substring(2, line.length() - 2).split(" \\| ", -1);
                for (int i = 0; i < cells.length; i++) {
                    cells[i] = cells[i].strip();
                }
                return cells;
            }
        }
        throw new AssertionError("no row \"" + first + "\" in\n" + card);
    }

    private static final Pattern DECIMALS = Pattern.compile("\\.(\\d+)f");
    private static final Pattern NUMBER = Pattern.compile("[+-]?\\d+(\\.\\d+)?");

    /** The card's {@code text} is {@code value × scale} in {@code pattern}, and parses back within its rounding. */
    private static void figure(String what, String text, String pattern, double value, double scale) {
        double shown = value * scale;
        assertEquals(String.format(Locale.ROOT, pattern, shown), text, what);
        Matcher d = DECIMALS.matcher(pattern);
        assertTrue(d.find(), pattern);
        Matcher n = NUMBER.matcher(text);
        assertTrue(n.find(), what + ": no number in " + text);
        double parsed = Double.parseDouble(n.group());
        double halfUnit = 0.5 * Math.pow(10, -Integer.parseInt(d.group(1)));
        // 1e-9 relative: the binary value of a decimal tie may land a hair beyond the half unit.
        assertTrue(
                Math.abs(parsed - shown) <= halfUnit * (1 + 1e-9),
                what + ": card " + parsed + " vs validation.json " + shown);
    }

    /** "81.25 % [62.00 %, 92.00 %]": a task accuracy and its interval. */
    private static void accuracy(String what, String cell, TaskSection.ModelAccuracy a) {
        Matcher m = Pattern.compile("(\\S+ %) \\[(\\S+ %), (\\S+ %)\\]").matcher(cell);
        assertTrue(m.matches(), what + ": " + cell);
        figure(what, m.group(1), PERCENT, a.accuracy(), 100);
        figure(what + " low", m.group(2), PERCENT, a.low(), 100);
        figure(what + " high", m.group(3), PERCENT, a.high(), 100);
    }

    @Test
    void theCardsFiguresAreValidationJsons() throws IOException {
        CliTest.Run r = validate(
                reference,
                "--tasks",
                tasks.toString(),
                "--draft",
                release.resolve("draft").toString(),
                "--prompts",
                prompts.toString(),
                "--k",
                "1,2",
                "--spec-tokens",
                "8",
                "--base-model",
                "Example/Tiny-Qwen2");
        assertEquals(0, r.code(), r.out() + r.err());
        Path readme = release.resolve("README.md");
        assertTrue(r.out().contains("wrote " + readme), r.out());
        String card = Files.readString(readme);
        ValidationReport j = ValidationReport.read(release.resolve("validation.json"));

        // Front matter: the hub's keys, the tags of a GPTQ 4-bit release with a head, the license carried over.
        List<String> head = card.lines().takeWhile(l -> !l.startsWith("<!--")).toList();
        assertEquals(
                List.of(
                        "---",
                        "base_model: Example/Tiny-Qwen2",
                        "base_model_relation: quantized",
                        "license: other",
                        "license_name: tiny-terms",
                        "license_link: https://example.org/tiny-terms",
                        "library_name: transformers",
                        "pipeline_tag: text-generation",
                        "tags:",
                        "- gptq",
                        "- 4-bit",
                        "- eagle3",
                        "- m2q",
                        "---"),
                head,
                card);

        ValidationReport.Accuracy acc = j.accuracy();
        assertNotNull(acc);
        figure("reference perplexity", row(card, "BF16 reference")[1], PPL, acc.referencePpl(), 1);
        String[] cand = row(card, "this release");
        ValidationReport.ModelFigures c = acc.candidate();
        figure("perplexity", cand[1], PPL, c.ppl(), 1);
        // "+0.232 % [+0.105, +0.355]": the increase, then its interval as validation.json has it.
        String[] increase = cand[2].split(" \\[", 2);
        figure("Δ perplexity", increase[0], PPL_INCREASE, c.pplIncreasePercent(), 1);
        assertEquals(
                String.format(
                        Locale.ROOT,
                        "[%+.3f, %+.3f]",
                        c.pplIncreaseCi95().get(0),
                        c.pplIncreaseCi95().get(1)),
                "[" + increase[1],
                "Δ perplexity's interval");
        figure("KL mean", cand[3], KL, c.klMean(), 1);
        figure("KL p99", cand[4], KL, c.klP99(), 1);
        figure("top-1", cand[5], PERCENT, c.top1Agreement(), 100);
        assertTrue(card.contains("Verdict: **" + j.verdict() + "**"), card);
        for (ValidationReport.Gate g : j.gates()) {
            assertEquals("pass", row(card, "`" + g.gate() + "` (default)")[3], g.gate());
        }

        List<TaskSection.Comparison> comparisons = new ArrayList<>(j.tasks().perTask());
        comparisons.addAll(j.tasks().overall());
        for (TaskSection.Comparison t : comparisons) {
            String[] cells = row(card, t.task() + " | " + t.metric());
            String what = t.task() + " " + t.metric();
            assertEquals(String.valueOf(t.n()), cells[2], what);
            accuracy(what + " reference", cells[3], t.reference());
            accuracy(what + " candidate", cells[4], t.candidate());
            figure(what + " Δ", cells[5], POINTS, t.deltaPoints(), 1);
            String[] interval = cells[6].substring(1, cells[6].length() - 1).split(", ");
            figure(what + " Δ low", interval[0], POINTS, t.deltaLow(), 1);
            figure(what + " Δ high", interval[1], POINTS, t.deltaHigh(), 1);
        }

        SpecBench.Measurements s = j.speculative();
        assertNotNull(s);
        assertEquals(
                List.of(1, 2), s.sweep().stream().map(SpecBench.SweepRow::k).toList());
        SpecBench.SweepRow best = null;
        for (SpecBench.SweepRow k : s.sweep()) {
            String[] cells = row(card, String.valueOf(k.k()));
            figure("τ at k=" + k.k(), cells[1], TAU, k.tau(), 1);
            figure("speedup at k=" + k.k(), cells[4], SPEEDUP, k.speedup(), 1);
            if (best == null || k.speedup() > best.speedup()) {
                best = k;
            }
        }
        assertTrue(card.contains("m2q's own engine"), card);
        // The engines' speculative settings use the k with the best measured speedup.
        int k = best.k();
        assertTrue(
                card.contains("\"method\": \"eagle3\", \"model\": \"./tiny-w4/draft\", \"num_speculative_tokens\": " + k
                        + "}"),
                card);
        assertTrue(
                card.contains("--speculative-algorithm EAGLE3 --speculative-draft-model-path ./tiny-w4/draft"), card);
        assertTrue(
                card.contains("--speculative-num-steps " + k + " --speculative-eagle-topk 1"
                        + " --speculative-num-draft-tokens " + (k + 1)),
                card);
        assertFalse(card.contains("--kv-cache-dtype"), "no KV scales in a W4A16 release: " + card);
        assertTrue(card.contains("sha256 `"), card);

        // The card is rewritten by the next run, and --no-report leaves it as it is.
        Files.writeString(readme, card.replace("## Validation", "## Validation\n\nstale"));
        CliTest.Run again = validate(reference, "--no-gates");
        assertEquals(0, again.code(), again.out() + again.err());
        String rewritten = Files.readString(readme);
        assertFalse(rewritten.contains("stale"), rewritten);
        assertFalse(rewritten.contains("base_model"), "no --base-model this time, and the folder is no hub cache");
        assertTrue(rewritten.contains("No accuracy gate was applied"), rewritten);
        Files.writeString(readme, "stale\n" + rewritten);
        assertEquals(0, validate(reference, "--no-report").code());
        assertTrue(Files.readString(readme).startsWith("stale\n"), "--no-report writes no card");
    }

    @Test
    void aUsersReadmeIsKeptAndTheLicenseIsNeverInvented() throws IOException {
        Path report = Files.createDirectories(tmp.resolve("user-report"));
        String mine = "# My notes on this release\n";
        Files.writeString(report.resolve("README.md"), mine);
        CliTest.Run r = validate(CliTest.FIXTURE, "--report-dir", report.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertEquals(mine, Files.readString(report.resolve("README.md")));
        assertTrue(r.err().lines().anyMatch(l -> l.startsWith("m2q: ") && l.contains("README.md: kept")), r.err());
        assertTrue(Files.exists(report.resolve("validation.json")));

        // Without the user's file the card is written; the fixture's folder has no README.md, so no license.
        Files.delete(report.resolve("README.md"));
        assertEquals(
                0, validate(CliTest.FIXTURE, "--report-dir", report.toString()).code());
        String card = Files.readString(report.resolve("README.md"));
        List<String> frontMatter = Arrays.asList(card.split("\n---\n", 2)[0].split("\n"));
        assertTrue(frontMatter.stream().noneMatch(l -> l.startsWith("license")), card);
        assertTrue(card.contains("front matter names none, and m2q never invents one"), card);
    }
}
