package dev.m2q.core.pipeline;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Proj;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What a {@link LayerMethod} sees of one layer: its source (bf16) weights, and a way to run the layer, with any
 * weights, over every calibration sample — the inputs being the outputs of the already-quantized earlier
 * layers, as ALGORITHMS.md §0 requires.
 *
 * <p>The passes run on the kernels' {@link Backend} ({@link #backend()}): the source weights are made resident
 * once ({@link #resident()}), each calibration batch's inputs are written to the backend once per layer and kept
 * there across the method's passes when they fit (otherwise written again for each pass), and only what a method
 * or an observer asks for crosses back. The layer's outputs cross once, in the outputs pass that fills the next
 * layer's store. {@link #close()}, at the layer's end, frees everything resident.
 *
 * <p>Residency and batch size: on a backend that reports {@link Backend#freeBytes()} (a device), the batch is the
 * configured one or fewer sequences, so that the weights, the method's own working set ({@link
 * LayerMethod#residentBytes}) and one batch's intermediate tensors fit; the inputs stay resident when they fit
 * beside those and one sequence. On the heap (the Java backend, {@link Long#MAX_VALUE}) the batch is the configured
 * one, as before, and the resident copy of the inputs shares the inputs' half of --max-memory with the store: it is
 * kept when the store's heap part and the copy fit that half together.
 *
 * <p>Midpoints ({@link #run(DecoderLayer.Resident, LayerObserver, DecoderLayer.Midpoint)}): a method whose passes
 * change the layer front to back (GPTQ's true-sequential groups) lets each pass start where the previous one left
 * the layer, from the attention's output or the residual after it, kept on the backend between the passes. One
 * midpoint is kept at a time, one batch of the next beside it while a pass replaces it; it is kept only when it fits
 * beside the inputs (on the heap: with the store's heap part and the resident copy in the inputs' half; on a device:
 * beside the resident inputs and one batch, in the room left by the weights and the method's working set), and freed
 * by the next plain pass or the layer's end. Nothing crosses for it. The pipeline's outputs pass on the method's own
 * weights ({@link #propagate}) starts from the residual too, when the activation ranges were measured on every pass
 * ({@link #observeEveryPass}).
 */
public final class LayerContext implements AutoCloseable {
    private final ModelConfig config;
    private final int layer;
    private final DecoderLayer.Weights source;
    private final ActivationStore inputs;
    private final int seqLen;
    private final int batch;
    private final Kernels kernels;
    private final ProgressListener progress;
    private final long storeBudget;
    private final Path spillDir;
    private final long methodBytes;
    private final DecoderLayer forward;
    private final Backend backend;

    /** The source's norms and biases, resident once (null until needed). */
    private Buf inputNorm, postNorm, qBias, kBias, vBias;

    private boolean vectorsUploaded;
    /** The source's linears made resident so far, by module. */
    private final Map<String, Backend.Weight> sourceLinears = new HashMap<>();
    /** Each batch's inputs while they stay resident (entries null until the first pass writes them). */
    private Buf[] residentInputs;

    /** The midpoint a method's pass left resident for its next pass (null when none). */
    private Kept midpoint;

    /** Shown every pass of the layer ({@link #observeEveryPass}), or null. */
    private RangeCalibrator everyPass;

    /** Passes run so far. */
    private int passes;

    /** The BF16 layer's outputs on the BF16 stream, when the method asked for that stream (owned by the job). */
    private ActivationStore referenceTargets;

    private final List<AutoCloseable> kept = new ArrayList<>();
    private Plan plan;
    private boolean closed;

    LayerContext(
            ModelConfig config,
            int layer,
            DecoderLayer.Weights source,
            ActivationStore inputs,
            int seqLen,
            int batch,
            Kernels kernels,
            ProgressListener progress,
            long storeBudget,
            Path spillDir,
            long methodBytes) {
        this.config = config;
        this.layer = layer;
        this.source = source;
        this.inputs = inputs;
        this.seqLen = seqLen;
        this.batch = batch;
        this.kernels = kernels;
        this.progress = progress;
        this.storeBudget = storeBudget;
        this.spillDir = spillDir;
        this.methodBytes = methodBytes;
        this.forward = new DecoderLayer(config, layer, source, kernels);
        this.backend = forward.backend();
        // Sized before this layer makes anything resident (the previous layer's context has freed its own).
        this.plan = plan();
    }

    public ModelConfig config() {
        return config;
    }

    public int layer() {
        return layer;
    }

    /** The layer's weights as read from the source checkpoint. */
    public DecoderLayer.Weights source() {
        return source;
    }

    public Kernels kernels() {
        return kernels;
    }

    /** The backend the layer passes run on: the kernels' {@link Kernels#backend()}, one instance per layer. */
    public Backend backend() {
        return backend;
    }

    /**
     * Y_ℓ = the BF16 layer's outputs on the BF16 model's own hidden states X_ℓ, sample by sample, when the method
     * {@link LayerMethod#needsReferenceStream() needs the reference stream}; null otherwise. The pipeline owns the
     * store (it becomes the next layer's BF16 input): do not close it.
     */
    public ActivationStore referenceTargets() {
        return referenceTargets;
    }

    LayerContext withReferenceTargets(ActivationStore targets) {
        this.referenceTargets = targets;
        return this;
    }

    /** Calibration samples entering this layer. */
    public int samples() {
        return inputs.samples();
    }

    public int seqLen() {
        return seqLen;
    }

    /**
     * Calibration sequences the pipeline runs through the layer at once: the configured batch, sized from the heap
     * so one batch's intermediate tensors fit, or fewer where the backend's free memory is smaller (see the class
     * javadoc); a method that keeps more per token (a training trace) should not exceed it.
     */
    public int batchSequences() {
        return plan().batch();
    }

    /** Whether the calibration inputs stay on the backend across this layer's passes (written once). */
    public boolean inputsResident() {
        return plan().residentInputs();
    }

    /** Sample {@code i}'s hidden states entering the layer: [seqLen, hidden] fp32 (a copy). */
    public float[] input(int i) {
        return inputs.get(i);
    }

    /** Reports which module the method works on now. */
    public void working(String module) {
        progress.module(layer, config.numLayers(), module);
    }

    /** A line for the log (a per-layer summary, a fallback taken). */
    public void info(String line) {
        progress.info(line);
    }

    /**
     * The source weights resident on {@link #backend()}: each linear, norm and bias crosses once per layer, on
     * first use. Owned by this context (freed by {@link #close()}); variants made with {@link
     * DecoderLayer.Resident#with} share its members.
     */
    public DecoderLayer.Resident resident() {
        uploadVectors();
        Map<String, Backend.Weight> linears = new HashMap<>();
        for (Proj p : Proj.values()) {
            linears.put(p.path(), sourceLinear(p.path()));
        }
        return resident(linears);
    }

    /**
     * Hands {@code resource} (a weight or buffer a method made on {@link #backend()}, such as a quantized linear's
     * dequantized weight) to this context, which frees it at the layer's end; returns it.
     */
    public <T extends AutoCloseable> T keep(T resource) {
        kept.add(resource);
        return resource;
    }

    /**
     * Runs the layer with the resident weights {@code weights} over every calibration sample, in batches of whole
     * sequences, and shows {@code observer} each batch's intermediate tensors on the backend (linear inputs, keys
     * and values). Nothing crosses but the inputs (once per layer when they stay resident) and what the observer
     * asks for.
     */
    public void run(DecoderLayer.Resident weights, LayerObserver observer) {
        forEachBatch(weights, observer, null, null, false);
    }

    /**
     * {@link #run(DecoderLayer.Resident, LayerObserver)} for an observer that needs nothing before midpoint {@code
     * upTo} (the midpoint before the linear inputs it takes, {@link DecoderLayer.Midpoint#before}; null: it needs
     * everything, a plain pass). The pass starts at the midpoint an earlier such pass of this layer kept, when its
     * weights up to there are the same objects ({@link DecoderLayer.Midpoint#sameWeights}), and keeps the {@code
     * upTo} midpoint it computes for the next pass when it fits beside the inputs (see the class comment). The bits
     * the observer sees are those of a pass from the input. GPTQ's true-sequential passes so skip the attention the
     * previous pass already ran with the same quantized q, k, v (and o).
     */
    public void run(DecoderLayer.Resident weights, LayerObserver observer, DecoderLayer.Midpoint upTo) {
        forEachBatch(weights, observer, null, upTo, true);
    }

    /**
     * Runs the layer with {@code weights} over every calibration sample, in batches of whole sequences, and shows
     * {@code observer} each batch's intermediate tensors (linear inputs, keys and values). The linears that differ
     * from the source's cross for this call.
     */
    public void run(DecoderLayer.Weights weights, LayerObserver observer) {
        List<AutoCloseable> temps = new ArrayList<>();
        try {
            forEachBatch(residentOf(weights, temps), observer, null, null, false);
        } finally {
            closeAll(temps);
        }
    }

    /**
     * Shows {@code ranges} every pass of this layer from now on, the method's and the outputs pass, beside the pass's
     * own observer; each pass starts a new measurement of what it shows ({@link RangeCalibrator#newPass}), so the
     * ranges are those of the last pass that showed each tensor. Called before any pass.
     */
    void observeEveryPass(RangeCalibrator ranges) {
        if (passes > 0) {
            throw new IllegalStateException("layer " + layer + ": observeEveryPass after " + passes + " passes");
        }
        everyPass = ranges;
    }

    /**
     * The pipeline's outputs pass on the method's resident weights: {@link #outputs(DecoderLayer.Resident,
     * LayerObserver)} with nothing else to observe. With an observer of {@link #observeEveryPass} it starts from the
     * residual a method's pass kept with the same weights up to there (GPTQ's gate/up pass): that observer saw the
     * tensors before it in the passes that computed them with those weights.
     */
    ActivationStore propagate(DecoderLayer.Resident weights) {
        return outputs(weights, LayerObserver.NONE, everyPass != null ? DecoderLayer.Midpoint.RESIDUAL : null);
    }

    /** Receives each batch's layer outputs: {@code out} [count·seqLen, hidden] for samples first..first+count. */
    @FunctionalInterface
    public interface OutputSink {
        void accept(int first, int count, float[] out);
    }

    /** Runs the layer with {@code weights} over every calibration sample and hands each batch's outputs to sink. */
    public void forEachOutput(DecoderLayer.Weights weights, OutputSink sink) {
        List<AutoCloseable> temps = new ArrayList<>();
        try {
            forEachBatch(
                    residentOf(weights, temps),
                    LayerObserver.NONE,
                    (first, count, out) -> sink.accept(first, count, backend.take(out)),
                    null,
                    false);
        } finally {
            closeAll(temps);
        }
    }

    /**
     * The layer's outputs with {@code weights} for every calibration sample, [seqLen, hidden] fp32 each, in a store
     * under the same memory budget as the pipeline's activations (spilled to disk beyond it). The caller closes it.
     */
    public ActivationStore outputs(DecoderLayer.Weights weights) {
        return outputs(weights, LayerObserver.NONE);
    }

    /** {@link #outputs(DecoderLayer.Weights)}, showing the layer's inputs to {@code observer} on the way. */
    public ActivationStore outputs(DecoderLayer.Weights weights, LayerObserver observer) {
        List<AutoCloseable> temps = new ArrayList<>();
        try {
            return outputs(residentOf(weights, temps), observer);
        } finally {
            closeAll(temps);
        }
    }

    /**
     * The outputs pass on resident weights: the layer's outputs for every calibration sample, each batch's taken
     * off the backend once, into a store for the next layer (under the pipeline's memory budget, spilled beyond
     * it). The caller closes the store.
     */
    public ActivationStore outputs(DecoderLayer.Resident weights, LayerObserver observer) {
        return outputs(weights, observer, null);
    }

    private ActivationStore outputs(DecoderLayer.Resident weights, LayerObserver observer, DecoderLayer.Midpoint upTo) {
        int width = inputs.width();
        ActivationStore out = ActivationStore.create(inputs.samples(), width, storeBudget, spillDir);
        try {
            forEachBatch(
                    weights,
                    observer,
                    (first, count, buf) -> {
                        float[] rows = backend.take(buf);
                        for (int s = 0; s < count; s++) {
                            float[] row = new float[width];
                            System.arraycopy(rows, s * width, row, 0, width);
                            out.set(first + s, row);
                        }
                    },
                    upTo,
                    false);
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** Receives a batch's output buffer, which the caller closes afterwards (taking it is fine). */
    private interface BufSink {
        void accept(int first, int count, Buf out);
    }

    /**
     * One pass over every batch; with {@code upTo}, from the kept midpoint that allows it, and with {@code keep}
     * keeping the {@code upTo} midpoint it computes (a method's pass, whose next pass may use it).
     */
    private void forEachBatch(
            DecoderLayer.Resident weights,
            LayerObserver observer,
            BufSink sink,
            DecoderLayer.Midpoint upTo,
            boolean keep) {
        Plan p = plan();
        int width = inputs.width();
        int samples = inputs.samples();
        int batches = (samples + p.batch() - 1) / p.batch();
        if (p.residentInputs() && residentInputs == null) {
            residentInputs = new Buf[batches];
        }
        Kept start = null;
        if (upTo == null) {
            dropMidpoint(); // a pass that needs everything: the midpoints' passes are over
        } else if (midpoint != null
                && midpoint.at().compareTo(upTo) <= 0
                && midpoint.at().sameWeights(midpoint.weights(), weights)) {
            start = midpoint;
        } else {
            dropMidpoint();
        }
        Buf[] kept = keep && upTo != null && p.midpoints() && (start == null || start.at() != upTo)
                ? new Buf[batches]
                : null;
        passes++;
        if (everyPass != null) {
            everyPass.newPass();
        }
        boolean finished = false;
        try {
            for (int b = 0, first = 0; first < samples; b++, first += p.batch()) {
                int count = Math.min(p.batch(), samples - first);
                boolean needsInput = start == null || start.at() != DecoderLayer.Midpoint.RESIDUAL;
                Buf x = null;
                if (p.residentInputs()) {
                    if (residentInputs[b] == null) {
                        residentInputs[b] = upload(first, count, width);
                    }
                    x = residentInputs[b];
                } else if (needsInput) {
                    x = upload(first, count, width);
                }
                LayerObserver obs = shown(observer, upTo, kept, b);
                try {
                    Buf out = start == null
                            ? forward.forward(weights, x, count, seqLen, 0, null, obs)
                            : forward.forwardFrom(
                                    weights,
                                    x,
                                    count,
                                    seqLen,
                                    new DecoderLayer.Start(start.at(), start.batches()[b]),
                                    obs);
                    if (out != null) {
                        try {
                            if (sink != null) {
                                sink.accept(first, count, out);
                            }
                        } finally {
                            out.close();
                        }
                    }
                } finally {
                    if (!p.residentInputs() && x != null) {
                        x.close();
                    }
                }
                if (kept != null && start != null) {
                    // replaced by this pass's midpoint: its room goes to the next batch's
                    start.batches()[b].close();
                    start.batches()[b] = null;
                }
            }
            finished = true;
        } finally {
            if (kept != null) {
                boolean complete = finished && Arrays.stream(kept).allMatch(Objects::nonNull);
                if (complete) {
                    dropMidpoint();
                    midpoint = new Kept(upTo, weights, kept);
                } else {
                    // an observer that stopped before the midpoint, or a failure: nothing is kept (the start's
                    // batches may already be freed)
                    closeAll(Arrays.asList(kept));
                    dropMidpoint();
                }
            }
        }
    }

    /**
     * What batch {@code b}'s pass shows: {@code observer}'s events, shown to the {@link #observeEveryPass} observer too
     * when there is one, and with {@code kept} midpoint {@code at}'s values copied into {@code kept[b]} when the pass
     * computes them (a copy on the backend: no crossing). Enough when {@code observer} has enough.
     */
    private LayerObserver shown(LayerObserver observer, DecoderLayer.Midpoint at, Buf[] kept, int b) {
        RangeCalibrator ranges = everyPass;
        if (ranges == null && kept == null) {
            return observer;
        }
        return new LayerObserver() {
            @Override
            public void linearInput(String module, Backend backend, Buf x, int rows, int cols) {
                observer.linearInput(module, backend, x, rows, cols);
                if (ranges != null) {
                    ranges.linearInput(module, backend, x, rows, cols);
                }
            }

            @Override
            public void keysValues(Backend backend, Buf k, Buf v, int rows, int kvDim) {
                observer.keysValues(backend, k, v, rows, kvDim);
                if (ranges != null) {
                    ranges.keysValues(backend, k, v, rows, kvDim);
                }
            }

            @Override
            public void midpoint(DecoderLayer.Midpoint m, Backend backend, Buf values, int rows, int cols) {
                observer.midpoint(m, backend, values, rows, cols);
                if (kept != null && m == at && kept[b] == null) {
                    long n = (long) rows * cols;
                    Buf copy = backend.alloc(n);
                    backend.copy(values, 0, copy, 0, n);
                    kept[b] = copy;
                }
            }

            @Override
            public boolean enough() {
                return observer.enough();
            }
        };
    }

    /** Frees the kept midpoint, if any. */
    private void dropMidpoint() {
        if (midpoint != null) {
            Kept k = midpoint;
            midpoint = null;
            closeAll(Arrays.asList(k.batches()));
        }
    }

    /** A midpoint kept on the backend: batch b's values in batches[b], computed with {@code weights}. */
    private record Kept(DecoderLayer.Midpoint at, DecoderLayer.Resident weights, Buf[] batches) {}

    /** Samples first..first+count as one buffer on the backend (one crossing). */
    private Buf upload(int first, int count, int width) {
        float[] x = new float[count * width];
        for (int s = 0; s < count; s++) {
            System.arraycopy(inputs.get(first + s), 0, x, s * width, width);
        }
        return backend.wrap(x);
    }

    /**
     * {@code w} resident: the source's own members where {@code w} holds the same objects (uploaded once per layer),
     * the other linears uploaded for this call and added to {@code temps}; new norms or biases upload the whole set.
     */
    private DecoderLayer.Resident residentOf(DecoderLayer.Weights w, List<AutoCloseable> temps) {
        if (w.inputNorm() != source.inputNorm()
                || w.postNorm() != source.postNorm()
                || w.qBias() != source.qBias()
                || w.kBias() != source.kBias()
                || w.vBias() != source.vBias()) {
            DecoderLayer.Resident r = DecoderLayer.Resident.upload(backend, w);
            temps.add(r);
            return r;
        }
        uploadVectors();
        Map<String, Backend.Weight> linears = new HashMap<>();
        for (String m : config.arch().linears()) {
            Matrix mine = w.linear(m);
            if (mine == source.linear(m)) {
                linears.put(m, sourceLinear(m));
            } else {
                Backend.Weight up = backend.weight(mine);
                temps.add(up);
                linears.put(m, up);
            }
        }
        return resident(linears);
    }

    /** The resident layer of this context's norms and biases with {@code linears} (by module path). */
    private DecoderLayer.Resident resident(Map<String, Backend.Weight> linears) {
        return new DecoderLayer.Resident(
                inputNorm,
                linears.get(Proj.Q.path()),
                qBias,
                linears.get(Proj.K.path()),
                kBias,
                linears.get(Proj.V.path()),
                vBias,
                linears.get(Proj.O.path()),
                postNorm,
                linears.get(Proj.GATE.path()),
                linears.get(Proj.UP.path()),
                linears.get(Proj.DOWN.path()));
    }

    private void uploadVectors() {
        checkOpen();
        if (!vectorsUploaded) {
            inputNorm = backend.wrap(source.inputNorm().clone());
            qBias = source.qBias() == null ? null : backend.wrap(source.qBias().clone());
            kBias = source.kBias() == null ? null : backend.wrap(source.kBias().clone());
            vBias = source.vBias() == null ? null : backend.wrap(source.vBias().clone());
            postNorm = backend.wrap(source.postNorm().clone());
            vectorsUploaded = true;
        }
    }

    private Backend.Weight sourceLinear(String module) {
        checkOpen();
        return sourceLinears.computeIfAbsent(module, m -> backend.weight(source.linear(m)));
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("layer " + layer + ": the context was closed at the layer's end");
        }
    }

    /**
     * How this layer's passes run: sequences per batch, whether the inputs stay resident, and whether a midpoint
     * ({@link #run(DecoderLayer.Resident, LayerObserver, DecoderLayer.Midpoint)}) may be kept beside them.
     */
    private record Plan(int batch, boolean residentInputs, boolean midpoints) {}

    private Plan plan() {
        if (plan == null) {
            long inputBytes = ActivationStore.bytes(inputs.samples(), inputs.width());
            // one midpoint's values, and one batch's more while a pass replaces one midpoint by the next
            int batches = (inputs.samples() + batch - 1) / batch;
            long midpointBytes = inputBytes
                    / config.hiddenSize()
                    * Math.max(config.hiddenSize(), config.qDim())
                    / batches
                    * (batches + 1);
            long free = backend.freeBytes();
            if (free == Long.MAX_VALUE) {
                long storeOnHeap = inputs.spilled() ? 0 : inputBytes;
                boolean resident = storeOnHeap + inputBytes <= storeBudget;
                boolean midpoints = storeOnHeap + (resident ? inputBytes : 0) + midpointBytes <= storeBudget;
                plan = new Plan(batch, resident, midpoints);
            } else {
                long perSequence = sequenceBytes(config, seqLen);
                long room = free - weightBytes(config) - methodBytes;
                boolean resident = inputBytes + perSequence <= room;
                long left = room - (resident ? inputBytes : 0);
                int b = (int) Math.max(1, Math.min(batch, left / perSequence));
                if (b < batch) {
                    progress.info("layer " + layer + ": " + b + " sequences per batch (not " + batch + "): "
                            + backend.name() + " has " + free / (1 << 20) + " MiB free, a sequence needs "
                            + perSequence / (1 << 20) + " MiB");
                }
                plan = new Plan(b, resident, midpointBytes + (long) b * perSequence <= left);
            }
        }
        return plan;
    }

    /**
     * Backend bytes one calibration sequence takes in a forward: per token its input, the two norms' output, q, k,
     * v, the attention output, the residual, gate, up and down's output (fp32).
     */
    public static long sequenceBytes(ModelConfig cfg, int seqLen) {
        long h = cfg.hiddenSize();
        long perToken = 4 * h + 2L * cfg.qDim() + 2L * cfg.kvDim() + 2L * cfg.intermediateSize();
        return 4 * perToken * seqLen;
    }

    /**
     * Backend bytes of one layer's resident source weights, as the batch sizing counts them: the linears at their
     * source's 2 bytes per weight (bf16), the norms and biases in fp32.
     */
    public static long weightBytes(ModelConfig cfg) {
        long h = cfg.hiddenSize(), q = cfg.qDim(), kv = cfg.kvDim(), i = cfg.intermediateSize();
        return 2 * (q * h + 2 * kv * h + h * q + 3 * i * h) + 4 * (2 * h + q + 2 * kv);
    }

    /**
     * Frees now what methods handed to {@link #keep} (the pipeline's outputs pass does not use their weights: it
     * uploads the weights as the release stores them), so that the pass has their room.
     */
    void freeKept() {
        dropMidpoint();
        List<AutoCloseable> k = new ArrayList<>(kept);
        kept.clear();
        closeAll(k);
    }

    /** Frees everything resident for this layer: inputs, weights, and what methods handed to {@link #keep}. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        dropMidpoint();
        List<AutoCloseable> all = new ArrayList<>(kept);
        if (residentInputs != null) {
            all.addAll(List.of(residentInputs));
        }
        all.addAll(sourceLinears.values());
        all.addAll(Arrays.asList(inputNorm, postNorm, qBias, kBias, vBias));
        all.add(forward);
        closeAll(all);
    }

    private static void closeAll(List<? extends AutoCloseable> resources) {
        RuntimeException first = null;
        for (AutoCloseable c : resources) {
            if (c == null) {
                continue;
            }
            try {
                c.close();
            } catch (Exception e) {
                RuntimeException r = e instanceof RuntimeException re ? re : new IllegalStateException(e);
                if (first == null) {
                    first = r;
                } else {
                    first.addSuppressed(r);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
