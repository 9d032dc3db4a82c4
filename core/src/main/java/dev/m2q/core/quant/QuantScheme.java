package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import java.util.Locale;

/**
 * What a release quantizes besides its 4-bit weights, as users name it (ALGORITHMS.md §4): the linears' input
 * activations (none: W4A16; FP8 or INT8: W4A8) and the KV cache (none, or FP8 with one scale per tensor or per KV
 * head). The weights do not depend on it: the layer pass propagates 4-bit weights with full-precision activations
 * whatever the scheme, and only the scales it writes differ.
 *
 * @param activations the linears' input format, or null for 16-bit activations (W4A16)
 * @param staticActivations one calibrated scale per linear input ({@code input_scale}) instead of a scale per token
 *     computed at run time; only with {@code activations}
 * @param actClipPercentile the percentile of |x| over the calibration values a static input scale covers (100: the
 *     absolute maximum); below 100 only with static activations, since nothing else uses it
 * @param kvCache the KV cache's scale granularity (FP8 e4m3), or null for a 16-bit KV cache
 */
public record QuantScheme(
        EightBit activations, boolean staticActivations, double actClipPercentile, KvGranularity kvCache) {

    /** 4-bit weights only. */
    public static final QuantScheme W4A16 = new QuantScheme(null, false, 100, null);

    /** One FP8 KV-cache scale per layer for keys and one for values, or one per KV head. */
    public enum KvGranularity {
        TENSOR,
        HEAD
    }

    public QuantScheme {
        if (activations == null && staticActivations) {
            throw new InputException("--act-static needs 8-bit activations: add --scheme w4a8-fp8 or w4a8-int8");
        }
        if (!(actClipPercentile > 0 && actClipPercentile <= 100)) {
            throw new InputException("--act-clip is a percentile in (0, 100], got " + actClipPercentile);
        }
        if (actClipPercentile < 100 && !staticActivations) {
            throw new InputException("--act-clip sets where static input scales clip; it needs --scheme w4a8-fp8 or"
                    + " w4a8-int8 with --act-static (per-token scales are computed at run time and never clip)");
        }
    }

    /**
     * The scheme named on the command line.
     *
     * @param scheme "w4a16", "w4a8-fp8" or "w4a8-int8"
     * @param actClip the --act-clip percentile, or null
     * @param kvCache "fp8" or null
     * @param kvGranularity "tensor", "head" or null (then "tensor"); only with a KV cache
     */
    public static QuantScheme of(
            String scheme, boolean actStatic, Double actClip, String kvCache, String kvGranularity) {
        EightBit acts =
                switch (scheme.toLowerCase(Locale.ROOT)) {
                    case "w4a16" -> null;
                    case "w4a8-fp8" -> EightBit.FP8;
                    case "w4a8-int8" -> EightBit.INT8;
                    default ->
                        throw new InputException("--scheme " + scheme + " is not a scheme m2q writes (available:"
                                + " w4a16, w4a8-fp8, w4a8-int8)");
                };
        if (kvCache != null && !kvCache.equalsIgnoreCase("fp8")) {
            throw new InputException("--kv-cache " + kvCache + " is not available (available: fp8, the e4m3 KV cache"
                    + " vLLM and SGLang run with calibrated scales)");
        }
        if (kvGranularity != null && kvCache == null) {
            throw new InputException("--kv-granularity applies to a quantized KV cache: add --kv-cache fp8");
        }
        KvGranularity g = null;
        if (kvCache != null) {
            g = switch (kvGranularity == null ? "tensor" : kvGranularity.toLowerCase(Locale.ROOT)) {
                case "tensor" -> KvGranularity.TENSOR;
                case "head" -> KvGranularity.HEAD;
                default ->
                    throw new InputException(
                            "--kv-granularity " + kvGranularity + " is not a granularity (available: tensor, head)");
            };
        }
        return new QuantScheme(acts, actStatic, actClip == null ? 100 : actClip, g);
    }

    /** True when the scheme quantizes anything besides the weights. */
    public boolean eightBit() {
        return activations != null || kvCache != null;
    }

    /** The --scheme name: "w4a16", "w4a8-fp8" or "w4a8-int8". */
    public String schemeName() {
        return activations == null ? "w4a16" : "w4a8-" + activations.name().toLowerCase(Locale.ROOT);
    }

    /**
     * A short label for reports: "W4A16", "W4A8-FP8", "W4A8-INT8 static", each followed by " + KV8" (" + KV8 per
     * head") when the KV cache is FP8.
     */
    public String label() {
        return label(Bits.FOUR);
    }

    /** {@link #label()} with weights of {@code bits}: "W8A16 + KV8" for an 8-bit release with an FP8 KV cache. */
    public String label(Bits bits) {
        String w = "W" + bits.value();
        String s = activations == null ? w + "A16" : w + "A8-" + activations.name();
        if (staticActivations) {
            s += " static";
        }
        if (kvCache != null) {
            s += kvCache == KvGranularity.HEAD ? " + KV8 per head" : " + KV8";
        }
        return s;
    }

    /** The same scheme without its KV cache part. */
    public QuantScheme withoutKvCache() {
        return new QuantScheme(activations, staticActivations, actClipPercentile, null);
    }

    /** The same scheme with 16-bit activations. */
    public QuantScheme withoutActivations() {
        return new QuantScheme(null, false, 100, kvCache);
    }
}
