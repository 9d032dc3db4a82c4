package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.SafetensorsFile;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.QuantizedLinear;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The layer-sequential pipeline (ALGORITHMS.md §0) writing a GPTQ-layout checkpoint (FORMATS.md §2), labelled as
 * GPTQ or as AutoRound's "auto_round:auto_gptq" (§3) by {@link QuantizeOptions#format}.
 *
 * <p>Everything is built in {@code OUT.m2q-partial/} beside the output and renamed to {@code OUT} only when
 * complete. After each layer its tensors are synced and {@code progress.json} records it; {@code --resume}
 * reopens the partial shards, replays the finished layers from what was written (dequantized, so the
 * calibration activations are bit-identical to the interrupted run's) and continues with the next layer.
 */
public final class QuantizeJob {
    private static final String PARTIAL_SUFFIX = ".m2q-partial";
    private static final String PROGRESS = "progress.json";
    private static final List<String> COPIED = List.of(
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
            "special_tokens_map.json",
            "vocab.json",
            "merges.txt",
            "added_tokens.json");

    private final QuantizeOptions opts;
    private final LayerMethod method;
    private final Kernels kernels;
    private final ProgressListener progress;

    public QuantizeJob(QuantizeOptions opts, LayerMethod method, Kernels kernels, ProgressListener progress) {
        this.opts = opts;
        this.method = method;
        this.kernels = kernels;
        this.progress = progress;
    }

    /** Where an interrupted run of {@code out} keeps its work. */
    public static Path partialDir(Path out) {
        Path abs = out.toAbsolutePath().normalize();
        return abs.resolveSibling(abs.getFileName() + PARTIAL_SUFFIX);
    }

    /** What the run wrote. */
    public record Summary(Path out, Map<String, String> files, List<Map<String, Object>> report, int resumedLayers) {}

    /**
     * Quantizes the model over {@code samples} (each exactly seqlen token ids) and writes the release.
     *
     * @param calibration a description of the calibration set for the manifest (files, hash, tokens)
     */
    public Summary run(List<int[]> samples, Map<String, Object> calibration) {
        Path out = opts.out().toAbsolutePath().normalize();
        Path partial = partialDir(out);
        checkOutput(out, opts.overwrite(), opts.resume());
        if (!opts.resume()) {
            deleteTree(partial);
        }
        ModelConfig cfg = ModelConfig.load(opts.model());
        try (Qwen2Model model = Qwen2Model.load(opts.model(), kernels);
                Checkpoint src = Checkpoint.open(opts.model())) {
            Map<String, String> inputHashes = inputHashes(src);
            List<TensorSpec> specs = GptqFormat.plan(cfg, src::tensor, opts.groupSize());
            ShardPlan plan = ShardPlan.of(specs, opts.maxShardBytes());
            Map<String, Object> fingerprint = fingerprint(inputHashes, calibration);

            Progress state;
            CheckpointWriter writer;
            if (opts.resume()) {
                state = Progress.load(partial.resolve(PROGRESS), fingerprint);
                writer = CheckpointWriter.resume(partial, plan, CheckpointWriter.PT_METADATA, state.written(cfg));
                progress.info("resuming " + partial + " after layer " + (state.layersDone - 1));
            } else {
                state = new Progress(fingerprint);
                writer = CheckpointWriter.create(partial, plan, CheckpointWriter.PT_METADATA);
            }
            try {
                int resumed = quantize(cfg, model, src, plan, writer, state, partial, samples);
                Map<String, String> files = finishRelease(cfg, writer, state, partial, out, inputHashes, calibration);
                return new Summary(out, files, state.report, resumed);
            } catch (RuntimeException | Error e) {
                writer.detach();
                if (Files.isRegularFile(partial.resolve(PROGRESS))) {
                    progress.info(
                            "stopped; the finished layers are kept in " + partial
                                    + ": rerun with the same options plus --resume to continue, or with --overwrite to start over");
                }
                throw e;
            }
        }
    }

    /**
     * Refuses, before any work, an existing output without --overwrite, a --resume with nothing to resume, and an
     * interrupted run that would be silently discarded. Changes nothing on disk.
     */
    public static void checkOutput(Path out, boolean overwrite, boolean resume) {
        Path abs = out.toAbsolutePath().normalize();
        Path partial = partialDir(abs);
        if (Files.exists(abs) && !overwrite) {
            throw new InputException(abs + ": already exists; pass --overwrite to replace it (it is replaced only"
                    + " once the new release is complete)");
        }
        if (resume && !Files.isRegularFile(partial.resolve(PROGRESS))) {
            throw new InputException(partial + ": no interrupted run to resume (no " + PROGRESS + ")");
        }
        if (!resume && Files.exists(partial) && !overwrite) {
            throw new InputException(partial + ": holds an interrupted run; pass --resume to continue it or"
                    + " --overwrite to start over");
        }
    }

    /** Runs every layer; returns how many were replayed from an interrupted run. */
    private int quantize(
            ModelConfig cfg,
            Qwen2Model model,
            Checkpoint src,
            ShardPlan plan,
            CheckpointWriter writer,
            Progress state,
            Path partial,
            List<int[]> samples) {
        int hidden = cfg.hiddenSize();
        int width = opts.seqlen() * hidden;
        long budget = opts.maxMemoryBytes() / 2;
        if (!state.baseWritten) {
            for (String name : nonLayerTensors(cfg)) {
                writer.write(name, src.tensor(name));
            }
            writer.sync();
            state.baseWritten = true;
            state.save(partial.resolve(PROGRESS));
        }
        ActivationStore x = ActivationStore.create(samples.size(), width, budget, partial.resolve("spill"));
        if (x.spilled()) {
            progress.info("calibration activations (" + ActivationStore.bytes(samples.size(), width) / (1 << 20)
                    + " MiB per buffer) exceed --max-memory: spilling to " + partial.resolve("spill"));
        }
        for (int i = 0; i < samples.size(); i++) {
            if (samples.get(i).length != opts.seqlen()) {
                throw new IllegalArgumentException("calibration sample " + i + " has " + samples.get(i).length
                        + " tokens, expected " + opts.seqlen());
            }
            x.set(i, model.embed(samples.get(i)));
        }
        int resumed = 0;
        try {
            for (int l = 0; l < cfg.numLayers(); l++) {
                long t0 = System.nanoTime();
                DecoderLayer.Weights source = model.layer(l).weights();
                LayerContext ctx = new LayerContext(
                        cfg,
                        l,
                        source,
                        x,
                        opts.seqlen(),
                        opts.batchSequences(),
                        kernels,
                        progress,
                        budget,
                        partial.resolve("spill"));
                Map<String, QuantizedLinear> linears;
                boolean fresh = l >= state.layersDone;
                if (fresh) {
                    LayerResult r = method.quantize(ctx);
                    linears = r.linears();
                    writeLayer(cfg, l, src, writer, linears);
                    state.report.addAll(r.report());
                } else {
                    linears = readBack(cfg, l, partial, plan);
                    resumed++;
                }
                DecoderLayer.Weights quantized = source;
                for (Map.Entry<String, QuantizedLinear> e : new TreeMap<>(linears).entrySet()) {
                    QuantizedLinear q = e.getValue();
                    quantized =
                            quantized.with(e.getKey(), new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
                }
                ctx.working("propagate");
                ActivationStore next = ctx.outputs(quantized);
                x.close();
                x = next;
                if (fresh) {
                    writer.sync();
                    state.layersDone = l + 1;
                    state.save(partial.resolve(PROGRESS));
                }
                progress.layerDone(l, cfg.numLayers(), (System.nanoTime() - t0) / 1e9);
            }
        } finally {
            x.close();
        }
        return resumed;
    }

    private void writeLayer(
            ModelConfig cfg, int l, Checkpoint src, CheckpointWriter writer, Map<String, QuantizedLinear> linears) {
        for (String rel : cfg.arch().linears()) {
            QuantizedLinear q = linears.get(rel);
            if (q == null) {
                throw new IllegalStateException(method.name() + " returned no weights for layer " + l + " " + rel);
            }
            String prefix = cfg.arch().module(l, rel);
            String biasName = prefix + ".bias";
            float[] bias = src.contains(biasName) ? src.tensor(biasName).toFloatArray() : null;
            GptqFormat.write(writer, prefix, GptqFormat.pack(prefix, q), bias);
        }
        String p = cfg.arch().layerPrefix() + l + ".";
        for (String norm : List.of("input_layernorm.weight", "post_attention_layernorm.weight")) {
            writer.write(p + norm, src.tensor(p + norm));
        }
    }

    private Map<String, QuantizedLinear> readBack(ModelConfig cfg, int l, Path partial, ShardPlan plan) {
        Map<String, QuantizedLinear> out = new LinkedHashMap<>();
        Map<String, SafetensorsFile> open = new LinkedHashMap<>();
        try {
            for (String rel : cfg.arch().linears()) {
                String prefix = cfg.arch().module(l, rel);
                long[] nk = GptqFormat.quantizedLinears(cfg).get(prefix);
                out.put(
                        rel,
                        GptqFormat.read(
                                name -> open.computeIfAbsent(
                                                plan.fileOf(name),
                                                f -> SafetensorsFile.open(partial.resolve("." + f + ".partial")))
                                        .tensor(name),
                                prefix,
                                (int) nk[0],
                                (int) nk[1],
                                opts.groupSize()));
            }
        } finally {
            open.values().forEach(SafetensorsFile::close);
        }
        return out;
    }

    private static List<String> nonLayerTensors(ModelConfig cfg) {
        return cfg.expectedShapes().keySet().stream()
                .filter(n -> !n.startsWith(cfg.arch().layerPrefix()))
                .toList();
    }

    private Map<String, String> finishRelease(
            ModelConfig cfg,
            CheckpointWriter writer,
            Progress state,
            Path partial,
            Path out,
            Map<String, String> inputHashes,
            Map<String, Object> calibration) {
        Map<String, String> files = new TreeMap<>(writer.finish());
        try {
            deleteTree(partial.resolve("spill"));
            Map<String, Object> config =
                    Json.parseObject(Files.readString(opts.model().resolve("config.json"), StandardCharsets.UTF_8));
            Map<String, Object> qc = opts.format()
                    .quantizationConfig(opts.groupSize(), opts.quantizationConfig(), method.name(), opts.m2qVersion());
            config.put("quantization_config", qc);
            files.put("config.json", writeText(partial.resolve("config.json"), Json.writePretty(config)));
            String qcFile = opts.format().configFile();
            files.put(qcFile, writeText(partial.resolve(qcFile), Json.writePretty(qc)));
            for (String name : COPIED) {
                Path from = opts.model().resolve(name);
                if (Files.isRegularFile(from)) {
                    Files.copy(from, partial.resolve(name), StandardCopyOption.REPLACE_EXISTING);
                    files.put(name, Sha256.ofFile(partial.resolve(name)));
                }
            }
            StringBuilder report = new StringBuilder();
            for (Map<String, Object> row : state.report) {
                report.append(Json.write(row)).append('\n');
            }
            files.put("m2q-report.jsonl", writeText(partial.resolve("m2q-report.jsonl"), report.toString()));
            Map<String, Object> manifest = new LinkedHashMap<>();
            manifest.put("m2q_version", opts.m2qVersion());
            manifest.put("format", opts.format().id());
            manifest.put("format_version", 1);
            manifest.put("method", method.name());
            manifest.put("command_line", opts.commandLine());
            manifest.put("input", Map.of("model", opts.model().toString(), "sha256", inputHashes));
            manifest.put("calibration", calibration);
            manifest.put("seed", opts.seed());
            manifest.put("kernels", kernelsFingerprint(kernels));
            manifest.put("files", new TreeMap<>(files));
            manifest.put("tensors", Manifest.tensorHashes(partial));
            writeText(partial.resolve(Manifest.FILE), Json.writePretty(manifest));
            Files.delete(partial.resolve(PROGRESS));
            replace(partial, out);
        } catch (IOException e) {
            throw new UncheckedIOException(partial + ": cannot complete the release: " + e.getMessage(), e);
        }
        return files;
    }

    /** Moves the finished partial directory to {@code out}, replacing an older release only now. */
    private static void replace(Path partial, Path out) throws IOException {
        if (Files.exists(out)) {
            Path old = out.resolveSibling(out.getFileName() + ".m2q-old");
            deleteTree(old);
            Files.move(out, old);
            Files.move(partial, out);
            deleteTree(old);
        } else {
            Files.move(partial, out);
        }
    }

    private static String writeText(Path file, String text) throws IOException {
        Path tmp = file.resolveSibling("." + file.getFileName() + ".tmp");
        Files.writeString(tmp, text, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return Sha256.ofFile(file);
    }

    private Map<String, String> inputHashes(Checkpoint src) {
        Map<String, String> h = new TreeMap<>();
        for (Path f : src.files()) {
            h.put(f.getFileName().toString(), Sha256.ofFile(f));
        }
        return h;
    }

    private Map<String, Object> fingerprint(Map<String, String> inputHashes, Map<String, Object> calibration) {
        Map<String, Object> f = new TreeMap<>();
        f.put("method", method.name());
        f.put("input_sha256", inputHashes);
        f.put("calibration", calibration);
        f.put("group_size", opts.groupSize());
        f.put("nsamples", opts.nsamples());
        f.put("seqlen", opts.seqlen());
        f.put("seed", opts.seed());
        f.put("max_shard_bytes", opts.maxShardBytes());
        f.put("batch_sequences", opts.batchSequences());
        f.put("quantization_config", new TreeMap<>(opts.quantizationConfig()));
        f.put("format", opts.format().id());
        f.put("kernels", kernelsFingerprint(kernels));
        return f;
    }

    /**
     * Which results the kernels reproduce, for the manifest and for --resume, which replays the finished layers and
     * needs bit-identical activations: the Java kernels agree with each other bit for bit (the Kernels contract), so
     * a run may resume on either; another backend (CUDA) reproduces only its own results, named by its name.
     */
    static String kernelsFingerprint(Kernels k) {
        return k instanceof VectorKernels || k instanceof ScalarKernels ? "deterministic-java" : k.name();
    }

    static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot delete: " + e.getMessage(), e);
        }
    }

    /** progress.json: what an interrupted run had finished, and the fingerprint of its inputs and options. */
    private static final class Progress {
        final Map<String, Object> fingerprint;
        boolean baseWritten;
        int layersDone;
        final List<Map<String, Object>> report = new ArrayList<>();

        Progress(Map<String, Object> fingerprint) {
            this.fingerprint = fingerprint;
        }

        @SuppressWarnings("unchecked")
        static Progress load(Path file, Map<String, Object> expected) {
            Map<String, Object> j;
            try {
                j = Json.parseObject(Files.readString(file, StandardCharsets.UTF_8));
            } catch (IOException | IllegalArgumentException e) {
                throw new InputException(file + ": unreadable (" + e.getMessage() + "); start again without --resume");
            }
            Object recorded = j.get("fingerprint");
            if (!Json.write(expected).equals(Json.write(recorded))) {
                throw new InputException(file + ": the interrupted run used other inputs or options; rerun it with"
                        + " the same command line plus --resume, or start over with --overwrite");
            }
            Progress p = new Progress(expected);
            p.baseWritten = Boolean.TRUE.equals(j.get("base_written"));
            p.layersDone = ((Number) j.get("layers_done")).intValue();
            for (Object row : (List<Object>) j.get("report")) {
                p.report.add((Map<String, Object>) row);
            }
            return p;
        }

        Set<String> written(ModelConfig cfg) {
            Set<String> names = new HashSet<>();
            if (baseWritten) {
                names.addAll(nonLayerTensors(cfg));
            }
            Map<String, long[]> shapes = cfg.expectedShapes();
            for (int l = 0; l < layersDone; l++) {
                String p = cfg.arch().layerPrefix() + l + ".";
                for (String name : shapes.keySet()) {
                    if (name.startsWith(p)) {
                        String base = name.endsWith(".weight") ? name.substring(0, name.length() - 7) : name;
                        if (cfg.arch().linears().stream().anyMatch(r -> base.equals(p + r))) {
                            for (String suffix : List.of(".qweight", ".qzeros", ".scales", ".g_idx")) {
                                names.add(base + suffix);
                            }
                        } else {
                            names.add(name);
                        }
                    }
                }
            }
            return names;
        }

        void save(Path file) {
            Map<String, Object> j = new LinkedHashMap<>();
            j.put("fingerprint", fingerprint);
            j.put("base_written", baseWritten);
            j.put("layers_done", layersDone);
            j.put("report", report);
            try {
                writeText(file, Json.writePretty(j));
            } catch (IOException e) {
                throw new UncheckedIOException(file + ": cannot record progress: " + e.getMessage(), e);
            }
        }
    }
}
