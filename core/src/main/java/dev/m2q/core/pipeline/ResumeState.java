package dev.m2q.core.pipeline;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.QuantScheme;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * {@code progress.json}: what an interrupted run had finished (the base tensors, the first {@code layersDone}
 * layers and their report rows) and the fingerprint of its inputs and options, which a {@code --resume} must match.
 * Read strictly ({@link Json#read}); each step returns the next state, which the layer loop saves.
 *
 * @param baseWritten whether the tensors outside the layers (embeddings, final norm, lm_head) are written
 * @param layersDone how many layers are finished, written and synced
 * @param report the finished layers' report rows, in order
 */
public record ResumeState(
        Fingerprint fingerprint,
        @JsonProperty("base_written") boolean baseWritten,
        @JsonProperty("layers_done") int layersDone,
        List<ReportLine> report) {

    /** The file in the partial folder that marks a run --resume can continue. */
    public static final String FILE = "progress.json";

    /** A fresh run's state: nothing written. */
    static ResumeState fresh(Fingerprint fingerprint) {
        return new ResumeState(fingerprint, false, 0, List.of());
    }

    /** The state once the base tensors are written. */
    ResumeState withBase() {
        return new ResumeState(fingerprint, true, layersDone, report);
    }

    /** The state once the next layer is finished, with its report rows. */
    ResumeState withLayer(List<? extends ReportLine> rows) {
        List<ReportLine> all = new ArrayList<>(report);
        all.addAll(rows);
        return new ResumeState(fingerprint, baseWritten, layersDone + 1, all);
    }

    /**
     * What a resumed run must share with the interrupted one: its inputs, options and kernels (keys in alphabetical
     * order, as progress.json has always had them).
     */
    record Fingerprint(
            @JsonProperty("act_clip") double actClip,
            @JsonProperty("batch_sequences") int batchSequences,
            Map<String, Object> calibration,
            String format,
            @JsonProperty("group_size") int groupSize,
            @JsonProperty("input_sha256") Map<String, String> inputSha256,
            String kernels,
            String layout,
            @JsonProperty("max_shard_bytes") long maxShardBytes,
            String method,
            @JsonProperty("method_settings") Map<String, Object> methodSettings,
            int nsamples,
            @JsonProperty("quantization_config") Map<String, Object> quantizationConfig,
            String scheme,
            long seed,
            int seqlen) {

        /**
         * The fingerprint of a run of {@code method} on {@code kernels} (their {@link QuantizeJob#kernelsFingerprint})
         * writing {@code format}. "format" is the GPTQ label, and for compressed-tensors the label the CLI gives its
         * method's GPTQ output; "layout" is gptq or compressed-tensors (what progress.json has always recorded, so an
         * interrupted run of an earlier m2q still resumes). The method's settings carry the bits when they are not 4.
         */
        static Fingerprint of(
                QuantizeOptions opts,
                ReleaseFormat format,
                QuantScheme scheme,
                LayerMethod method,
                String kernels,
                Map<String, String> inputHashes,
                Map<String, Object> calibration) {
            String label = format instanceof GptqRelease
                    ? format.id()
                    : method.name().equals("autoround") ? GptqRelease.AUTO_ROUND.id() : GptqRelease.GPTQ.id();
            Map<String, Object> settings = new TreeMap<>(method.settings());
            if (opts.bits().value() != 4) {
                settings.put("bits", opts.bits().value());
            }
            return new Fingerprint(
                    scheme.actClipPercentile(),
                    opts.batchSequences(),
                    calibration,
                    label,
                    opts.groupSize(),
                    inputHashes,
                    kernels,
                    format instanceof GptqRelease ? GptqRelease.GPTQ.id() : format.id(),
                    opts.maxShardBytes(),
                    method.name(),
                    settings,
                    opts.nsamples(),
                    new TreeMap<>(opts.quantizationConfig()),
                    scheme.label(opts.bits()),
                    opts.seed(),
                    opts.seqlen());
        }
    }

    /**
     * The state {@code file} records, which must carry the {@code expected} fingerprint.
     *
     * @throws InputException for an unreadable file, one that is not a progress record, or another run's
     */
    static ResumeState load(Path file, Fingerprint expected) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
            Json.parseObject(text);
        } catch (IOException | IllegalArgumentException e) {
            throw new InputException(
                    file + ": unreadable (" + e.getMessage() + "); start over with --overwrite instead of --resume");
        }
        ResumeState j;
        try {
            j = Json.read(text, ResumeState.class);
        } catch (JsonException e) {
            throw new InputException(file + ": not an m2q progress record (" + e.getMessage() + "); start over"
                    + " with --overwrite instead of --resume");
        }
        if (!Json.write(expected).equals(Json.write(j.fingerprint()))) {
            throw new InputException(file + ": the interrupted run used other inputs or options; rerun it with"
                    + " the same command line plus --resume, or start over with --overwrite");
        }
        if (j.layersDone() < 0 || j.report() == null || j.report().contains(null)) {
            throw new InputException(file + ": not an m2q progress record (needs layers_done ≥ 0 and a report"
                    + " list of rows); start over with --overwrite instead of --resume");
        }
        return new ResumeState(expected, j.baseWritten(), j.layersDone(), j.report());
    }

    /** The planned tensors an interrupted run had written: the base ones, then every finished layer's. */
    Set<String> written(ModelConfig cfg, ShardPlan plan) {
        Set<String> names = new HashSet<>();
        if (baseWritten) {
            names.addAll(baseTensors(cfg));
        }
        for (int l = 0; l < layersDone; l++) {
            String p = cfg.arch().layerPrefix() + l + ".";
            for (String name : plan.specs().keySet()) {
                if (name.startsWith(p)) {
                    names.add(name);
                }
            }
        }
        return names;
    }

    /** The tensors outside the layers, copied unchanged before the first layer. */
    static List<String> baseTensors(ModelConfig cfg) {
        return cfg.expectedShapes().keySet().stream()
                .filter(n -> !n.startsWith(cfg.arch().layerPrefix()))
                .toList();
    }

    void save(Path file) {
        AtomicFile.writeText(file, Json.writePretty(this));
    }
}
