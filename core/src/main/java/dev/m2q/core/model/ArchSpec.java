package dev.m2q.core.model;

import dev.m2q.core.InputException;
import java.util.List;

/**
 * A decoder family as data: where its layers live, which linears are quantized together (the true-sequential
 * groups, in order), and which modules are never quantized. Adding a family is one row in {@link #KNOWN}.
 *
 * @param architectures the {@code config.json} "architectures" names this row serves
 * @param layerPrefix the prefix of decoder layer {@code i} is {@code layerPrefix + i + "."}
 * @param sequentialGroups module names relative to a layer; linears in one group share an input
 * @param neverQuantized full tensor-name prefixes kept in the source precision
 * @param qkvBias whether q/k/v projections carry a bias by default
 */
public record ArchSpec(
        String family,
        List<String> architectures,
        String layerPrefix,
        List<List<String>> sequentialGroups,
        List<String> neverQuantized,
        boolean qkvBias) {

    private static final List<List<String>> DECODER_GROUPS =
            Proj.GROUPS.stream().map(Proj::paths).toList();

    private static final List<String> NEVER = List.of("model.embed_tokens", "model.norm", "lm_head");

    /** The families m2q knows. */
    public static final List<ArchSpec> KNOWN = List.of(
            new ArchSpec("qwen2", List.of("Qwen2ForCausalLM"), "model.layers.", DECODER_GROUPS, NEVER, true),
            new ArchSpec("llama", List.of("LlamaForCausalLM"), "model.layers.", DECODER_GROUPS, NEVER, false));

    public ArchSpec {
        architectures = List.copyOf(architectures);
        sequentialGroups = sequentialGroups.stream().map(List::copyOf).toList();
        neverQuantized = List.copyOf(neverQuantized);
    }

    /** The row serving {@code architecture}; an unknown name is refused, naming the known ones. */
    public static ArchSpec forArchitecture(String architecture) {
        for (ArchSpec a : KNOWN) {
            if (a.architectures().contains(architecture)) {
                return a;
            }
        }
        List<String> known =
                KNOWN.stream().flatMap(a -> a.architectures().stream()).toList();
        throw new InputException("config.json: architecture \"" + architecture + "\" is not supported (supported: "
                + String.join(", ", known) + ")");
    }

    /** Every quantized linear of a layer, in the order of the groups. */
    public List<String> linears() {
        return sequentialGroups.stream().flatMap(List::stream).toList();
    }

    /** Full tensor-name prefix of a module in layer {@code layer}, e.g. "model.layers.3.mlp.up_proj". */
    public String module(int layer, String relative) {
        return layerPrefix + layer + "." + relative;
    }
}
