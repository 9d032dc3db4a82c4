package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The loadability rules of a compressed-tensors "pack-quantized" checkpoint (FORMATS.md §4), reported through
 * {@link GptqLayoutCheck#checkCheckpoint} as {@link GptqLayoutCheck.Violation}s: the {@code quantization_config}
 * keys vLLM's compressed-tensors loader reads (weights num_bits 4 or 8), and per {@code <prefix>.weight_packed} I32
 * [N, K/8] ([N, K/4] at num_bits 8; one whose K (weight_shape) fits the other width is named) its
 * weight_scale [N, K/G] (BF16/F16/F32, finite; [N, 1] with the "channel" strategy), weight_shape I64 [2] = [N, K],
 * the same tile and tensor-parallel divisibility as the GPTQ layout, and the 8-bit parts: input_activations null or 8-bit symmetric float/int args,
 * per token and dynamic or per tensor and static, and then every linear's input_scale F32 [1], finite and > 0;
 * with a {@code kv_cache_scheme} (8-bit float, static, strategy "tensor" or "attn_head"), every attention layer's
 * self_attn.k_scale and v_scale, F32 [1] (tensor) or [num_key_value_heads, 1, 1] (attn_head), finite and > 0. A
 * missing KV scale is a violation: vLLM would silently run that layer with scale 1.0.
 */
final class CompressedTensors {
    private static final Set<DType> SCALE_DTYPES = Set.of(DType.BF16, DType.F16, DType.F32);

    private CompressedTensors() {}

    /** Whether config.json in {@code dir} declares quant_method "compressed-tensors". */
    static boolean is(Path dir) {
        Object qc = config(dir).get("quantization_config");
        return qc instanceof Map<?, ?> m && CompressedTensorsFormat.QUANT_METHOD.equals(m.get("quant_method"));
    }

    static void check(Path dir, List<Integer> tps, GptqLayoutCheck.Violations out) {
        Map<?, ?> qc = (Map<?, ?>) config(dir).get("quantization_config");
        String where = "config.json";
        if (!"pack-quantized".equals(qc.get("format"))) {
            out.add(
                    where,
                    "format",
                    "quantization_config.format is " + Json.write(qc.get("format"))
                            + "; 4- and 8-bit int weights are stored as \"pack-quantized\"",
                    "",
                    0);
        }
        Long groupSize = null;
        Bits bits = null;
        boolean staticInputs = false;
        if (!(qc.get("config_groups") instanceof Map<?, ?> groups) || groups.isEmpty()) {
            out.add(where, "config_groups", "quantization_config has no config_groups: engines find no scheme", "", 0);
        } else {
            for (Map.Entry<?, ?> e : groups.entrySet()) {
                String at = "quantization_config.config_groups." + e.getKey();
                if (!(e.getValue() instanceof Map<?, ?> g) || !(g.get("weights") instanceof Map<?, ?> w)) {
                    out.add(where, "weights", at + " has no \"weights\" object", "", 0);
                    continue;
                }
                if (!(g.get("targets") instanceof List<?> t) || t.isEmpty()) {
                    out.add(where, "targets", at + ".targets must list the modules, e.g. [\"Linear\"]", "", 0);
                }
                Object nb = w.get("num_bits");
                if (Long.valueOf(4).equals(nb) || Long.valueOf(8).equals(nb)) {
                    bits = Bits.of((int) (long) (Long) nb);
                } else {
                    out.add(
                            where,
                            "num_bits",
                            at + ".weights.num_bits is " + Json.write(nb) + "; expected 4 or 8",
                            "",
                            0);
                }
                expect(out, w, at + ".weights", "type", "int");
                expect(out, w, at + ".weights", "symmetric", true);

                if (g.get("input_activations") instanceof Map<?, ?> a) {
                    staticInputs = activationArgs(out, a, at + ".input_activations");
                } else if (g.get("input_activations") != null) {
                    out.add(where, "input_activations", at + ".input_activations must be an object or null", "", 0);
                }
                if ("channel".equals(w.get("strategy"))) {
                    // One scale per output channel: vLLM's CompressedTensorsWNA16 runs it as group size -1.
                    groupSize = (long) GroupSize.PER_ROW;
                } else if (!"group".equals(w.get("strategy"))) {
                    out.add(
                            where,
                            "strategy",
                            at + ".weights.strategy is " + Json.write(w.get("strategy"))
                                    + "; expected \"group\" or \"channel\"",
                            "",
                            0);
                } else if (w.get("group_size") instanceof Long l && l > 0) {
                    groupSize = l;
                } else {
                    out.add(
                            where,
                            "group_size",
                            at + ".weights.group_size is " + Json.write(w.get("group_size"))
                                    + "; the group strategy needs a positive group size",
                            "",
                            0);
                }
            }
        }
        Object kv = qc.get("kv_cache_scheme");
        String kvStrategy = null;
        if (kv instanceof Map<?, ?> kvs) {
            String at = "quantization_config.kv_cache_scheme";
            expect(out, kvs, at, "num_bits", 8L);
            expect(out, kvs, at, "type", "float");
            expect(out, kvs, at, "dynamic", false);
            expect(out, kvs, at, "symmetric", true);
            if ("tensor".equals(kvs.get("strategy")) || "attn_head".equals(kvs.get("strategy"))) {
                kvStrategy = (String) kvs.get("strategy");
            } else {
                out.add(
                        where,
                        "strategy",
                        at + ".strategy is " + Json.write(kvs.get("strategy"))
                                + "; expected \"tensor\" or \"attn_head\"",
                        "",
                        0);
            }
        } else if (kv != null) {
            out.add(where, "kv_cache_scheme", "quantization_config.kv_cache_scheme must be an object or null", "", 0);
        }
        try (Checkpoint ck = Checkpoint.open(dir)) {
            List<String> prefixes = ck.names().stream()
                    .filter(n -> n.endsWith(".weight_packed"))
                    .map(n -> n.substring(0, n.length() - ".weight_packed".length()))
                    .sorted()
                    .toList();
            if (prefixes.isEmpty()) {
                out.add(
                        dir.toString(),
                        "weight_packed",
                        "no <prefix>.weight_packed tensor: nothing is quantized",
                        "",
                        0);
            }
            if (groupSize != null && bits != null) {
                for (String prefix : prefixes) {
                    linear(ck, prefix, (int) (long) groupSize, bits, tps, out);
                }
            }
            if (staticInputs) {
                for (String prefix : prefixes) {
                    inputScale(ck, prefix, out);
                }
            }
            if (kvStrategy != null) {
                kvScales(dir, ck, kvStrategy, out);
            }
            GptqLayoutCheck.everyModule(dir, ck, ".weight_packed", out);
        }
    }

    private static void linear(
            Checkpoint ck, String prefix, int g, Bits bits, List<Integer> tps, GptqLayoutCheck.Violations out) {
        String kind = prefix.replaceAll("\\.\\d+\\.", ".*.");
        TensorView packed = ck.tensor(prefix + ".weight_packed");
        int per = bits.perWord();
        if (packed.dtype() != DType.I32 || packed.rank() != 2) {
            out.add(
                    packed.name(),
                    "weight_packed",
                    "dtype " + packed.dtype() + ", shape " + Arrays.toString(packed.shape()) + "; expected I32 [N, K/"
                            + per + "]",
                    kind,
                    0);
            return;
        }
        long n = packed.dim(0);
        long k = packed.dim(1) * per;
        if (ck.contains(prefix + ".weight_shape")) {
            // weight_shape says K whatever the width: a weight_packed whose columns fit the other width was packed
            // at bits the config does not say (engines would read every code wrong).
            TensorView shape = ck.tensor(prefix + ".weight_shape");
            Bits other = bits.value() == 4 ? Bits.EIGHT : Bits.FOUR;
            if (shape.dtype() == DType.I64
                    && Arrays.equals(shape.shape(), new long[] {2})
                    && shape.getLong(1) != k
                    && shape.getLong(1) == packed.dim(1) * other.perWord()) {
                out.add(
                        packed.name(),
                        "weight_packed bits",
                        "weight_packed has shape " + Arrays.toString(packed.shape()) + " for K = " + shape.getLong(1)
                                + " (weight_shape): " + other.perWord() + " codes per word, the " + other.value()
                                + "-bit packing, but the config's weights num_bits is " + bits.value(),
                        kind,
                        0);
                return;
            }
        }
        GptqLayoutCheck.shapeRules(out, prefix, kind, n, k, g);
        GptqLayoutCheck.tensorSplit(out, prefix, kind, n, k, g, tps);
        String shapeName = prefix + ".weight_shape";
        if (!ck.contains(shapeName)) {
            out.add(shapeName, "weight_shape missing", "missing; every weight_packed needs its weight_shape", kind, 0);
        } else {
            TensorView shape = ck.tensor(shapeName);
            if (shape.dtype() != DType.I64 || !Arrays.equals(shape.shape(), new long[] {2})) {
                out.add(
                        shapeName,
                        "weight_shape",
                        "dtype " + shape.dtype() + ", shape " + Arrays.toString(shape.shape()) + "; expected I64 [2]",
                        kind,
                        0);
            } else if (shape.getLong(0) != n || shape.getLong(1) != k) {
                out.add(
                        shapeName,
                        "weight_shape",
                        "is [" + shape.getLong(0) + ", " + shape.getLong(1) + "] but weight_packed implies [" + n + ", "
                                + k + "]",
                        kind,
                        0);
            }
        }
        String scaleName = prefix + ".weight_scale";
        if (!ck.contains(scaleName)) {
            out.add(scaleName, "weight_scale missing", "missing; every weight_packed needs its weight_scale", kind, 0);
            return;
        }
        TensorView scale = ck.tensor(scaleName);
        long groups = k / GroupSize.resolve(g, (int) k);
        if (!SCALE_DTYPES.contains(scale.dtype()) || !Arrays.equals(scale.shape(), new long[] {n, groups})) {
            out.add(
                    scaleName,
                    "weight_scale",
                    "dtype " + scale.dtype() + ", shape " + Arrays.toString(scale.shape())
                            + "; expected the model dtype (BF16) [" + n + ", " + groups + "]",
                    kind,
                    0);
            return;
        }
        for (long i = 0; i < scale.numel(); i++) {
            float s = scale.getFloat(i);
            if (!Float.isFinite(s)) {
                out.add(
                        scaleName,
                        "weight_scale finite",
                        "weight_scale[" + i / groups + ", " + i % groups + "] is " + s + "; every scale must be finite",
                        kind,
                        0);
                return;
            }
        }
    }

    /**
     * The quantization args of input activations; returns whether they are static (then every linear needs its
     * input_scale).
     */
    private static boolean activationArgs(GptqLayoutCheck.Violations out, Map<?, ?> a, String at) {
        expect(out, a, at, "num_bits", 8L);
        expect(out, a, at, "symmetric", true);
        if (!"float".equals(a.get("type")) && !"int".equals(a.get("type"))) {
            out.add(
                    "config.json",
                    "type",
                    at + ".type is " + Json.write(a.get("type")) + "; expected float or int",
                    "",
                    0);
        }
        Object strategy = a.get("strategy");
        if ("token".equals(strategy)) {
            expect(out, a, at, "dynamic", true);
            return false;
        }
        if ("tensor".equals(strategy)) {
            expect(out, a, at, "dynamic", false);
            return Boolean.FALSE.equals(a.get("dynamic"));
        }
        out.add(
                "config.json",
                "strategy",
                at + ".strategy is " + Json.write(strategy) + "; expected \"token\" (dynamic) or \"tensor\" (static)",
                "",
                0);
        return false;
    }

    private static void inputScale(Checkpoint ck, String prefix, GptqLayoutCheck.Violations out) {
        String kind = prefix.replaceAll("\\.\\d+\\.", ".*.");
        scale(ck, prefix + ".input_scale", new long[] {1}, "static input activations", kind, out);
    }

    /** Every decoder layer's k_scale and v_scale, in the shape of the strategy. */
    private static void kvScales(Path dir, Checkpoint ck, String strategy, GptqLayoutCheck.Violations out) {
        ModelConfig cfg;
        try {
            cfg = ModelConfig.load(dir);
        } catch (InputException e) {
            return;
        }
        long[] shape = "attn_head".equals(strategy) ? new long[] {cfg.numKvHeads(), 1, 1} : new long[] {1};
        for (int l = 0; l < cfg.numLayers(); l++) {
            for (String which : List.of("k_scale", "v_scale")) {
                String name = cfg.arch().module(l, "self_attn." + which);
                scale(ck, name, shape, "kv_cache_scheme strategy \"" + strategy + "\"", "self_attn." + which, out);
            }
        }
    }

    /** A scale tensor: present, F32 of {@code shape}, every value finite and > 0. */
    private static void scale(
            Checkpoint ck, String name, long[] shape, String why, String kind, GptqLayoutCheck.Violations out) {
        if (!ck.contains(name)) {
            out.add(name, "scale missing", "missing; " + why + " needs it (an engine would fall back to 1.0)", kind, 0);
            return;
        }
        TensorView t = ck.tensor(name);
        if (t.dtype() != DType.F32 || !Arrays.equals(t.shape(), shape)) {
            out.add(
                    name,
                    "scale dtype and shape",
                    "dtype " + t.dtype() + ", shape " + Arrays.toString(t.shape()) + "; " + why + " needs F32 "
                            + Arrays.toString(shape),
                    kind,
                    0);
            return;
        }
        for (long i = 0; i < t.numel(); i++) {
            float v = t.getFloat(i);
            if (!(v > 0) || !Float.isFinite(v)) {
                out.add(name, "scale value", "[" + i + "] is " + v + "; a scale must be finite and > 0", kind, 0);
                return;
            }
        }
    }

    private static void expect(GptqLayoutCheck.Violations out, Map<?, ?> m, String at, String key, Object expected) {
        Object v = m.get(key);
        if (!expected.equals(v)) {
            out.add(
                    "config.json",
                    key,
                    at + "." + key + " is " + Json.write(v) + "; expected " + Json.write(expected),
                    "",
                    0);
        }
    }

    private static Map<String, Object> config(Path dir) {
        Path file = dir.resolve("config.json");
        try {
            return Json.parseObject(Files.readString(file, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new InputException(file + ": cannot read: " + e, e);
        } catch (JsonException e) {
            throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
        }
    }
}
