package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The layout a 4- or 8-bit release is written in. Both store exactly the same tensors — FORMATS.md §2's qweight, qzeros
 * (v1 symmetric zeros), F16 scales and g_idx; AutoRound's symmetric export "auto_round:auto_gptq" is that layout —
 * and differ only in config.json's {@code quantization_config} and the file that repeats it.
 */
public enum ReleaseFormat {
    /** FORMATS.md §2: quant_method "gptq", repeated in quantize_config.json. */
    GPTQ("gptq", "quantize_config.json"),
    /**
     * FORMATS.md §3: quant_method "auto-round" with packing_format "auto_round:auto_gptq", repeated in
     * quantization_config.json.
     */
    AUTO_ROUND("auto_round", "quantization_config.json");

    private final String id;
    private final String configFile;

    ReleaseFormat(String id, String configFile) {
        this.id = id;
        this.configFile = configFile;
    }

    /** The name users type after {@code --format}. */
    public String id() {
        return id;
    }

    /** The file beside config.json that holds the same {@code quantization_config} object. */
    public String configFile() {
        return configFile;
    }

    /** The format named {@code name} ("gptq", "auto_round"); anything else is bad input, naming the choices. */
    public static ReleaseFormat byName(String name) {
        for (ReleaseFormat f : values()) {
            if (f.id.equals(name)) {
                return f;
            }
        }
        throw new InputException("--format " + name + " is not a format m2q writes (available: "
                + String.join(
                        ", ", Arrays.stream(values()).map(ReleaseFormat::id).toList()) + ")");
    }

    /**
     * config.json's {@code quantization_config}: the format's fixed keys, with {@code methodKeys} merged over the
     * defaults among them (new keys in sorted order, so the bytes do not depend on the map's iteration order).
     * GPTQ: quant_method "gptq", bits 4, group_size, sym true, desc_act false, lm_head false, then the method's keys
     * (desc_act, static_groups, true_sequential, damp_percent, …; after AutoRound its iters, lr, …), then
     * checkpoint_format "gptq", pack_dtype "int32" and meta {quantizer ["m2q:VERSION"], method}. AUTO_ROUND:
     * quant_method "auto-round", packing_format "auto_round:auto_gptq", bits 4, group_size, sym true, data_type
     * "int", then the method's keys (iters, nsamples, seqlen, lr, minmax_lr, …), then autoround_version, m2q's
     * version.
     */
    public Map<String, Object> quantizationConfig(
            int groupSize, Map<String, Object> methodKeys, String method, String m2qVersion) {
        return quantizationConfig(4, groupSize, methodKeys, method, m2qVersion);
    }

    /**
     * {@link #quantizationConfig(int, Map, String, String)} for weights of {@code bits} (4 or 8,
     * docs/FORMATS-8BIT.md): the same keys with {@code bits} in place of 4.
     */
    public Map<String, Object> quantizationConfig(
            int bits, int groupSize, Map<String, Object> methodKeys, String method, String m2qVersion) {
        Map<String, Object> qc = new LinkedHashMap<>();
        switch (this) {
            case GPTQ -> {
                qc.put("quant_method", "gptq");
                qc.put("bits", bits);
                qc.put("group_size", groupSize);
                qc.put("sym", true);
                qc.put("desc_act", false);
                qc.put("lm_head", false);
                qc.putAll(new TreeMap<>(methodKeys));
                qc.put("checkpoint_format", "gptq");
                qc.put("pack_dtype", "int32");
                Map<String, Object> meta = new LinkedHashMap<>();
                meta.put("quantizer", List.of("m2q:" + m2qVersion));
                meta.put("method", method);
                qc.put("meta", meta);
            }
            case AUTO_ROUND -> {
                qc.put("quant_method", "auto-round");
                qc.put("packing_format", "auto_round:auto_gptq");
                qc.put("bits", bits);
                qc.put("group_size", groupSize);
                qc.put("sym", true);
                qc.put("data_type", "int");
                qc.putAll(new TreeMap<>(methodKeys));
                qc.put("autoround_version", m2qVersion);
            }
        }
        return qc;
    }
}
