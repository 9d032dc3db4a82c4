package dev.m2q.core.pipeline;

/**
 * A weight-quantization method the layer pipeline runs on one decoder layer at a time (GPTQ, RTN, AutoRound).
 * It must be deterministic: the same layer, calibration inputs and options give the same bits, which is what
 * makes {@code --resume} reproduce an uninterrupted run.
 */
public interface LayerMethod {
    /** The method's name as users type it ("gptq", "rtn"). */
    String name();

    /** Quantizes every linear of {@code ctx.layer()}; runs the layer through {@code ctx} as it needs. */
    LayerResult quantize(LayerContext ctx);
}
