package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.validate.ValidationReport;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command's summary reads the typed report: a candidate whose figures are NaN prints "n/a" for each and its
 * failed checks one per line, never a crash, and the summary of the report read back from validation.json (where the
 * NaNs are null) is the same text.
 */
class ValidateSummaryTest {
    @TempDir
    Path tmp;

    /** A report whose candidate perplexity, KL and a gate value are NaN, as the validator builds it. */
    static ValidationReport nanReport() {
        ValidationReport.Integrity integrity = new ValidationReport.Integrity(true, 3, 5, List.of());
        ValidationReport.FormatChecks format = new ValidationReport.FormatChecks(List.of(1), List.of());
        ValidationReport.ModelFigures cand = new ValidationReport.ModelFigures(
                "candidate", Double.NaN, Double.NaN, Double.NaN, Double.NaN, 0.5, 3, List.of(Double.NaN));
        ValidationReport.Accuracy acc = new ValidationReport.Accuracy(1, 2, 3.0, cand, null, null, 0.5);
        List<String> failures = List.of(
                "accuracy: the candidate's perplexity is NaN (its logits are not finite numbers: a weight, scale or"
                        + " activation overflowed)",
                "gate --max-kl (default): mean KL is NaN, limit 0.1");
        return new ValidationReport(
                "test",
                "ref",
                "cand",
                integrity,
                format,
                "gptq",
                128,
                "dequantized to fp32",
                "java",
                "heldout.txt",
                3,
                128,
                "W4A16",
                null,
                acc,
                null,
                List.of(new ValidationReport.Gate("--max-kl", 0.1, true, Double.NaN, false)),
                null,
                false,
                failures,
                "FAILED: 2 check(s) or gate(s)",
                null);
    }

    private static String summary(ValidationReport r) {
        StringWriter s = new StringWriter();
        try (PrintWriter out = new PrintWriter(s)) {
            ValidateCommand.summary(out, r);
        }
        return s.toString();
    }

    @Test
    void nanFiguresPrintAsNotAvailableAndTheirChecksFail() throws IOException {
        ValidationReport r = nanReport();
        String text = summary(r);
        assertTrue(text.contains("reference perplexity 3.0000"), text);
        assertTrue(text.contains("candidate perplexity n/a (n/a), KL mean n/a p99 n/a, top-1 50.00%"), text);
        assertTrue(text.contains("\nFAILED: 2 check(s) or gate(s)\n"), text);
        for (String f : r.failures()) {
            assertTrue(text.contains("\n  " + f + "\n"), text);
        }
        assertFalse(text.contains("NaN%"), text);

        Path f = tmp.resolve("validation.json");
        Files.writeString(f, r.toJson());
        ValidationReport back = ValidationReport.read(f);
        assertEquals(r, back);
        assertEquals(text, summary(back), "the file gives the same summary");
        assertEquals(
                "speculative decoding: not measured (the candidate failed its checks)",
                ValidateCommand.specSummary(back));
    }
}
