package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.quant.Bits;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * What {@link QuantizeJob} needs besides the method.
 *
 * @param quantizationConfig the method's keys of config.json's {@code quantization_config} (desc_act,
 *     static_groups, damp_percent, true_sequential, …; for AutoRound iters, lr, …), merged over the format's fixed
 *     ones by {@link ReleaseFormat#quantizationConfig}; the GPTQ
 *     label writes them as they are, compressed-tensors takes its actorder from {@link ReleaseFormat#withActOrder}
 * @param commandLine the user's arguments, recorded in the manifest (without --resume and --overwrite, so a
 *     resumed run writes the same manifest)
 * @param maxMemoryBytes budget for the two calibration activation buffers; beyond it they spill to files
 * @param batchSequences calibration sequences run through a layer at once
 * @param bits the weights' code width (4, FORMATS.md; 8, docs/FORMATS-8BIT.md): the tensors' packing and the
 *     config's bits / num_bits
 */
public record QuantizeOptions(
        Path model,
        Path out,
        int groupSize,
        int nsamples,
        int seqlen,
        long seed,
        long maxMemoryBytes,
        long maxShardBytes,
        int batchSequences,
        boolean overwrite,
        boolean resume,
        Map<String, Object> quantizationConfig,
        List<String> commandLine,
        String m2qVersion,
        Bits bits) {

    public QuantizeOptions {
        if (nsamples < 1 || seqlen < 2) {
            throw new InputException("--nsamples must be ≥ 1 and --seqlen ≥ 2");
        }
        if (maxMemoryBytes < 0 || maxShardBytes < 1 || batchSequences < 1) {
            throw new InputException("--max-memory must be ≥ 0, --max-shard-size and the batch ≥ 1");
        }
        quantizationConfig = Map.copyOf(quantizationConfig);
        commandLine = commandLine.stream()
                .filter(a -> !a.equals("--resume") && !a.equals("--overwrite"))
                .toList();
        if (bits == null) {
            throw new IllegalArgumentException("the bits are required");
        }
    }

    /** Options for a 4-bit release. */
    public QuantizeOptions(
            Path model,
            Path out,
            int groupSize,
            int nsamples,
            int seqlen,
            long seed,
            long maxMemoryBytes,
            long maxShardBytes,
            int batchSequences,
            boolean overwrite,
            boolean resume,
            Map<String, Object> quantizationConfig,
            List<String> commandLine,
            String m2qVersion) {
        this(
                model,
                out,
                groupSize,
                nsamples,
                seqlen,
                seed,
                maxMemoryBytes,
                maxShardBytes,
                batchSequences,
                overwrite,
                resume,
                quantizationConfig,
                commandLine,
                m2qVersion,
                Bits.FOUR);
    }
}
