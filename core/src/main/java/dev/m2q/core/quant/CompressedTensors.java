package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
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
 * keys vLLM's compressed-tensors loader reads, and per {@code <prefix>.weight_packed} I32 [N, K/8] its
 * weight_scale [N, K/G] (BF16/F16/F32, finite), weight_shape I64 [2] = [N, K], the same tile and tensor-parallel
 * divisibility as the GPTQ layout, and the KV scales' shapes and values when {@code kv_cache_scheme} is set.
 */
final class CompressedTensors {
    private static final Set<DType> SCALE_DTYPES = Set.of(DType.BF16, DType.F16, DType.F32);

    private CompressedTensors() {}

    /** Whether config.json in {@code dir} declares quant_method "compressed-tensors". */
    static boolean is(Path dir) {
        Object qc = config(dir).get("quantization_config");
        return qc instanceof Map<?, ?> m && "compressed-tensors".equals(m.get("quant_method"));
    }

    static void check(Path dir, List<Integer> tps, GptqLayoutCheck.Violations out) {
        Map<?, ?> qc = (Map<?, ?>) config(dir).get("quantization_config");
        String where = "config.json";
        if (!"pack-quantized".equals(qc.get("format"))) {
            out.add(
                    where,
                    "format",
                    "quantization_config.format is " + Json.write(qc.get("format"))
                            + "; 4-bit int weights are stored as \"pack-quantized\"",
                    "",
                    0);
        }
        Long groupSize = null;
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
                expect(out, w, at + ".weights", "num_bits", 4L);
                expect(out, w, at + ".weights", "type", "int");
                expect(out, w, at + ".weights", "symmetric", true);
                expect(out, w, at + ".weights", "strategy", "group");
                if (w.get("group_size") instanceof Long l && l > 0) {
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
        if (kv instanceof Map<?, ?> kvs) {
            expect(out, kvs, "quantization_config.kv_cache_scheme", "num_bits", 8L);
            expect(out, kvs, "quantization_config.kv_cache_scheme", "type", "float");
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
            if (groupSize != null) {
                for (String prefix : prefixes) {
                    linear(ck, prefix, (int) (long) groupSize, tps, out);
                }
            }
            if (kv instanceof Map<?, ?>) {
                kvScales(ck, out);
            }
            GptqLayoutCheck.everyModule(dir, ck, ".weight_packed", out);
        }
    }

    private static void linear(Checkpoint ck, String prefix, int g, List<Integer> tps, GptqLayoutCheck.Violations out) {
        String kind = prefix.replaceAll("\\.\\d+\\.", ".*.");
        TensorView packed = ck.tensor(prefix + ".weight_packed");
        if (packed.dtype() != DType.I32 || packed.rank() != 2) {
            out.add(
                    packed.name(),
                    "weight_packed",
                    "dtype " + packed.dtype() + ", shape " + Arrays.toString(packed.shape())
                            + "; expected I32 [N, K/8]",
                    kind,
                    0);
            return;
        }
        long n = packed.dim(0);
        long k = packed.dim(1) * 8;
        GptqLayoutCheck.shapeRules(out, prefix, kind, n, k, g, tps);
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
        long groups = k / g;
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

    private static void kvScales(Checkpoint ck, GptqLayoutCheck.Violations out) {
        for (String name : ck.names().stream().sorted().toList()) {
            if (!name.endsWith("self_attn.k_scale") && !name.endsWith("self_attn.v_scale")) {
                continue;
            }
            String kind = name.replaceAll("\\.\\d+\\.", ".*.");
            TensorView t = ck.tensor(name);
            if (t.dtype() != DType.F32) {
                out.add(name, "kv scale dtype", "dtype " + t.dtype() + "; KV scales are F32", kind, 0);
                continue;
            }
            for (long i = 0; i < t.numel(); i++) {
                float v = t.getFloat(i);
                if (!(v > 0) || !Float.isFinite(v)) {
                    out.add(
                            name,
                            "kv scale value",
                            "[" + i + "] is " + v + "; a KV scale must be finite and > 0",
                            kind,
                            0);
                    break;
                }
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
