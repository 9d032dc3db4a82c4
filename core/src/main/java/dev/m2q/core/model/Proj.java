package dev.m2q.core.model;

import java.util.List;

/**
 * The seven linears of a Qwen2/Llama decoder layer, stated once: each one's module path relative to the layer (the
 * Hugging Face name, also the name in reports and observers), its shape for a config, whether it carries a bias,
 * and how tensor parallelism splits it. {@link DecoderLayer}'s records, {@link ModelConfig#expectedShapes}, the
 * checkpoint reader and the layout checks all read this table instead of spelling the names. The constants are
 * declared in the order of the linears in {@link DecoderLayer.Weights} (q, k, v, o, gate, up, down), which index them
 * by {@link #ordinal()}.
 */
public enum Proj {
    Q("self_attn.q_proj"),
    K("self_attn.k_proj"),
    V("self_attn.v_proj"),
    O("self_attn.o_proj"),
    GATE("mlp.gate_proj"),
    UP("mlp.up_proj"),
    DOWN("mlp.down_proj");

    /** The linears that share each input, in the order the forward computes them (the true-sequential groups). */
    public static final List<List<Proj>> GROUPS =
            List.of(List.of(Q, K, V), List.of(O), List.of(GATE, UP), List.of(DOWN));

    private final String path;

    Proj(String path) {
        this.path = path;
    }

    /** The module path relative to the layer, e.g. "mlp.up_proj". */
    public String path() {
        return path;
    }

    /** The weight's tensor name relative to the layer, e.g. "mlp.up_proj.weight". */
    public String weight() {
        return path + ".weight";
    }

    /** The bias's tensor name relative to the layer, e.g. "self_attn.q_proj.bias". */
    public String bias() {
        return path + ".bias";
    }

    /** The weight's shape [out, in] under {@code c}. */
    public long[] shape(ModelConfig c) {
        return new long[] {out(c), in(c)};
    }

    /** out_features (N) under {@code c}. */
    public int out(ModelConfig c) {
        return switch (this) {
            case Q -> c.qDim();
            case K, V -> c.kvDim();
            case O, DOWN -> c.hiddenSize();
            case GATE, UP -> c.intermediateSize();
        };
    }

    /** in_features (K) under {@code c}. */
    public int in(ModelConfig c) {
        return switch (this) {
            case Q, K, V, GATE, UP -> c.hiddenSize();
            case O -> c.qDim();
            case DOWN -> c.intermediateSize();
        };
    }

    /** Whether the family's attention bias (config attention_bias) applies: q, k and v only. */
    public boolean takesAttentionBias() {
        return this == Q || this == K || this == V;
    }

    /** Split along K under tensor parallelism (row-parallel: o_proj, down_proj); the others split along N. */
    public boolean rowParallel() {
        return this == O || this == DOWN;
    }

    /** The linear at {@code path} relative to the layer; any other name is refused. */
    public static Proj of(String path) {
        for (Proj p : values()) {
            if (p.path.equals(path)) {
                return p;
            }
        }
        throw new IllegalArgumentException("no linear \"" + path + "\" in a decoder layer");
    }

    /**
     * The linear a full module name ends with ("model.layers.3.self_attn.o_proj"), or null when it names none of
     * the seven.
     */
    public static Proj ofModule(String module) {
        for (Proj p : values()) {
            if (module.equals(p.path) || module.endsWith("." + p.path)) {
                return p;
            }
        }
        return null;
    }

    /** The module paths of {@code projs}, in order. */
    public static List<String> paths(List<Proj> projs) {
        return projs.stream().map(Proj::path).toList();
    }
}
