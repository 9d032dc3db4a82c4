package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
}
