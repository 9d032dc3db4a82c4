package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which files of a release the manifest must list ({@link Manifest#covered}), and the check on a small folder. */
class ManifestCoverageTest {
    @Test
    void weightsConfigsAndTokenizerFilesAreCoveredReportsAndHiddenFilesAreNot() {
        for (String n : List.of(
                "model.safetensors",
                "model-00001-of-00002.safetensors",
                "model.safetensors.index.json",
                "config.json",
                "quantize_config.json",
                "quantization_config.json",
                "generation_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "added_tokens.json",
                "vocab.json",
                "merges.txt",
                "vocab.txt",
                "tokenizer.model",
                "chat_template.jinja")) {
            assertTrue(Manifest.covered(n), n);
        }
        for (String n : List.of(
                Manifest.FILE,
                "validation.json",
                "validation.md",
                "validation-kl-histogram.png",
                "README.md",
                "LICENSE",
                "m2q-report.jsonl",
                ".gitattributes",
                ".validation.json.partial",
                ".model.safetensors.tmp")) {
            assertFalse(Manifest.covered(n), n);
        }
    }

    @Test
    void aFolderWithAnUnlistedConfigAndNoTensorsSection(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("config.json"), "{}");
        Files.writeString(dir.resolve("extra.json"), "{}");
        Files.writeString(dir.resolve("README.md"), "# not covered");
        Files.createDirectories(dir.resolve("draft"));
        Files.writeString(dir.resolve("draft").resolve("config.json"), "{}");
        Files.writeString(
                dir.resolve(Manifest.FILE),
                "{\"files\": {\"config.json\": \"" + Sha256.ofFile(dir.resolve("config.json")) + "\"}}");
        Manifest.Verification v = Manifest.verify(dir);
        assertEquals(1, v.files());
        assertEquals(
                List.of("extra.json: file unlisted"),
                v.problems().stream().map(p -> p.name() + ": " + p.rule()).toList());
        Manifest.Verification release = Manifest.verifyRelease(dir);
        assertEquals(
                List.of("extra.json: file unlisted", Manifest.FILE + ": tensors missing"),
                release.problems().stream().map(p -> p.name() + ": " + p.rule()).toList());
    }

    @Test
    void aDamagedManifestIsBadInputNamingTheFileAndWhere(@TempDir Path dir) throws IOException {
        Path m = dir.resolve(Manifest.FILE);
        for (String[] c : new String[][] {
            {"{\"files\": {\"config.json\": \"ab\"}", "malformed JSON"},
            {"{\"files\": {\"config.json\": 7}}", "malformed JSON"},
            {"{\"files\": {\"a\": \"x\"}, \"files\": {}}", "Duplicate field 'files'"},
            {"{\"m2q_version\": \"0\"}", "has no \"files\" object"},
        }) {
            Files.writeString(m, c[0]);
            InputException e = assertThrows(InputException.class, () -> Manifest.verify(dir), c[0]);
            assertTrue(e.getMessage().startsWith(m + ": "), e.getMessage());
            assertTrue(e.getMessage().contains(c[1]), c[0] + " → " + e.getMessage());
        }
        // Well formed, with keys verify does not read (each writer records its own): read, and the check runs.
        Files.writeString(m, "{\"m2q_version\": \"0\", \"files\": {\"config.json\": \"ab\"}}");
        Manifest.Verification v = Manifest.verify(dir);
        assertEquals(
                List.of("file missing"),
                v.problems().stream().map(Manifest.Problem::rule).toList());
    }
}
