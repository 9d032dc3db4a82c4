package dev.m2q.core.pipeline;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.Dirs;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.io.SafetensorsFile;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.io.StagedDir;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.GptqLayoutCheck;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * The layer-sequential pipeline (ALGORITHMS.md §0) writing a release in a {@link ReleaseFormat}: the GPTQ layout
 * (FORMATS.md §2) labelled as GPTQ or as AutoRound's "auto_round:auto_gptq" (§3), or compressed-tensors (§4). Propagating the calibration set through each quantized layer also calibrates its activation
 * ranges (§4 of ALGORITHMS.md, {@link RangeCalibrator}): every release records them in m2q-report.jsonl, and a
 * compressed-tensors release of an 8-bit scheme stores the static input scales and the KV-cache scales they give.
 *
 * <p>Everything is built in {@code OUT.m2q-partial/} beside the output ({@link StagedDir}: one writer at a time,
 * the old output replaced only by a complete new one) and swapped in only once the release passes the loadability
 * check {@code m2q inspect --check} runs. After each layer its tensors are synced and {@code progress.json}
 * records it; {@code --resume} reopens the partial shards, replays the finished layers from what was written
 * (dequantized, so the calibration activations are bit-identical to the interrupted run's) and continues with the
 * next layer. A fresh run that stops before finishing a layer, or on bad input, deletes its partial folder; one
 * that stops later for another reason keeps it for {@code --resume}.
 */
public final class QuantizeJob {
    /** The file in the partial folder that marks a run --resume can continue. */
    public static final String PROGRESS = "progress.json";

    private static final List<String> COPIED = List.of(
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
            "special_tokens_map.json",
            "vocab.json",
            "merges.txt",
            "added_tokens.json");

    private final QuantizeOptions opts;
    private final ReleaseFormat format;
    private final QuantScheme scheme;
    private final LayerMethod method;
    private final Kernels kernels;
    private final ProgressListener progress;
    /** The Java kernels that --verify-device recomputes each layer with; null when off. */
    private Kernels verifyOn;

    private ReleaseCheck releaseCheck = dir -> GptqLayoutCheck.checkCheckpoint(dir, List.of(1)).stream()
            .map(Object::toString)
            .toList();

    /**
     * The loadability check a finished release must pass before it replaces anything: the violations found in the
     * release folder {@code dir} (empty when it loads). The command line passes what {@code m2q inspect --check}
     * runs, at the user's {@code --tp}.
     */
    @FunctionalInterface
    public interface ReleaseCheck {
        List<String> violations(Path dir);
    }

    /** A W4A16 release in the GPTQ layout. */
    public QuantizeJob(QuantizeOptions opts, LayerMethod method, Kernels kernels, ProgressListener progress) {
        this(opts, GptqRelease.GPTQ, QuantScheme.W4A16, method, kernels, progress);
    }

    /**
     * A release of {@code scheme} in {@code format}. 8-bit activations need compressed-tensors (the GPTQ config has
     * no activation scheme); an FP8 KV cache in the GPTQ layout is calibrated and reported, but its scales are not
     * written, since engines ignore them there (the run says so).
     *
     * @throws InputException for a scheme the format cannot carry ({@link ReleaseFormat#check})
     */
    public QuantizeJob(
            QuantizeOptions opts,
            ReleaseFormat format,
            QuantScheme scheme,
            LayerMethod method,
            Kernels kernels,
            ProgressListener progress) {
        format.check(scheme, opts.bits());
        this.opts = opts;
        this.format = format;
        this.scheme = scheme;
        this.method = method;
        this.kernels = kernels;
        this.progress = progress;
    }

    /** Checks the finished release with {@code check} (default: {@link GptqLayoutCheck} at tp 1) before the swap. */
    public QuantizeJob checkedBy(ReleaseCheck check) {
        this.releaseCheck = check;
        return this;
    }

    /**
     * {@code --verify-device}: after each fresh layer, quantizes it again with {@code cpu} (the Java kernels) on the
     * same calibration inputs and stops with a {@link dev.m2q.core.CheckFailedException} when too many codes differ
     * ({@link DeviceVerify}). Nothing to do when the job's kernels are the Java ones.
     */
    public QuantizeJob verifiedOn(Kernels cpu) {
        this.verifyOn = cpu;
        return this;
    }

    /** Where an interrupted run of {@code out} keeps its work. */
    public static Path partialDir(Path out) {
        return StagedDir.partialOf(out);
    }

    /**
     * What the run wrote.
     *
     * @param violations what the release check found; when not empty nothing was replaced, {@code out} is as it was
     *     and the release as written stays in {@link #partialDir} for inspection
     */
    public record Summary(
            Path out, Map<String, String> files, List<ReportLine> report, int resumedLayers, List<String> violations) {}

    /**
     * Quantizes the model over {@code samples} (each exactly seqlen token ids) and writes the release.
     *
     * @param calibration a description of the calibration set for the manifest (files, hash, tokens)
     */
    public Summary run(List<int[]> samples, Map<String, Object> calibration) {
        Path out = opts.out().toAbsolutePath().normalize();
        PathGuard.check(PathGuard.staged("--out", out), PathGuard.of("--model", opts.model()));
        checkOutput(out, opts.overwrite(), opts.resume());
        ModelConfig cfg = ModelConfig.load(opts.model());
        format.warning(scheme).ifPresent(progress::info);
        if (scheme.staticActivations()) {
            progress.info("note: static input scales (input_scale) are consumed by vLLM's W8A8 kernels; its W4A8"
                    + " kernels quantize activations per token at run time and ignore them");
        }
        // Locked before the long reads (hashing the weights): a second run on the same output stops at once.
        StagedDir staged = StagedDir.open(out, opts.overwrite(), opts.resume(), PROGRESS);
        Path partial = staged.dir();
        Progress state = null;
        CheckpointWriter writer = null;
        try (Qwen2Model model = Qwen2Model.load(opts.model(), kernels);
                Checkpoint src = Checkpoint.open(opts.model())) {
            Map<String, String> inputHashes = inputHashes(src);
            List<TensorSpec> specs = format.plan(cfg, src::tensor, opts.groupSize(), scheme, opts.bits());
            ShardPlan plan = ShardPlan.of(specs, opts.maxShardBytes());
            Fingerprint fingerprint = fingerprint(inputHashes, calibration);
            if (opts.resume()) {
                state = Progress.load(partial.resolve(PROGRESS), fingerprint);
                if (state.layersDone > cfg.numLayers()) {
                    throw new InputException(partial.resolve(PROGRESS) + ": records " + state.layersDone
                            + " finished layers, the model has " + cfg.numLayers() + "; start over with"
                            + " --overwrite instead of --resume");
                }
                writer = CheckpointWriter.resume(partial, plan, CheckpointWriter.PT_METADATA, state.written(cfg, plan));
                progress.info("resuming " + partial + " after layer " + (state.layersDone - 1));
            } else {
                staged.requireSpace(plan.totalBytes(), "the release's tensors");
                state = new Progress(fingerprint);
                writer = CheckpointWriter.create(partial, plan, CheckpointWriter.PT_METADATA);
            }
            int resumed = quantize(cfg, model, src, plan, writer, state, partial, samples);
            Finished f = finishRelease(cfg, writer, state, staged, inputHashes, calibration);
            return new Summary(out, f.files(), state.report, resumed, f.violations());
        } catch (RuntimeException | Error e) {
            if (writer != null) {
                writer.detach();
            }
            boolean hasProgress = Files.isRegularFile(partial.resolve(PROGRESS));
            // What a --resume run was given is never deleted; a fresh run keeps only finished layers.
            boolean resumable = hasProgress
                    && !StagedDir.isBadInput(e)
                    && (opts.resume() || (state != null && state.layersDone > 0));
            throw staged.failed(
                    e,
                    opts.resume() || resumable,
                    resumable
                            ? "the finished layers are kept in " + partial + ": rerun with the same options plus"
                                    + " --resume to continue, or with --overwrite to start over"
                            : null,
                    progress::info);
        }
    }

    /**
     * Refuses, before any work, an existing output without --overwrite, a --resume with nothing to resume, and an
     * interrupted run that would be silently discarded. Changes nothing on disk.
     */
    public static void checkOutput(Path out, boolean overwrite, boolean resume) {
        StagedDir.check(out, overwrite, resume, PROGRESS);
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
        // With the BF16 stream too, four buffers (each stream's input and output) share the inputs' half.
        boolean twoStreams = method.needsReferenceStream();
        if (twoStreams) {
            budget /= 2;
        }
        ActivationStore x = ActivationStore.create(samples.size(), width, budget, partial.resolve("spill"));
        ActivationStore xRef =
                twoStreams ? ActivationStore.create(samples.size(), width, budget, partial.resolve("spill")) : null;
        if (x.spilled()) {
            progress.info("calibration activations (" + ActivationStore.bytes(samples.size(), width) / (1 << 20)
                    + " MiB per buffer" + (twoStreams ? ", two streams" : "") + ") exceed --max-memory: spilling to "
                    + partial.resolve("spill"));
        }
        for (int i = 0; i < samples.size(); i++) {
            if (samples.get(i).length != opts.seqlen()) {
                throw new IllegalArgumentException("calibration sample " + i + " has " + samples.get(i).length
                        + " tokens, expected " + opts.seqlen());
            }
            float[] e = model.embed(samples.get(i));
            x.set(i, e);
            if (xRef != null) {
                xRef.set(i, e.clone());
            }
        }
        int resumed = 0;
        boolean verify = verifyOn != null && !kernelsFingerprint(kernels).equals(JAVA_KERNELS);
        if (verifyOn != null && !verify) {
            progress.info("verify-device: the run is on the Java kernels already; nothing to verify");
        }
        try {
            for (int l = 0; l < cfg.numLayers(); l++) {
                long t0 = System.nanoTime();
                DecoderLayer.Weights source = model.layer(l).weights();
                // The BF16 stream: Y_ℓ = the BF16 layer on X_ℓ, the target of this layer and the next one's X.
                ActivationStore yRef = null;
                if (xRef != null) {
                    try (LayerContext refCtx = context(cfg, l, source, xRef, kernels, budget, partial, 0)) {
                        refCtx.working("bf16 stream");
                        yRef = refCtx.outputs(source);
                    }
                    xRef.close();
                    xRef = yRef;
                }
                try (LayerContext ctx =
                        context(cfg, l, source, x, kernels, budget, partial, method.residentBytes(cfg))) {
                    ctx.withReferenceTargets(yRef);
                    Map<String, QuantizedLinear> linears;
                    boolean fresh = l >= state.layersDone;
                    List<ReportRow> methodRows = List.of();
                    DecoderLayer.Resident onBackend = null;
                    if (fresh) {
                        LayerResult r = method.quantize(ctx);
                        if (verify) {
                            ctx.working("verify-device");
                            try (LayerContext onCpu =
                                    context(cfg, l, source, x, verifyOn, budget, partial, method.residentBytes(cfg))) {
                                onCpu.withReferenceTargets(yRef);
                                progress.info(DeviceVerify.compare(
                                        l,
                                        kernels.name(),
                                        r.linears(),
                                        method.quantize(onCpu).linears()));
                            }
                        }
                        linears = asWritten(r.linears());
                        writeLayer(cfg, l, src, writer, linears);
                        methodRows = r.report();
                        // A format that writes the method's weights unchanged propagates its resident dequantized
                        // weights; compressed-tensors rounds the scales first.
                        onBackend = format.storesMethodWeights() ? r.weights() : null;
                    } else {
                        linears = readBack(cfg, l, partial, plan);
                        resumed++;
                    }
                    ctx.working("propagate");
                    try (RangeCalibrator ranges =
                            new RangeCalibrator(cfg, l, ctx.backend(), scheme.actClipPercentile() < 100)) {
                        LayerObserver obs = fresh ? ranges : LayerObserver.NONE;
                        ActivationStore next;
                        if (onBackend != null) {
                            next = ctx.outputs(onBackend, obs);
                        } else {
                            ctx.freeKept();
                            DecoderLayer.Weights quantized = source;
                            for (Map.Entry<String, QuantizedLinear> e : new TreeMap<>(linears).entrySet()) {
                                QuantizedLinear q = e.getValue();
                                quantized = quantized.with(
                                        e.getKey(), new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
                            }
                            next = ctx.outputs(quantized, obs);
                        }
                        x.close();
                        x = next;
                        if (fresh) {
                            LayerScales scales = LayerScales.of(cfg, l, ranges.ranges(), scheme);
                            format.writeScales(writer, cfg, l, scales);
                            state.report.addAll(scales.mergeInto(cfg, l, methodRows));
                            writer.sync();
                            state.layersDone = l + 1;
                            state.save(partial.resolve(PROGRESS));
                        }
                    }
                }
                progress.layerDone(l, cfg.numLayers(), (System.nanoTime() - t0) / 1e9);
            }
        } finally {
            x.close();
            if (xRef != null) {
                xRef.close();
            }
        }
        return resumed;
    }

    /** A layer's context over {@code inputs} on {@code k}, with the run's sequence length, batch and spill folder. */
    private LayerContext context(
            ModelConfig cfg,
            int l,
            DecoderLayer.Weights source,
            ActivationStore inputs,
            Kernels k,
            long budget,
            Path partial,
            long methodBytes) {
        return new LayerContext(
                cfg,
                l,
                source,
                inputs,
                opts.seqlen(),
                opts.batchSequences(),
                k,
                progress,
                budget,
                partial.resolve("spill"),
                methodBytes);
    }

    /** A fresh layer's weights as the release stores them ({@link ReleaseFormat#asWritten}). */
    private Map<String, QuantizedLinear> asWritten(Map<String, QuantizedLinear> linears) {
        Map<String, QuantizedLinear> out = new LinkedHashMap<>();
        linears.forEach((rel, q) -> out.put(rel, format.asWritten(q)));
        return out;
    }

    private void writeLayer(
            ModelConfig cfg, int l, Checkpoint src, CheckpointWriter writer, Map<String, QuantizedLinear> linears) {
        for (String rel : cfg.arch().linears()) {
            QuantizedLinear q = linears.get(rel);
            if (q == null) {
                throw new IllegalStateException(method.name() + " returned no weights for layer " + l + " " + rel);
            }
            if (!q.bits().equals(opts.bits())) {
                throw new IllegalStateException(
                        method.name() + " returned " + q.bits().value() + "-bit weights for" + " layer " + l + " " + rel
                                + " in a " + opts.bits().value() + "-bit release");
            }
            String prefix = cfg.arch().module(l, rel);
            String biasName = prefix + ".bias";
            format.writeLinear(writer, prefix, q, src.contains(biasName) ? src.tensor(biasName) : null);
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
                Function<String, TensorView> tensor = name -> open.computeIfAbsent(
                                plan.fileOf(name), f -> SafetensorsFile.open(partial.resolve("." + f + ".partial")))
                        .tensor(name);
                int n = (int) nk[0];
                int k = (int) nk[1];
                out.put(
                        rel,
                        format.read(tensor, plan.specs()::containsKey, prefix, n, k, opts.groupSize(), opts.bits()));
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

    /** The files of a finished release with their sha256, and the release check's violations (empty: swapped in). */
    private record Finished(Map<String, String> files, List<String> violations) {}

    private Finished finishRelease(
            ModelConfig cfg,
            CheckpointWriter writer,
            Progress state,
            StagedDir staged,
            Map<String, String> inputHashes,
            Map<String, Object> calibration) {
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
                opts.bits(), opts.groupSize(), scheme, opts.quantizationConfig(), method.name(), opts.m2qVersion()));
        config.put("quantization_config", qc);
        files.put("config.json", staged.writeAtomically("config.json", Json.writePretty(config)));
        format.configFile().ifPresent(f -> files.put(f, staged.writeAtomically(f, Json.writePretty(qc))));
        for (String name : COPIED) {
            Path from = opts.model().resolve(name);
            if (Files.isRegularFile(from)) {
                files.put(name, Dirs.copy(from, partial.resolve(name)));
            }
        }
        StringBuilder report = new StringBuilder();
        for (ReportLine row : state.report) {
            report.append(Json.write(row)).append('\n');
        }
        files.put("m2q-report.jsonl", staged.writeAtomically("m2q-report.jsonl", report.toString()));
        Manifest.Release manifest = new Manifest.Release(
                opts.m2qVersion(),
                format.id(),
                scheme.label(opts.bits()),
                Manifest.FORMAT_VERSION,
                method.name(),
                opts.commandLine(),
                new Manifest.Input(opts.model().toString(), inputHashes),
                calibration,
                opts.seed(),
                kernelsFingerprint(kernels),
                new TreeMap<>(files),
                Manifest.tensorHashes(partial));
        staged.writeAtomically(Manifest.FILE, Json.writePretty(manifest));
        List<String> violations = releaseCheck.violations(partial);
        try {
            Files.delete(partial.resolve(PROGRESS));
        } catch (IOException e) {
            throw new UncheckedIOException(partial.resolve(PROGRESS) + ": cannot delete: " + e.getMessage(), e);
        }
        if (violations.isEmpty()) {
            staged.commit();
        } else {
            staged.close();
        }
        return new Finished(files, violations);
    }

    private Map<String, String> inputHashes(Checkpoint src) {
        Map<String, String> h = new TreeMap<>();
        for (Path f : src.files()) {
            h.put(f.getFileName().toString(), Sha256.ofFile(f));
        }
        return h;
    }

    private Fingerprint fingerprint(Map<String, String> inputHashes, Map<String, Object> calibration) {
        return new Fingerprint(
                scheme.actClipPercentile(),
                opts.batchSequences(),
                calibration,
                gptqLabel(),
                opts.groupSize(),
                inputHashes,
                kernelsFingerprint(kernels),
                format instanceof GptqRelease ? GptqRelease.GPTQ.id() : format.id(), // the layout, as before
                opts.maxShardBytes(),
                method.name(),
                methodSettings(),
                opts.nsamples(),
                new TreeMap<>(opts.quantizationConfig()),
                scheme.label(opts.bits()),
                opts.seed(),
                opts.seqlen());
    }

    /**
     * The fingerprint's "format": the GPTQ label, and for compressed-tensors the label the CLI gives its method's
     * GPTQ output (what progress.json has always recorded, so an interrupted run of an earlier m2q still resumes).
     */
    private String gptqLabel() {
        if (format instanceof GptqRelease) {
            return format.id();
        }
        return method.name().equals("autoround") ? GptqRelease.AUTO_ROUND.id() : GptqRelease.GPTQ.id();
    }

    /**
     * The method's settings for the fingerprint, with the bits when they are not 4 (so a 4-bit run's progress.json
     * is what it always was, and a --resume with another --bits is refused).
     */
    private Map<String, Object> methodSettings() {
        Map<String, Object> m = new TreeMap<>(method.settings());
        if (opts.bits().value() != 4) {
            m.put("bits", opts.bits().value());
        }
        return m;
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
            int seqlen) {}

    /**
     * Which results the kernels reproduce, for the manifest and for --resume, which replays the finished layers and
     * needs bit-identical activations: the Java kernels agree with each other bit for bit (the Kernels contract), so
     * a run may resume on either; another backend (CUDA) reproduces only its own results, named by its name.
     */
    private static final String JAVA_KERNELS = "deterministic-java";

    static String kernelsFingerprint(Kernels k) {
        return k instanceof VectorKernels || k instanceof ScalarKernels ? JAVA_KERNELS : k.name();
    }

    /** progress.json as written: the fingerprint, what is finished, and the finished layers' report rows. */
    record ProgressFile(
            Fingerprint fingerprint,
            @JsonProperty("base_written") boolean baseWritten,
            @JsonProperty("layers_done") int layersDone,
            List<ReportLine> report) {}

    /** progress.json: what an interrupted run had finished, and the fingerprint of its inputs and options. */
    private static final class Progress {
        final Fingerprint fingerprint;
        boolean baseWritten;
        int layersDone;
        final List<ReportLine> report = new ArrayList<>();

        Progress(Fingerprint fingerprint) {
            this.fingerprint = fingerprint;
        }

        static Progress load(Path file, Fingerprint expected) {
            String text;
            try {
                text = Files.readString(file, StandardCharsets.UTF_8);
                Json.parseObject(text);
            } catch (IOException | IllegalArgumentException e) {
                throw new InputException(file + ": unreadable (" + e.getMessage() + "); start over with --overwrite"
                        + " instead of --resume");
            }
            ProgressFile j;
            try {
                j = Json.read(text, ProgressFile.class);
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
            Progress p = new Progress(expected);
            p.baseWritten = j.baseWritten();
            p.layersDone = j.layersDone();
            p.report.addAll(j.report());
            return p;
        }

        /** The planned tensors an interrupted run had written: the base ones, then every finished layer's. */
        Set<String> written(ModelConfig cfg, ShardPlan plan) {
            Set<String> names = new HashSet<>();
            if (baseWritten) {
                names.addAll(nonLayerTensors(cfg));
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

        void save(Path file) {
            AtomicFile.writeText(
                    file, Json.writePretty(new ProgressFile(fingerprint, baseWritten, layersDone, report)));
        }
    }
}
