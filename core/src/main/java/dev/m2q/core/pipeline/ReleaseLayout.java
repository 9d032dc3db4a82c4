package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import java.util.ArrayList;
import java.util.List;

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

    /**
     * The layout of {@code --format name}: compressed-tensors, or GPTQ for either label of the GPTQ layout
     * ({@link ReleaseFormat}: gptq, auto_round); anything else is bad input naming every choice.
     */
    public static ReleaseLayout byName(String name) {
        if (COMPRESSED_TENSORS.id.equals(name)) {
            return COMPRESSED_TENSORS;
        }
        for (ReleaseFormat f : ReleaseFormat.values()) {
            if (f.id().equals(name)) {
                return GPTQ;
            }
        }
        List<String> all = new ArrayList<>();
        for (ReleaseFormat f : ReleaseFormat.values()) {
            all.add(f.id());
        }
        all.add(COMPRESSED_TENSORS.id);
        throw new InputException(
                "--format " + name + " is not a format m2q writes (available: " + String.join(", ", all) + ")");
    }
}
