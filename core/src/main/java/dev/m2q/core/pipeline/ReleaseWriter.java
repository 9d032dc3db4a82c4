package dev.m2q.core.pipeline;

import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.Dirs;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.StagedDir;
import dev.m2q.core.json.Json;
import dev.m2q.core.quant.QuantScheme;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Finishes a release whose tensors are all written: closes the shards, writes config.json with the format's {@code
 * quantization_config} (and the file that repeats it, where the format has one), copies the tokenizer files, writes
 * m2q-report.jsonl and the manifest ({@link Manifest.Release}), runs the loadability check and, when it passes,
 * swaps the release into place.
 *
 * @param methodName the method's name, for the config's meta and the manifest
 * @param kernels which results the kernels reproduce ({@link QuantizeJob#kernelsFingerprint})
 */
record ReleaseWriter(
        QuantizeOptions opts, ReleaseFormat format, QuantScheme scheme, String methodName, String kernels) {

    /** The tokenizer and generation files copied from the source model when present. */
    static final List<String> COPIED = List.of(
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
            "special_tokens_map.json",
            "vocab.json",
            "merges.txt",
            "added_tokens.json");

    /** The files of a finished release with their sha256, and the release check's violations (empty: swapped in). */
    record Written(Map<String, String> files, List<String> violations) {}

    /**
     * Writes the rest of the release into {@code staged}, deletes progress.json and swaps the release in when {@code
     * check} finds nothing; otherwise leaves it in the partial folder.
     *
     * @param report the report rows of every layer, in order
     * @param inputHashes the source model's files with their sha256
     * @param calibration the calibration set's description for the manifest
     */
    Written write(
            CheckpointWriter writer,
            List<ReportLine> report,
            StagedDir staged,
            Map<String, String> inputHashes,
            Map<String, Object> calibration,
            QuantizeJob.ReleaseCheck check) {
        Path partial = staged.dir();
        Map<String, String> files = new TreeMap<>(writer.finish());
        Dirs.deleteTree(partial.resolve("spill"));
        Map<String, Object> config;
        Path configFile = opts.model().resolve("config.json");
        try {
            config = Json.parseObject(Files.readString(configFile, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(configFile + ": cannot read: " + e.getMessage(), e);
        }
        Object qc = format.quantizationConfig(new ReleaseFormat.Keys(
                opts.bits(), opts.groupSize(), scheme, opts.quantizationConfig(), methodName, opts.m2qVersion()));
        config.put("quantization_config", qc);
        files.put("config.json", staged.writeAtomically("config.json", Json.writePretty(config)));
        format.configFile().ifPresent(f -> files.put(f, staged.writeAtomically(f, Json.writePretty(qc))));
        for (String name : COPIED) {
            Path from = opts.model().resolve(name);
            if (Files.isRegularFile(from)) {
                files.put(name, Dirs.copy(from, partial.resolve(name)));
            }
        }
        StringBuilder jsonl = new StringBuilder();
        for (ReportLine row : report) {
            jsonl.append(Json.write(row)).append('\n');
        }
        files.put("m2q-report.jsonl", staged.writeAtomically("m2q-report.jsonl", jsonl.toString()));
        Manifest.Release manifest = new Manifest.Release(
                opts.m2qVersion(),
                format.id(),
                scheme.label(opts.bits()),
                Manifest.FORMAT_VERSION,
                methodName,
                opts.commandLine(),
                new Manifest.Input(opts.model().toString(), inputHashes),
                calibration,
                opts.seed(),
                kernels,
                new TreeMap<>(files),
                Manifest.tensorHashes(partial));
        staged.writeAtomically(Manifest.FILE, Json.writePretty(manifest));
        List<String> violations = check.violations(partial);
        try {
            Files.delete(partial.resolve(ResumeState.FILE));
        } catch (IOException e) {
            throw new UncheckedIOException(partial.resolve(ResumeState.FILE) + ": cannot delete: " + e.getMessage(), e);
        }
        if (violations.isEmpty()) {
            staged.commit();
        } else {
            staged.close();
        }
        return new Written(files, violations);
    }
}
