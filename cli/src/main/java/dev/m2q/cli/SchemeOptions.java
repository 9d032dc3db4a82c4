package dev.m2q.cli;

import dev.m2q.core.quant.QuantScheme;
import picocli.CommandLine.Option;

/**
 * What {@code m2q quantize} calibrates and writes besides the 4-bit weights (ALGORITHMS.md §4): the 8-bit
 * activation scheme and the FP8 KV cache, checked by {@link QuantScheme#of}.
 */
final class SchemeOptions {
    @Option(
            names = "--scheme",
            defaultValue = "w4a16",
            paramLabel = "SCHEME",
            description = "w4a16 (default), w4a8-fp8 or w4a8-int8: 8-bit activations of every linear, a scale per"
                    + " token computed at run time (needs --format compressed-tensors).")
    String scheme;

    @Option(
            names = "--act-static",
            description = "With w4a8-*: one calibrated input_scale per linear (amax/448 FP8, amax/127 INT8) instead"
                    + " of per-token scales; vLLM runs these on its W8A8 paths, not W4A8.")
    boolean actStatic;

    @Option(
            names = "--act-clip",
            paramLabel = "PCT",
            description = "With --act-static: the percentile of |x| over the calibration values the input scales"
                    + " cover (e.g. 99.99) instead of the absolute maximum; the report gives what each clips.")
    Double actClip;

    @Option(
            names = "--kv-cache",
            paramLabel = "fp8",
            description = "Calibrate an FP8 e4m3 KV cache: k_scale/v_scale = amax/448 of the keys after RoPE and"
                    + " of the values (written by --format compressed-tensors; engines ignore them in GPTQ).")
    String kvCache;

    @Option(
            names = "--kv-granularity",
            paramLabel = "tensor|head",
            description = "With --kv-cache: one scale per layer (tensor, default) or per KV head (head: vLLM's"
                    + " FlashAttention-3 backend).")
    String kvGranularity;

    QuantScheme get() {
        return QuantScheme.of(scheme, actStatic, actClip, kvCache, kvGranularity);
    }
}
