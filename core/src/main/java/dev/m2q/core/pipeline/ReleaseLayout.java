package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;

/** The tensor layout {@link QuantizeJob} writes a 4-bit release in. */
public enum ReleaseLayout {
    /** FORMATS.md §2: qweight / qzeros / scales / g_idx, quant_method "gptq". */
    GPTQ("gptq"),
    /**
     * FORMATS.md §4: weight_packed / weight_scale / weight_shape, "pack-quantized", with the static input scales
     * and the KV-cache scales of an 8-bit scheme.
     */
    COMPRESSED_TENSORS("compressed-tensors");

    private final String id;

    ReleaseLayout(String id) {
        this.id = id;
    }

    /** The name users type after {@code --format}, written to the manifest. */
    public String id() {
        return id;
    }

    /** The layout named {@code name}; anything else is bad input naming the choices. */
    public static ReleaseLayout byName(String name) {
        for (ReleaseLayout l : values()) {
            if (l.id.equals(name)) {
                return l;
            }
        }
        throw new InputException(
                "--format " + name + " is not a format m2q writes (available: gptq," + " compressed-tensors)");
    }
}
