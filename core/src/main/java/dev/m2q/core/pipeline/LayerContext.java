package dev.m2q.core.pipeline;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import java.nio.file.Path;

/**
 * What a {@link LayerMethod} sees of one layer: its source (bf16) weights, and a way to run the layer, with any
 * weights, over every calibration sample — the inputs being the outputs of the already-quantized earlier
 * layers, as ALGORITHMS.md §0 requires.
 */
public final class LayerContext {
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
            Path spillDir) {
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

    /** Calibration samples entering this layer. */
    public int samples() {
        return inputs.samples();
    }

    public int seqLen() {
        return seqLen;
    }

    /**
     * Calibration sequences the pipeline runs through the layer at once, sized from the heap so one batch's
     * intermediate tensors fit; a method that keeps more per token (a training trace) should not exceed it.
     */
    public int batchSequences() {
        return batch;
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
     * Runs the layer with {@code weights} over every calibration sample, in batches of whole sequences, and shows
     * {@code observer} each batch's intermediate tensors (linear inputs, keys and values).
     */
    public void run(DecoderLayer.Weights weights, LayerObserver observer) {
        forEachBatch(weights, observer, null);
    }

    /** Receives each batch's layer outputs: {@code out} [count·seqLen, hidden] for samples first..first+count. */
    @FunctionalInterface
    public interface OutputSink {
        void accept(int first, int count, float[] out);
    }

    /** Runs the layer with {@code weights} over every calibration sample and hands each batch's outputs to sink. */
    public void forEachOutput(DecoderLayer.Weights weights, OutputSink sink) {
        forEachBatch(weights, LayerObserver.NONE, sink);
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
        int width = inputs.width();
        ActivationStore out = ActivationStore.create(inputs.samples(), width, storeBudget, spillDir);
        try {
            forEachBatch(weights, observer, (first, count, rows) -> {
                for (int s = 0; s < count; s++) {
                    float[] row = new float[width];
                    System.arraycopy(rows, s * width, row, 0, width);
                    out.set(first + s, row);
                }
            });
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
        return out;
    }

    void forEachBatch(DecoderLayer.Weights weights, LayerObserver observer, OutputSink sink) {
        DecoderLayer l = new DecoderLayer(config, layer, weights, kernels);
        int width = inputs.width();
        for (int first = 0; first < inputs.samples(); first += batch) {
            int count = Math.min(batch, inputs.samples() - first);
            float[] x = new float[count * width];
            for (int s = 0; s < count; s++) {
                System.arraycopy(inputs.get(first + s), 0, x, s * width, width);
            }
            float[] out = l.forward(x, count, seqLen, observer);
            if (sink != null) {
                sink.accept(first, count, out);
            }
        }
    }
}
