package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.PackedLinears;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * A format m2q writes a release in and reads one back from: the GPTQ layout (FORMATS.md §2) labelled as GPTQ or as
 * AutoRound's "auto_round:auto_gptq" (§3), or compressed-tensors "pack-quantized" (§4). Each format is one class;
 * the bits (4 or 8, docs/FORMATS-8BIT.md) are a parameter of every verb, not a format of their own.
 */
public sealed interface ReleaseFormat permits GptqRelease, CompressedTensorsRelease {
    /** The name users type after {@code --format}, written to the manifest: gptq, auto_round, compressed-tensors. */
    String id();

    /** config.json's quant_method: gptq, auto-round, compressed-tensors. */
    String quantMethod();

    /**
     * Refuses a scheme the format cannot carry at {@code bits}.
     *
     * @throws InputException naming the option to change
     */
    void check(QuantScheme scheme, Bits bits);

    /** A warning for a scheme the format carries only in part (calibrated, but not stored); empty when none. */
    Optional<String> warning(QuantScheme scheme);

    /** The format with the run's act-order (compressed-tensors stores it; the GPTQ label carries it as method keys). */
    ReleaseFormat withActOrder(CompressedTensorsRelease.ActOrder actOrder);

    /**
     * Whether scales and quantized linears' biases are stored in F16, so a weight whose scale or a bias beyond F16's
     * range cannot be written (the GPTQ layout); compressed-tensors keeps biases in the model dtype.
     */
    boolean storesF16();

    /** The release's tensors, in source order (what the shard plan lays out). */
    List<TensorSpec> plan(
            ModelConfig cfg, Function<String, TensorView> source, int groupSize, QuantScheme scheme, Bits bits);

    /**
     * {@code q} as the release stores it, which is what the job propagates and a resume replays: unchanged in the
     * GPTQ layout, scales rounded to BF16 in compressed-tensors.
     */
    QuantizedLinear asWritten(QuantizedLinear q);

    /** Whether {@link #asWritten} is the identity, so the method's own dequantized weights can be propagated. */
    boolean storesMethodWeights();

    /** Writes one quantized linear {@code prefix} already {@link #asWritten}, with its bias (null when none). */
    void writeLinear(CheckpointWriter w, String prefix, QuantizedLinear q, TensorView bias);

    /** Writes one layer's static input scales and KV-cache scales where the format stores them. */
    void writeScales(CheckpointWriter w, ModelConfig cfg, int layer, LayerScales scales);

    /** Reads one quantized linear [n, k] back through the reader validate uses ({@link dev.m2q.core.quant.PackedLinears}). */
    default QuantizedLinear read(
            Function<String, TensorView> source,
            Predicate<String> has,
            String prefix,
            int n,
            int k,
            int groupSize,
            Bits bits) {
        return PackedLinears.readCodes(
                source, has, new ModelConfig.Quantization(this, bits.value(), groupSize, true, false), prefix, n, k);
    }

    /** config.json's {@code quantization_config} (a map or a record, written as JSON) for a run's {@code keys}. */
    Object quantizationConfig(Keys keys);

    /** The file beside config.json that repeats {@code quantization_config}; empty when the format has none. */
    Optional<String> configFile();

    /**
     * What a release's {@code quantization_config} is made of besides the format.
     *
     * @param methodKeys the method's keys (desc_act, static_groups, damp_percent, …; for AutoRound iters, lr, …)
     * @param method the method's name, for the GPTQ config's meta
     */
    record Keys(
            Bits bits,
            int groupSize,
            QuantScheme scheme,
            Map<String, Object> methodKeys,
            String method,
            String m2qVersion) {}

    /** The format named {@code name} after {@code --format}; anything else is bad input, naming the choices. */
    static ReleaseFormat byName(String name) {
        for (ReleaseFormat f :
                List.of(GptqRelease.GPTQ, GptqRelease.AUTO_ROUND, CompressedTensorsRelease.NO_ACT_ORDER)) {
            if (f.id().equals(name)) {
                return f;
            }
        }
        throw new InputException(
                "--format " + name + " is not a format m2q writes (available: gptq, auto_round, compressed-tensors)");
    }

    /**
     * The format of an existing release's {@code quantization_config}: quant_method gptq; auto-round (or
     * intel/auto-round) with a GPTQ packing_format; compressed-tensors with its weights' actorder.
     *
     * @throws InputException for a quant_method m2q does not read
     */
    static ReleaseFormat of(Map<?, ?> quantizationConfig) {
        Object method = quantizationConfig.get("quant_method");
        if (CompressedTensorsRelease.QUANT_METHOD.equals(method)) {
            return CompressedTensorsRelease.NO_ACT_ORDER.withActOrder(
                    CompressedTensorsRelease.ActOrder.of(quantizationConfig));
        }
        if ("gptq".equals(method)) {
            return GptqRelease.GPTQ;
        }
        if (("auto-round".equals(method) || "intel/auto-round".equals(method))
                && String.valueOf(quantizationConfig.get("packing_format")).contains("gptq")) {
            return GptqRelease.AUTO_ROUND;
        }
        throw new InputException("config.json: quantization_config.quant_method \"" + method
                + "\" is not a layout m2q reads (reads: gptq, auto-round with auto_round:auto_gptq packing,"
                + " compressed-tensors pack-quantized)");
    }
}
