package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
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
 * The model card's policy and its facts, on hand-written release folders (config.json, m2q-manifest.json, draft/;
 * no weights, so each case is milliseconds): the hub tags follow the release's quantization_config and draft/, the
 * license is carried over from the reference's card and never invented, the base model comes from --base-model or
 * the hub cache's folder layout only, a README.md without m2q's marker is never replaced, and one with it always is.
 * The figures on a card of a real run are checked against validation.json by the CLI's ModelCardCliTest.
 */
class ModelCardTest {
    @TempDir
    Path tmp;

    /** A GPTQ release folder's config.json, with {@code extra} quantization_config keys. */
    private Path release(String name, String quantizationConfig, boolean draft) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Files.writeString(
                dir.resolve("config.json"),
                "{\"model_type\": \"qwen2\", \"tie_word_embeddings\": false, \"quantization_config\": "
                        + quantizationConfig + "}");
        Files.writeString(
                dir.resolve("m2q-manifest.json"),
                "{\"m2q_version\": \"9.9\", \"method\": \"gptq\", \"seed\": 7, \"calibration\": {\"files\":"
                        + " [\"/data/c4.jsonl\"], \"sha256\": \"ab12\", \"tokens\": 5000, \"nsamples\": 64,"
                        + " \"seqlen\": 512}, \"files\": {}}");
        if (draft) {
            Files.createDirectories(dir.resolve("draft"));
            Files.writeString(dir.resolve("draft").resolve("config.json"), "{}");
        }
        return dir;
    }

    private static final String GPTQ = "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 128, \"sym\": true,"
            + " \"desc_act\": false, \"static_groups\": false, \"checkpoint_format\": \"gptq\"}";

    private static final String W4A8_KV8 = "{\"quant_method\": \"compressed-tensors\", \"format\": \"pack-quantized\","
            + " \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, \"type\":"
            + " \"int\", \"symmetric\": true, \"strategy\": \"group\", \"group_size\": 128, \"actorder\": null},"
            + " \"input_activations\": {\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"tensor\", \"dynamic\":"
            + " false, \"symmetric\": true}}}, \"kv_cache_scheme\": {\"num_bits\": 8, \"type\": \"float\","
            + " \"strategy\": \"tensor\", \"dynamic\": false, \"symmetric\": true}, \"ignore\": [\"lm_head\"]}";

    private Path reference(String readme) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("ref"));
        if (readme != null) {
            Files.writeString(dir.resolve("README.md"), readme);
        }
        return dir;
    }

    /** validation.json of a speculative-only run in {@code dir}, as Report writes it. */
    private static void speculativeReport(Path dir, Path release) throws IOException {
        ValidationReport r = ValidationReport.speculativeOnly("9.9", release.toString(), null);
        Files.writeString(dir.resolve(Report.JSON), r.toJson());
    }

    /** The front matter's lines between the two "---", and its tag list. */
    static Map<String, Object> frontMatter(String card) {
        List<String> lines = card.lines().toList();
        assertEquals("---", lines.get(0), card);
        Map<String, Object> out = new LinkedHashMap<>();
        List<String> tags = new ArrayList<>();
        for (String line : lines.subList(1, lines.size())) {
            if (line.equals("---")) {
                out.put("tags", tags);
                return out;
            }
            if (line.startsWith("- ")) {
                tags.add(line.substring(2));
            } else {
                int colon = line.indexOf(": ");
                if (colon > 0) {
                    out.put(line.substring(0, colon), line.substring(colon + 2));
                } else {
                    assertEquals("tags:", line, "a key line or the tag list");
                }
            }
        }
        throw new AssertionError("no closing --- in\n" + card);
    }

    @Test
    void tagsFollowTheQuantizationConfigAndTheDraftHead() throws IOException {
        Path gptq = release("gptq", GPTQ, true);
        speculativeReport(gptq, gptq);
        ModelCard.Outcome o = ModelCard.write(gptq, new ModelCard.Source(gptq, null, null));
        assertNull(o.skipped());
        String card = Files.readString(o.written());
        Map<String, Object> fm = frontMatter(card);
        assertEquals(List.of("gptq", "4-bit", "eagle3", "m2q"), fm.get("tags"), card);
        assertEquals("transformers", fm.get("library_name"));
        assertEquals("text-generation", fm.get("pipeline_tag"));
        assertFalse(fm.containsKey("base_model"), "no hub id was given: none is invented");
        assertFalse(fm.containsKey("base_model_relation"));
        assertFalse(fm.containsKey("license"));
        assertTrue(card.contains("this run had no reference model"), card);
        assertTrue(card.contains("64 samples × 512 tokens"), card);
        assertTrue(card.contains("sha256 `ab12`"), card);
        assertTrue(card.contains("`c4.jsonl`"), card);
        assertTrue(card.contains("group size 128, symmetric"), card);
        // The head was not measured in this run: no speculative flag with an invented k.
        assertFalse(card.contains("--speculative-config"), card);
        assertFalse(card.contains("--speculative-algorithm"), card);
        assertTrue(card.contains("was not measured in this run"), card);
        // No KV scales in a GPTQ release: no FP8 KV cache flag.
        assertFalse(card.contains("--kv-cache-dtype"), card);

        Path ct = release("ct", W4A8_KV8, false);
        speculativeReport(ct, ct);
        String ctCard = Files.readString(
                ModelCard.write(ct, new ModelCard.Source(ct, null, null)).written());
        assertEquals(
                List.of("compressed-tensors", "4-bit", "w4a8", "fp8-kv", "m2q"),
                frontMatter(ctCard).get("tags"));
        assertTrue(ctCard.contains("FP8 (e4m3), one calibrated static scale per linear"), ctCard);
        // The scheme declares an FP8 KV cache, but this folder has no checkpoint, so no scales: no flag.
        assertTrue(ctCard.contains("declared, but no scales found"), ctCard);
        assertFalse(ctCard.contains("--kv-cache-dtype"), ctCard);
    }

    @Test
    void theLicenseIsCarriedOverFromTheReferenceCardAndNeverInvented() throws IOException {
        Path rel = release("rel", GPTQ, false);
        speculativeReport(rel, rel);
        Path ref = reference("---\nlicense: apache-2.0\nlicense_link: 'https://example.org/terms: v2'\n"
                + "base_model: someone/its-own-parent\ntags:\n- chat\n---\n# The reference\n");
        String card = Files.readString(ModelCard.write(rel, new ModelCard.Source(rel, ref, "Org/Model-32B"))
                .written());
        Map<String, Object> fm = frontMatter(card);
        assertEquals("apache-2.0", fm.get("license"));
        // A value with ": " is quoted, so YAML reads the same string back.
        assertEquals("\"https://example.org/terms: v2\"", fm.get("license_link"));
        assertFalse(fm.containsKey("license_name"));
        // The reference's own base_model names its parent, not the reference: the card takes --base-model.
        assertEquals("Org/Model-32B", fm.get("base_model"));
        assertEquals("quantized", fm.get("base_model_relation"));
        assertTrue(card.contains("License: `apache-2.0`, carried over"), card);

        Files.writeString(ref.resolve("README.md"), "# A card without front matter\nlicense: mit\n");
        String none = Files.readString(
                ModelCard.write(rel, new ModelCard.Source(rel, ref, null)).written());
        assertFalse(frontMatter(none).containsKey("license"), none);
        assertFalse(frontMatter(none).containsKey("base_model"), none);
        assertTrue(none.contains("the reference model's `README.md` front matter names none"), none);
        assertTrue(none.contains("of the model in the folder `ref`"), none);

        Files.delete(ref.resolve("README.md"));
        assertFalse(frontMatter(Files.readString(ModelCard.write(rel, new ModelCard.Source(rel, ref, null))
                        .written()))
                .containsKey("license"));
    }

    @Test
    void theBaseModelComesFromTheHubCacheLayoutOnly() {
        assertEquals(
                "Qwen/Qwen2.5-32B-Instruct",
                ModelCard.hubIdOf(tmp.resolve("hub/models--Qwen--Qwen2.5-32B-Instruct/snapshots/0123abc")));
        assertNull(ModelCard.hubIdOf(tmp.resolve("models/Qwen2.5-32B-Instruct")));
        assertNull(ModelCard.hubIdOf(tmp.resolve("models--Qwen--Qwen2.5/blobs/0123abc")));
        assertNull(ModelCard.hubIdOf(null));
        assertThrows(InputException.class, () -> new ModelCard.Source(tmp, null, "not a hub id"));
        assertThrows(InputException.class, () -> new ModelCard.Source(tmp, null, "a/b/c"));
    }

    @Test
    void aReadmeThatM2qDidNotWriteIsKeptAndOneItWroteIsReplaced() throws IOException {
        Path rel = release("rel", GPTQ, false);
        speculativeReport(rel, rel);
        Path readme = rel.resolve(ModelCard.FILE);
        String mine = "---\nlicense: mit\n---\n# My own card\n";
        Files.writeString(readme, mine);
        ModelCard.Outcome kept = ModelCard.write(rel, new ModelCard.Source(rel, null, null));
        assertNull(kept.written());
        assertNotNull(kept.skipped());
        assertTrue(kept.skipped().contains("kept"), kept.skipped());
        assertEquals(mine, Files.readString(readme), "the user's README.md is never replaced");

        // A card m2q wrote, edited below its marker line, is m2q's: replaced by the next run.
        Files.writeString(readme, "---\n---\n" + ModelCard.MARKER + " -->\n\nstale figures\n");
        ModelCard.Outcome replaced = ModelCard.write(rel, new ModelCard.Source(rel, null, null));
        assertEquals(readme, replaced.written());
        String card = Files.readString(readme);
        assertFalse(card.contains("stale figures"), card);
        assertTrue(card.lines().anyMatch(l -> l.startsWith(ModelCard.MARKER)), card);
        // The marker is what the next run checks, so the card it writes is replaceable in turn.
        assertTrue(ModelCard.ours(readme));
    }

    @Test
    void frontMatterReaderTakesTopLevelScalarsOnly() throws IOException {
        Path ref = reference("---\nlicense: \"apache-2.0\" \nlicense_name: qwen # the name\nlanguage:\n- en\n"
                + "extra: [a, b]\n  nested: x\n---\nlicense: not-front-matter\n");
        Map<String, String> fm = ModelCard.referenceFrontMatter(ref);
        assertEquals(Map.of("license", "apache-2.0", "license_name", "qwen"), fm);
        Files.writeString(ref.resolve("README.md"), "---\nlicense: mit\nno closing line\n");
        assertEquals(Map.of(), ModelCard.referenceFrontMatter(ref), "unterminated front matter is none");
    }
}
