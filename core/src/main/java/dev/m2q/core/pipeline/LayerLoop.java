package dev.m2q.core.pipeline;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.SafetensorsFile;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;

/**
 * The layer loop of {@link QuantizeJob} (ALGORITHMS.md §0, IST's llama_sequential): embed the calibration samples,
 * then per layer quantize it with the method, take the weights {@link ReleaseFormat#asWritten as written}, write
 * them, propagate the samples through the quantized layer while {@link RangeCalibrator} records its activation
 * ranges, and write the format's {@link LayerScales}. A layer an interrupted run finished is read back from the
 * partial shards instead and only propagated, so the activations are bit-identical to the interrupted run's.
 */
final class LayerLoop {
    private final QuantizeOptions opts;
    private final ReleaseFormat format;
    private final QuantScheme scheme;
    private final LayerMethod method;
    private final Kernels kernels;
    /** The Java kernels --verify-device recomputes each layer with; null when off. */
    private final Kernels verifyOn;

    private final ProgressListener progress;
    private final ModelConfig cfg;
    private final Qwen2Model model;
    private final Checkpoint src;
    private final ShardPlan plan;
    private final CheckpointWriter writer;
    /** The partial folder: the shards, progress.json and the spill folder. */
    private final Path partial;

    private ResumeState state;

    LayerLoop(
            QuantizeOptions opts,
            ReleaseFormat format,
            QuantScheme scheme,
            LayerMethod method,
            Kernels kernels,
            Kernels verifyOn,
            ProgressListener progress,
            ModelConfig cfg,
            Qwen2Model model,
            Checkpoint src,
            CheckpointWriter writer,
            Path partial,
            ResumeState state) {
        this.opts = opts;
        this.format = format;
        this.scheme = scheme;
        this.method = method;
        this.kernels = kernels;
        this.verifyOn = verifyOn;
        this.progress = progress;
        this.cfg = cfg;
        this.model = model;
        this.src = src;
        this.plan = writer.plan();
        this.writer = writer;
        this.partial = partial;
        this.state = state;
    }

    /** What is finished so far (the last saved state). */
    ResumeState state() {
        return state;
    }

    /**
     * Runs every layer over {@code samples} (each exactly seqlen token ids), saving the state after the base tensors
     * and after each fresh layer; returns how many layers were replayed from an interrupted run.
     */
    int run(List<int[]> samples) {
        int hidden = cfg.hiddenSize();
        int width = opts.seqlen() * hidden;
        long budget = opts.maxMemoryBytes() / 2;
        if (!state.baseWritten()) {
            for (String name : ResumeState.baseTensors(cfg)) {
                writer.write(name, src.tensor(name));
            }
            writer.sync();
            state = state.withBase();
            state.save(partial.resolve(ResumeState.FILE));
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
        boolean verify =
                verifyOn != null && !QuantizeJob.kernelsFingerprint(kernels).equals(QuantizeJob.JAVA_KERNELS);
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
                    try (LayerContext refCtx = context(l, source, xRef, kernels, budget, 0)) {
                        refCtx.working("bf16 stream");
                        yRef = refCtx.outputs(source);
                    }
                    xRef.close();
                    xRef = yRef;
                }
                try (LayerContext ctx = context(l, source, x, kernels, budget, method.residentBytes(cfg));
                        RangeCalibrator ranges =
                                new RangeCalibrator(cfg, l, ctx.backend(), scheme.actClipPercentile() < 100)) {
                    ctx.withReferenceTargets(yRef);
                    Map<String, QuantizedLinear> linears;
                    boolean fresh = l >= state.layersDone();
                    List<ReportRow> methodRows = List.of();
                    DecoderLayer.Resident onBackend = null;
                    // Where the outputs pass may run on the method's own weights, the ranges are measured on every
                    // pass, so that pass may start where a method's pass left the layer (LayerContext#propagate).
                    boolean everyPass = fresh && format.storesMethodWeights();
                    if (everyPass) {
                        ctx.observeEveryPass(ranges);
                    }
                    if (fresh) {
                        LayerResult r = method.quantize(ctx);
                        if (verify) {
                            ctx.working("verify-device");
                            try (LayerContext onCpu =
                                    context(l, source, x, verifyOn, budget, method.residentBytes(cfg))) {
                                onCpu.withReferenceTargets(yRef);
                                progress.info(DeviceVerify.compare(
                                        l,
                                        kernels.name(),
                                        r.linears(),
                                        method.quantize(onCpu).linears()));
                            }
                        }
                        linears = asWritten(r.linears());
                        writeLayer(l, linears);
                        methodRows = r.report();
                        // A format that writes the method's weights unchanged propagates its resident dequantized
                        // weights; compressed-tensors rounds the scales first.
                        onBackend = format.storesMethodWeights() ? r.weights() : null;
                    } else {
                        linears = readBack(l);
                        resumed++;
                    }
                    ctx.working("propagate");
                    ActivationStore next;
                    if (onBackend != null) {
                        next = ctx.propagate(onBackend);
                    } else {
                        ctx.freeKept();
                        DecoderLayer.Weights quantized = source;
                        for (Map.Entry<String, QuantizedLinear> e : new TreeMap<>(linears).entrySet()) {
                            QuantizedLinear q = e.getValue();
                            quantized = quantized.with(
                                    e.getKey(), new Matrix.F32(q.dequantize(), q.outFeatures(), q.inFeatures()));
                        }
                        next = ctx.outputs(quantized, fresh && !everyPass ? ranges : LayerObserver.NONE);
                    }
                    x.close();
                    x = next;
                    if (fresh) {
                        LayerScales scales = LayerScales.of(cfg, l, ranges.ranges(), scheme);
                        format.writeScales(writer, cfg, l, scales);
                        writer.sync();
                        state = state.withLayer(scales.mergeInto(cfg, l, methodRows));
                        state.save(partial.resolve(ResumeState.FILE));
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
            int l, DecoderLayer.Weights source, ActivationStore inputs, Kernels k, long budget, long methodBytes) {
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

    /** Writes a fresh layer's linears in the format and copies its norms. */
    private void writeLayer(int l, Map<String, QuantizedLinear> linears) {
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

    /** A finished layer's linears read back from the partial shards, as the release stores them. */
    private Map<String, QuantizedLinear> readBack(int l) {
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
}
