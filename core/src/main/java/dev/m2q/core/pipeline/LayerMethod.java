package dev.m2q.core.pipeline;

import dev.m2q.core.model.ModelConfig;
import java.util.Map;

/**
 * A weight-quantization method the layer pipeline runs on one decoder layer at a time (GPTQ, RTN, AutoRound).
 * It must be deterministic: the same layer, calibration inputs and options give the same bits, which is what
 * makes {@code --resume} reproduce an uninterrupted run.
 */
public interface LayerMethod {
    /** The method's name as users type it ("gptq", "rtn"). */
    String name();

    /**
     * The method's settings that change its results beyond the run's shared options (GPTQ's and RTN's
     * {@code --clip-search}), by name: recorded in the resume fingerprint, so that a resumed run with other settings
     * is refused. Empty (the default) for none.
     */
    default Map<String, Object> settings() {
        return Map.of();
    }

    /**
     * Whether the method needs the BF16 model's own activation stream beside the quantized one: the pipeline then
     * also carries X_ℓ (the unquantized model's hidden states, spilled like the other stream) and hands each layer
     * the BF16 layer's outputs on it ({@link LayerContext#referenceTargets()}). False (the default) for a method that
     * only reads the quantized stream.
     */
    default boolean needsReferenceStream() {
        return false;
    }

    /** Quantizes every linear of {@code ctx.layer()}; runs the layer through {@code ctx} as it needs. */
    LayerResult quantize(LayerContext ctx);

    /**
     * Backend memory, in bytes, that the method keeps resident for one layer of {@code cfg} beside the layer's
     * weights, inputs and one batch's intermediate tensors (GPTQ: its Hessians, the factorization's working set
     * and the dequantized weights), so the pipeline sizes batches and input residency on a device to leave room
     * for it. 0 (the default) for a method that works on the host.
     */
    default long residentBytes(ModelConfig cfg) {
        return 0;
    }
}
