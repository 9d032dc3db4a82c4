package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A candidate whose logits are NaN (a weight or scale that overflowed) is a failed check, gated or not, and its report
 * is written with null where a figure is not a number: neither the JSON writer nor the plots see a NaN.
 */
class NonFiniteFiguresTest {
    static final int VOCAB = 4;

    /** One layer, three positions; the candidate's logits are NaN at the second position. */
    static Agreement nanCandidate() {
        Agreement a = new Agreement("candidate", 1);
        a.layer(0, new float[] {1, 2}, new float[] {1, Float.NaN});
        float[] ref = {0.5f, 1.5f, -1f, 0.25f};
        for (int t = 0; t < 3; t++) {
            float[] q = t == 1 ? new float[] {Float.NaN, 0, 0, 0} : ref.clone();
            a.position(ref, Agreement.Row.of(ref, 0, VOCAB), q, 0, VOCAB, t < 2 ? 1 : -1);
        }
        return a;
    }

    @Test
    void nanFiguresFailEvenWithoutGates() {
        Agreement a = nanCandidate();
        assertTrue(Double.isNaN(a.ppl()) && Double.isNaN(a.klMean()), a.ppl() + " " + a.klMean());
        List<String> failures = new ArrayList<>();
        Validator.nonFinite(3.0, a, failures);
        assertEquals(2, failures.size(), failures.toString());
        assertTrue(failures.get(0).startsWith("accuracy: the candidate's perplexity is NaN"), failures.get(0));
        assertTrue(failures.get(1).startsWith("accuracy: the candidate's mean KL is NaN"), failures.get(1));

        List<String> gated = new ArrayList<>();
        List<ValidationReport.Gate> gates =
                Validator.gates(ValidateOptions.Gates.of(null, null, null, false), 3.0, a, gated);
        assertTrue(
                gated.stream().anyMatch(f -> f.startsWith("gate --max-ppl-increase (default): perplexity")),
                gated.toString());
        assertTrue(
                gated.stream().anyMatch(f -> f.startsWith("gate --max-kl (default): mean KL is NaN")),
                gated.toString());
        assertTrue(Double.isNaN(gates.get(0).value()));
        assertEquals(Boolean.FALSE, gates.get(0).passed());
        Map<String, Object> written = Json.parseObject(Json.write(gates.get(0)));
        assertTrue(written.containsKey("value") && written.get("value") == null, "NaN is written as null");
    }

    /** The report of {@link #nanCandidate} as the validator builds it: checks passed, figures NaN. */
    static ValidationReport nanReport() {
        Agreement a = nanCandidate();
        List<String> failures = new ArrayList<>();
        ValidationReport.Integrity integrity = new ValidationReport.Integrity(true, 3, 5, List.of());
        ValidationReport.FormatChecks format = new ValidationReport.FormatChecks(List.of(1), List.of());
        ValidationReport.Accuracy acc = new ValidationReport.Accuracy(1, 2, 3.0, a.figures(3.0), null, null, 0.5);
        Validator.nonFinite(3.0, a, failures);
        ValidateOptions.Gates g = ValidateOptions.Gates.of(null, null, null, false);
        List<ValidationReport.Gate> gates = Validator.gates(g, 3.0, a, failures);
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
                gates,
                null,
                false,
                failures,
                Validator.verdict(integrity, format, null, failures, g),
                null);
    }

    @Test
    void theReportOfANanRunIsWrittenWithNulls(@TempDir Path tmp) throws IOException {
        Agreement a = nanCandidate();
        ValidationReport r = nanReport();
        assertTrue(r.verdict().startsWith("FAILED: "), r.verdict());
        Validator.Outcome o =
                new Validator.Outcome(r, new Validator.Figures("candidate", a.kl(), a.layerErrors()), null, null);

        List<Path> written = Report.write(tmp, o);
        assertEquals(List.of(tmp.resolve(Report.JSON), tmp.resolve(Report.MARKDOWN)), written, "no plots of NaN");
        Map<String, Object> back = Json.parseObject(Files.readString(tmp.resolve(Report.JSON)));
        Map<?, ?> cand = (Map<?, ?>) ((Map<?, ?>) back.get("accuracy")).get("candidate");
        assertNull(cand.get("ppl"));
        assertNull(cand.get("kl_mean"));
        assertTrue(cand.containsKey("ppl"), "the key stays, with null");
        assertEquals(r, ValidationReport.read(tmp.resolve(Report.JSON)), "null is read back as NaN: the same report");
        String md = Files.readString(tmp.resolve(Report.MARKDOWN));
        assertTrue(md.startsWith("# Validation of cand"), md);
        assertTrue(md.contains("**FAILED**") && md.contains("No plots: some figures are not finite"), md);
        assertFalse(md.contains("NaN%"), md);
    }
}
