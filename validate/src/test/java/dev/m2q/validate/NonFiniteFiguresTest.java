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
import java.util.LinkedHashMap;
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
        Map<String, Object> json = new LinkedHashMap<>();
        Validator.gates(ValidateOptions.Gates.of(null, null, null, false), 3.0, a, gated, json);
        assertTrue(
                gated.stream().anyMatch(f -> f.startsWith("gate --max-ppl-increase (default): perplexity")),
                gated.toString());
        assertTrue(
                gated.stream().anyMatch(f -> f.startsWith("gate --max-kl (default): mean KL is NaN")),
                gated.toString());
        List<?> gates = (List<?>) json.get("gates");
        assertNull(((Map<?, ?>) gates.get(0)).get("value"), "NaN is written as null");
        assertEquals(false, ((Map<?, ?>) gates.get(0)).get("passed"));
    }

    @Test
    void theReportOfANanRunIsWrittenWithNulls(@TempDir Path tmp) throws IOException {
        Agreement a = nanCandidate();
        List<String> failures = new ArrayList<>();
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("m2q_version", "test");
        json.put("reference", "ref");
        json.put("candidate", "cand");
        json.put(
                "integrity", Map.of("manifest", true, "files_checked", 3, "tensors_checked", 5, "problems", List.of()));
        json.put("format_checks", Map.of("tp", List.of(1), "violations", List.of()));
        json.put("format", "gptq");
        Map<String, Object> acc = new LinkedHashMap<>();
        acc.put("windows", 1);
        acc.put("predictions", 2);
        acc.put("reference_ppl", 3.0);
        acc.put("candidate", a.json(3.0));
        acc.put("baseline_rtn", null);
        json.put("accuracy", acc);
        Validator.nonFinite(3.0, a, failures);
        ValidateOptions.Gates g = ValidateOptions.Gates.of(null, null, null, false);
        Validator.gates(g, 3.0, a, failures, json);
        json.put("passed", false);
        json.put("failures", failures);
        json.put("verdict", Validator.verdict(json, failures, g));
        Validator.Outcome o = new Validator.Outcome(
                json, failures, new Validator.Figures("candidate", a.kl(), a.layerErrors()), null, Map.of());

        List<Path> written = Report.write(tmp, o);
        assertEquals(List.of(tmp.resolve(Report.JSON), tmp.resolve(Report.MARKDOWN)), written, "no plots of NaN");
        Map<String, Object> back = Json.parseObject(Files.readString(tmp.resolve(Report.JSON)));
        Map<?, ?> cand = (Map<?, ?>) ((Map<?, ?>) back.get("accuracy")).get("candidate");
        assertNull(cand.get("ppl"));
        assertNull(cand.get("kl_mean"));
        assertTrue(cand.containsKey("ppl"), "the key stays, with null");
        String md = Files.readString(tmp.resolve(Report.MARKDOWN));
        assertTrue(md.startsWith("# Validation of cand"), md);
        assertTrue(md.contains("**FAILED**") && md.contains("No plots: some figures are not finite"), md);
        assertFalse(md.contains("NaN%"), md);
    }
}
