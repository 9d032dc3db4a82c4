package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Proj;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Whether a GPTQ layout (FORMATS.md §2) can load in vLLM's and SGLang's Marlin kernels: checked before quantizing,
 * from the source shapes and the requested options ({@link #checkPlanned}), and on any GPTQ checkpoint on disk
 * ({@link #checkCheckpoint}).
 *
 * <p>The rules, for a linear W[N, K] (N = out, K = in), group size G (−1: one group per row):
 *
 * <ul>
 *   <li><b>K % G</b>: every group is whole (G = −1 has no such rule).
 *   <li><b>K % 128</b>, <b>N % 64</b>: Marlin's tiles ({@value #TILE_K} input, {@value #TILE_N} output channels;
 *       GPTQ_MARLIN_MIN_THREAD_K / _N in vLLM's marlin_utils.py).
 * </ul>
 *
 * and for each tensor-parallel size tp &gt; 1, vLLM's rules for a Qwen2/Llama decoder (checked on the model, not
 * per tensor, because vLLM splits fused layers):
 *
 * <ul>
 *   <li><b>heads % tp</b>: vLLM's Qwen2Attention / LlamaAttention (models/qwen2.py, llama.py) require
 *       num_attention_heads % tp == 0.
 *   <li><b>KV heads</b>: with tp ≤ num_key_value_heads, kv_heads % tp == 0; with more ranks than KV heads, tp %
 *       kv_heads == 0 and every KV head is replicated tp / kv_heads times (QKVParallelLinear's
 *       num_kv_head_replicas in layers/linear.py), so each rank holds one.
 *   <li><b>qkv N/tp % 64</b>: q, k and v are one fused QKVParallelLinear; Marlin checks its per-rank output width
 *       (heads/tp + 2·max(1, kv_heads/tp))·head_dim (check_marlin_supports_shape in marlin_utils.py).
 *   <li><b>intermediate % tp</b>, then <b>gate_up N/tp % 64</b>: gate and up are one MergedColumnParallelLinear
 *       of per-rank width 2·intermediate/tp.
 *   <li>Row-parallel o_proj (K = heads·head_dim) and down_proj (K = intermediate) are split along K:
 *       <b>K/tp % G</b>, then <b>K/tp % 128</b> (Marlin checks K/tp % G only for G &lt; K, but a group as wide as
 *       K would leave a rank K/tp // G = 0 rows of scales, and compressed-tensors' CompressedTensorsWNA16 asserts
 *       K/tp % G for every G). With G = −1 each rank keeps the whole
 *       row's scales (marlin_repeat_scales_on_all_ranks), so K splits freely.
 * </ul>
 *
 * {@link #loadableTps} lists the tp values from 1 to {@value #MAX_TP} that pass, so a refusal can say what would load.
 *
 * A rule that follows one that failed is not reported (a K not divisible by G = 128 is not also reported as not
 * divisible by 128); tp = 1 adds nothing to the unsplit rules. On disk, in addition: {@code quantization_config} is
 * present with quant_method "gptq" (or "auto-round" with packing_format "auto_round:auto_gptq"), bits 4 or 8, and
 * group_size, sym and desc_act all present (vLLM picks Marlin only then; AutoRound's config may omit desc_act, which
 * then means false); per {@code <prefix>.qweight}: the dtypes and shapes of qweight [K/8, N] I32, qzeros [K/G, N/8]
 * I32, scales [K/G, N] F16, g_idx [K] I32 and bias [N] F16 when present; with sym, every qzeros word is 0x77777777
 * (v1 zeros); g_idx lies in [0, K/G) and, without desc_act, equals k / G; scales are finite. At bits 8
 * (docs/FORMATS-8BIT.md) qweight is [K/4, N], qzeros [K/G, N/4] and every qzeros word 0x7F7F7F7F; a qweight whose
 * rows fit the other width (K from g_idx) is named as packed at the width the config does not say.
 *
 * <p>Violations are reported once per module kind (the name with its layer index taken out), rule and tp, naming
 * the first offending tensor, so a 64-layer model gives one line per problem rather than 64.
 */
public final class GptqLayoutCheck {
    /** Marlin's output-channel tile. */
    public static final int TILE_N = 64;

    /** Marlin's input-channel tile. */
    public static final int TILE_K = 128;

    /** The symmetric zeros of {@code bits} stored without the −1 (0x88888888 at 4 bits, 0x80808080 at 8). */
    public static int v2SymZeros(Bits bits) {
        int word = 0;
        for (int j = 0; j < bits.perWord(); j++) {
            word |= bits.zero() << (bits.value() * j);
        }
        return word;
    }

    /** The largest tensor-parallel size {@link #loadableTps} tries (one node of 16 GPUs). */
    public static final int MAX_TP = 16;

    private GptqLayoutCheck() {}

    /**
     * One broken rule.
     *
     * @param tensor the tensor or module (or "config.json") that breaks it, the first of its kind
     * @param rule a short name of the rule, e.g. "K/tp % G"
     * @param detail the numbers and what they mean, ending in the option at fault where there is one
     */
    public record Violation(String tensor, String rule, String detail) {
        @Override
        public String toString() {
            return tensor + ": " + detail;
        }
    }

    /**
     * The rules a GPTQ export of {@code cfg} with {@code groupSize} breaks, from the shapes alone.
     *
     * @param groupSize G, or -1 for one group per row
     * @param tpSizes the tensor-parallel sizes the checkpoint must load at (--tp)
     * @throws InputException for a group size or tp that is not positive (G may be -1)
     */
    public static List<Violation> checkPlanned(ModelConfig cfg, int groupSize, List<Integer> tpSizes) {
        requireOptions(groupSize, tpSizes);
        Violations out = new Violations(false);
        Map<String, long[]> shapes = cfg.expectedShapes();
        for (int layer = 0; layer < cfg.numLayers(); layer++) {
            for (String linear : cfg.arch().linears()) {
                long[] shape = shapes.get(cfg.arch().module(layer, linear) + ".weight");
                shapeRules(out, cfg.arch().module(layer, linear), linear, shape[0], shape[1], groupSize);
            }
        }
        tensorParallel(out, cfg, groupSize, tpSizes);
        return out.list();
    }

    /**
     * The tensor-parallel sizes from 1 to {@value #MAX_TP} at which a GPTQ export of {@code cfg} with {@code
     * groupSize} loads ({@link #checkPlanned} finds nothing); empty when a shape rule fails even unsplit.
     */
    public static List<Integer> loadableTps(ModelConfig cfg, int groupSize) {
        List<Integer> ok = new ArrayList<>();
        for (int tp = 1; tp <= MAX_TP; tp++) {
            if (checkPlanned(cfg, groupSize, List.of(tp)).isEmpty()) {
                ok.add(tp);
            }
        }
        return List.copyOf(ok);
    }

    /**
     * What a refusal ends with: "loads at --tp 1, 2, 4, 8", or "loads at no --tp from 1 to 16" when a shape rule
     * fails even unsplit.
     */
    public static String loadsAt(ModelConfig cfg, int groupSize) {
        List<Integer> ok = loadableTps(cfg, groupSize);
        if (ok.isEmpty()) {
            return "loads at no --tp from 1 to " + MAX_TP;
        }
        return "loads at --tp "
                + String.join(", ", ok.stream().map(String::valueOf).toList());
    }

    /**
     * The note for a group size Marlin lacks in the checkpoint in {@code dir} ({@link GroupSize#marlinWarning}), or
     * null: such a release loads, on a slower kernel, so this is a warning and not a violation.
     */
    public static String marlinWarning(Path dir) {
        ModelConfig cfg = configOrNull(dir);
        if (cfg == null || cfg.quantization() == null) {
            return null;
        }
        return GroupSize.marlinWarning(cfg.quantization().groupSize());
    }

    /**
     * The rules the GPTQ checkpoint in {@code dir} breaks: its {@code quantization_config} and every
     * {@code <prefix>.qweight} with its companions.
     *
     * @throws InputException when {@code dir} has no readable config.json or no readable safetensors
     */
    public static List<Violation> checkCheckpoint(Path dir, List<Integer> tpSizes) {
        requireOptions(1, tpSizes);
        Violations out = new Violations(true);
        ModelConfig cfg = configOrNull(dir);
        // vLLM's rules need the model's heads and sizes; without a complete config.json, each tensor is checked
        // as split on its own (see tensorSplit).
        boolean modelRules = cfg != null && cfg.quantization() != null;
        if (modelRules) {
            tensorParallel(out, cfg, cfg.quantization().groupSize(), tpSizes);
        }
        List<Integer> perTensorTps = modelRules ? List.of() : tpSizes;
        if (CompressedTensors.is(dir)) {
            CompressedTensors.check(dir, perTensorTps, out);
            return out.list();
        }
        QuantConfig qc = QuantConfig.read(dir, out);
        if (qc == null) {
            return out.list();
        }
        try (Checkpoint ck = Checkpoint.open(dir)) {
            List<String> prefixes = ck.names().stream()
                    .filter(n -> n.endsWith(".qweight"))
                    .map(n -> n.substring(0, n.length() - ".qweight".length()))
                    .toList();
            if (prefixes.isEmpty()) {
                out.add(dir.toString(), "qweight", "no <prefix>.qweight tensor: this is not a GPTQ checkpoint", "", 0);
            }
            for (String prefix : prefixes) {
                checkLinear(ck, prefix, qc, perTensorTps, out);
            }
            everyModule(dir, ck, ".qweight", out);
        }
        return out.list();
    }

    private static ModelConfig configOrNull(Path dir) {
        try {
            return ModelConfig.load(dir);
        } catch (InputException e) {
            return null;
        }
    }

    /**
     * Every decoder linear config.json describes is stored quantized ({@code <prefix><marker>} present); one
     * stored as a bf16 {@code .weight}, or not at all, is named. Skipped when config.json does not describe a
     * complete model (no layer count or shapes to expect); the reference forward refuses such a folder anyway.
     */
    static void everyModule(Path dir, Checkpoint ck, String marker, Violations out) {
        ModelConfig cfg;
        try {
            cfg = ModelConfig.load(dir);
        } catch (InputException e) {
            return;
        }
        for (String prefix : GptqFormat.quantizedLinears(cfg).keySet()) {
            if (ck.contains(prefix + marker)) {
                continue;
            }
            String kind = prefix.replaceAll("\\.\\d+\\.", ".*.");
            String detail = ck.contains(prefix + ".weight")
                    ? "stored unquantized (" + prefix + ".weight), but quantization_config says every decoder linear"
                            + " is 4-bit: engines would fail to load it"
                    : "missing: config.json describes " + cfg.numLayers() + " layers and no " + prefix + marker
                            + " was written";
            out.add(prefix, "module quantized", detail, kind, 0);
        }
    }

    /** The parsed {@code quantization_config}; null fields were missing or unusable (already reported). */
    private record QuantConfig(Bits bits, int groupSize, Boolean sym, Boolean descAct) {
        static QuantConfig read(Path dir, Violations out) {
            Path file = dir.resolve("config.json");
            Map<String, Object> root;
            try {
                root = Json.parseObject(Files.readString(file, StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new InputException(file + ": cannot read: " + e, e);
            } catch (JsonException e) {
                throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
            }
            String where = "config.json";
            if (!(root.get("quantization_config") instanceof Map<?, ?> qc)) {
                out.add(
                        where,
                        "quantization_config",
                        "no \"quantization_config\" object: engines would load the checkpoint as unquantized weights",
                        "",
                        0);
                return null;
            }
            Object method = qc.get("quant_method");
            if ("auto-round".equals(method)) {
                if (!"auto_round:auto_gptq".equals(qc.get("packing_format"))) {
                    out.add(
                            where,
                            "packing_format",
                            "quantization_config.packing_format is " + Json.write(qc.get("packing_format"))
                                    + "; the GPTQ layout under quant_method \"auto-round\" is \"auto_round:auto_gptq\"",
                            "",
                            0);
                }
            } else if (!"gptq".equals(method)) {
                out.add(
                        where,
                        "quant_method",
                        "quantization_config.quant_method is " + Json.write(method)
                                + "; expected \"gptq\" (or \"auto-round\" with packing_format \"auto_round:auto_gptq\")",
                        "",
                        0);
            }
            boolean gptq = "gptq".equals(method);
            if (gptq && qc.get("checkpoint_format") instanceof String f && !f.equals("gptq")) {
                out.add(
                        where,
                        "checkpoint_format",
                        "quantization_config.checkpoint_format is \"" + f + "\"; engines read only \"gptq\" (v1 zeros)",
                        "",
                        0);
            }
            Long bits = integer(qc, "bits", out);
            if (bits != null && bits != 4 && bits != 8) {
                out.add(
                        where,
                        "bits",
                        "quantization_config.bits is " + bits + "; m2q's GPTQ layouts are 4- or 8-bit",
                        "",
                        0);
                bits = null;
            }
            Long g = integer(qc, "group_size", out);
            if (g != null && g != -1 && (g <= 0 || g > Integer.MAX_VALUE)) {
                out.add(where, "group_size", "quantization_config.group_size is " + g + "; expected -1 or > 0", "", 0);
                g = null;
            }
            Boolean sym = bool(qc, "sym", true, out);
            Boolean descAct = bool(qc, "desc_act", gptq, out);
            if (descAct == null && !gptq && !qc.containsKey("desc_act")) {
                descAct = false;
            }
            return bits == null || g == null
                    ? null
                    : new QuantConfig(Bits.of((int) (long) bits), (int) (long) g, sym, descAct);
        }

        private static Long integer(Map<?, ?> qc, String key, Violations out) {
            Object v = qc.get(key);
            if (v instanceof Long l) {
                return l;
            }
            out.add("config.json", key, missingOrWrong(key, v, "an integer"), "", 0);
            return null;
        }

        private static Boolean bool(Map<?, ?> qc, String key, boolean required, Violations out) {
            Object v = qc.get(key);
            if (v instanceof Boolean b) {
                return b;
            }
            if (v != null || required) {
                out.add("config.json", key, missingOrWrong(key, v, "true or false"), "", 0);
            }
            return null;
        }

        private static String missingOrWrong(String key, Object v, String expected) {
            if (v == null) {
                return "quantization_config has no \"" + key + "\"; vLLM selects its Marlin kernel only when bits,"
                        + " group_size, sym and desc_act are all present: add it";
            }
            return "quantization_config." + key + " is " + Json.write(v) + "; expected " + expected;
        }
    }

    private static void checkLinear(Checkpoint ck, String prefix, QuantConfig qc, List<Integer> tps, Violations out) {
        String kind = prefix.replaceAll("\\.\\d+\\.", ".*.");
        TensorView qweight = ck.tensor(prefix + ".qweight");
        dtype(out, qweight, DType.I32, kind);
        int per = qc.bits().perWord();
        if (qweight.rank() != 2) {
            out.add(
                    qweight.name(),
                    "qweight shape",
                    "qweight has shape " + Arrays.toString(qweight.shape()) + "; expected [K/" + per + ", N]",
                    kind,
                    0);
            return;
        }
        long k = qweight.dim(0) * per;
        long n = qweight.dim(1);
        if (ck.contains(prefix + ".g_idx")) {
            // g_idx [K] says K whatever the width: qweight rows that fit the other width mean the config's bits
            // are not the bits the tensors were packed at (engines would read every code wrong).
            TensorView gi = ck.tensor(prefix + ".g_idx");
            Bits other = qc.bits().value() == 4 ? Bits.EIGHT : Bits.FOUR;
            if (gi.rank() == 1 && gi.dim(0) != k && gi.dim(0) == qweight.dim(0) * other.perWord()) {
                out.add(
                        qweight.name(),
                        "qweight bits",
                        "qweight has shape " + Arrays.toString(qweight.shape()) + " for K = " + gi.dim(0)
                                + " (g_idx): " + other.perWord() + " codes per word, the " + other.value()
                                + "-bit packing, but quantization_config.bits is "
                                + qc.bits().value(),
                        kind,
                        0);
                return;
            }
        }
        shapeRules(out, prefix, kind, n, k, qc.groupSize());
        tensorSplit(out, prefix, kind, n, k, qc.groupSize(), tps);
        long g = qc.groupSize() == -1 ? k : qc.groupSize();
        long groups = (k + g - 1) / g;

        TensorView qzeros =
                companion(ck, prefix, "qzeros", DType.I32, new long[] {groups, (n + per - 1) / per}, kind, out);
        if (qzeros != null && qzeros.dtype() == DType.I32 && Boolean.TRUE.equals(qc.sym())) {
            symmetricZeros(qzeros, qc.bits(), kind, out);
        }
        TensorView scales = companion(ck, prefix, "scales", DType.F16, new long[] {groups, n}, kind, out);
        if (scales != null && scales.dtype().isFloatingPoint()) {
            for (long i = 0; i < scales.numel(); i++) {
                float s = scales.getFloat(i);
                if (!Float.isFinite(s)) {
                    out.add(
                            scales.name(),
                            "scales finite",
                            "scales[" + i / n + ", " + i % n + "] is " + s + "; every scale must be finite",
                            kind,
                            0);
                    break;
                }
            }
        }
        TensorView gIdx = companion(ck, prefix, "g_idx", DType.I32, new long[] {k}, kind, out);
        if (gIdx != null && gIdx.dtype() == DType.I32) {
            groupIndex(gIdx, groups, g, qc.descAct(), kind, out);
        }
        if (ck.contains(prefix + ".bias")) {
            companion(ck, prefix, "bias", DType.F16, new long[] {n}, kind, out);
        }
    }

    /** The companion tensor when present with the right shape (of any dtype: callers check before reading), else null. */
    private static TensorView companion(
            Checkpoint ck, String prefix, String suffix, DType dtype, long[] shape, String kind, Violations out) {
        String name = prefix + "." + suffix;
        if (!ck.contains(name)) {
            out.add(name, suffix + " missing", "missing; every qweight needs " + suffix, kind, 0);
            return null;
        }
        TensorView t = ck.tensor(name);
        dtype(out, t, dtype, kind);
        if (!Arrays.equals(t.shape(), shape)) {
            out.add(
                    name,
                    suffix + " shape",
                    "shape " + Arrays.toString(t.shape()) + "; qweight implies " + Arrays.toString(shape),
                    kind,
                    0);
            return null;
        }
        return t;
    }

    private static void dtype(Violations out, TensorView t, DType expected, String kind) {
        if (t.dtype() == expected) {
            return;
        }
        String suffix = t.name().substring(t.name().lastIndexOf('.') + 1);
        out.add(
                t.name(),
                suffix + " dtype",
                "dtype " + t.dtype() + "; the GPTQ layout stores " + suffix + " as " + expected,
                kind,
                0);
    }

    private static void symmetricZeros(TensorView qzeros, Bits bits, String kind, Violations out) {
        int v1 = GptqPacking.symmetricZerosWord(bits);
        int v2 = v2SymZeros(bits);
        String v1Hex = String.format("0x%08X", v1);
        long bad = 0;
        long firstBad = -1;
        boolean allV2 = true;
        for (long i = 0; i < qzeros.numel(); i++) {
            int w = qzeros.getInt(i);
            if (w != v1) {
                bad++;
                firstBad = firstBad < 0 ? i : firstBad;
                allV2 &= w == v2;
            }
        }
        if (bad == 0) {
            return;
        }
        long cols = qzeros.dim(1);
        if (allV2) {
            out.add(
                    qzeros.name(),
                    "sym zeros v1",
                    bad + " of " + qzeros.numel() + " words are " + String.format("0x%08X", v2) + ": zero "
                            + bits.zero() + " stored as is (the v2 convention) under a \"gptq\" label, where engines"
                            + " add 1 back; v1 stores zero − 1, so every word must be " + v1Hex,
                    kind,
                    0);
        } else {
            out.add(
                    qzeros.name(),
                    "sym zeros v1",
                    "qzeros[" + firstBad / cols + ", " + firstBad % cols + "] is 0x"
                            + String.format("%08X", qzeros.getInt(firstBad)) + " (" + bad
                            + " words differ); with sym every"
                            + " word is " + v1Hex + " at bits " + bits.value(),
                    kind,
                    0);
        }
    }

    private static void groupIndex(TensorView gIdx, long groups, long g, Boolean descAct, String kind, Violations out) {
        for (long k = 0; k < gIdx.numel(); k++) {
            int v = gIdx.getInt(k);
            if (v < 0 || v >= groups) {
                out.add(
                        gIdx.name(),
                        "g_idx range",
                        "g_idx[" + k + "] = " + v + " is outside [0, " + groups + ") (K/G groups)",
                        kind,
                        0);
                return;
            }
        }
        if (Boolean.FALSE.equals(descAct)) {
            for (long k = 0; k < gIdx.numel(); k++) {
                if (gIdx.getInt(k) != k / g) {
                    out.add(
                            gIdx.name(),
                            "g_idx order",
                            "g_idx[" + k + "] = " + gIdx.getInt(k) + ", but desc_act is"
                                    + " false, which needs g_idx[k] = k / " + g + " = " + k / g
                                    + "; write desc_act: true for reordered groups",
                            kind,
                            0);
                    return;
                }
            }
        }
    }

    /** The unsplit divisibility rules of W[n, k] (see the class comment); {@code g} is -1 for one group per row. */
    static void shapeRules(Violations out, String module, String kind, long n, long k, int g) {
        if (g > 0 && k % g != 0) {
            out.add(module, "K % G", "K = " + k + " is not divisible by group size " + g, kind, 0);
        } else if (k % TILE_K != 0) {
            out.add(module, "K % 128", "K = " + k + " is not divisible by the Marlin tile " + TILE_K, kind, 0);
        }
        if (n % TILE_N != 0) {
            out.add(module, "N % 64", "N = " + n + " is not divisible by the Marlin tile " + TILE_N, kind, 0);
        }
    }

    /**
     * The fallback when config.json does not describe the model (so {@link #tensorParallel} cannot run): each
     * tensor W[n, k] split on its own, column-parallel along N (N % tp, N/tp % 64) or, for o_proj and down_proj,
     * row-parallel along K (K % tp, K/tp % G, K/tp % 128).
     */
    static void tensorSplit(Violations out, String module, String kind, long n, long k, int g, List<Integer> tps) {
        Proj p = Proj.ofModule(module);
        boolean row = p != null && p.rowParallel();
        for (int tp : tps) {
            if (tp == 1) {
                continue;
            }
            String at = " at --tp " + tp;
            if (!row) {
                if (n % tp != 0) {
                    out.add(module, "N % tp", "N = " + n + " is not divisible by " + tp + at, kind, tp);
                } else if (n / tp % TILE_N != 0) {
                    out.add(
                            module,
                            "N/tp % 64",
                            "N/tp = " + n + "/" + tp + " = " + n / tp + " is not divisible by the Marlin tile " + TILE_N
                                    + at,
                            kind,
                            tp);
                }
            } else if (k % tp != 0) {
                out.add(module, "K % tp", "K = " + k + " is not divisible by " + tp + at, kind, tp);
            } else if (g > 0 && k / tp % g != 0) {
                out.add(
                        module,
                        "K/tp % G",
                        "K/tp = " + k + "/" + tp + " = " + k / tp + " is not divisible by group size " + g + at,
                        kind,
                        tp);
            } else if (k / tp % TILE_K != 0) {
                out.add(
                        module,
                        "K/tp % 128",
                        "K/tp = " + k + "/" + tp + " = " + k / tp + " is not divisible by the Marlin tile " + TILE_K
                                + at,
                        kind,
                        tp);
            }
        }
    }

    /** vLLM's tensor-parallel rules for {@code cfg} at each tp &gt; 1 (see the class comment). */
    static void tensorParallel(Violations out, ModelConfig cfg, int g, List<Integer> tps) {
        String layers = cfg.arch().layerPrefix() + "*.";
        long heads = cfg.numHeads();
        long kv = cfg.numKvHeads();
        long d = cfg.headDim();
        long inter = cfg.intermediateSize();
        for (int tp : tps) {
            if (tp == 1) {
                continue;
            }
            String at = " at --tp " + tp;
            String attn = layers + "self_attn";
            boolean headsSplit = true;
            if (heads % tp != 0) {
                out.add(
                        attn,
                        "heads % tp",
                        "num_attention_heads = " + heads + " is not divisible by " + tp + at
                                + " (vLLM gives every rank the same number of query heads)",
                        "attn",
                        tp);
                headsSplit = false;
            }
            if (kv >= tp && kv % tp != 0) {
                out.add(
                        attn,
                        "kv heads % tp",
                        "num_key_value_heads = " + kv + " is not divisible by " + tp + at
                                + " (vLLM splits KV heads evenly when tp ≤ KV heads)",
                        "attn",
                        tp);
                headsSplit = false;
            } else if (kv < tp && tp % kv != 0) {
                out.add(
                        attn,
                        "tp % kv heads",
                        "--tp " + tp + " is not a multiple of num_key_value_heads = " + kv
                                + " (vLLM replicates KV heads only a whole number of times)",
                        "attn",
                        tp);
                headsSplit = false;
            }
            if (headsSplit) {
                long qkv = (heads / tp + 2 * Math.max(1, kv / tp)) * d;
                if (qkv % TILE_N != 0) {
                    out.add(
                            attn + ".{q,k,v}_proj",
                            "qkv N/tp % 64",
                            "the fused q/k/v output per rank, (" + heads + "/"
                                    + tp + " + 2·" + Math.max(1, kv / tp) + ")·" + d + " = " + qkv
                                    + ", is not divisible by the Marlin tile " + TILE_N + at,
                            "attn",
                            tp);
                }
                rowRule(out, attn + ".o_proj", heads * d, tp, g, "o_proj");
            }
            String mlp = layers + "mlp";
            if (inter % tp != 0) {
                out.add(
                        mlp,
                        "intermediate % tp",
                        "intermediate_size = " + inter + " is not divisible by " + tp + at,
                        "mlp",
                        tp);
            } else {
                if (2 * inter / tp % TILE_N != 0) {
                    out.add(
                            mlp + ".{gate,up}_proj",
                            "gate_up N/tp % 64",
                            "the fused gate/up output per rank, 2·"
                                    + inter + "/" + tp + " = " + 2 * inter / tp
                                    + ", is not divisible by the Marlin tile "
                                    + TILE_N + at,
                            "mlp",
                            tp);
                }
                rowRule(out, mlp + ".down_proj", inter, tp, g, "down_proj");
            }
        }
    }

    /** A row-parallel linear with K input channels split over tp ranks: K % tp, K/tp % G (G &gt; 0), K/tp % 128. */
    private static void rowRule(Violations out, String module, long k, int tp, int g, String kind) {
        String at = " at --tp " + tp;
        if (k % tp != 0) {
            out.add(module, "K % tp", "K = " + k + " is not divisible by " + tp + at, kind, tp);
        } else if (g > 0 && k / tp % g != 0) {
            out.add(
                    module,
                    "K/tp % G",
                    "K/tp = " + k + "/" + tp + " = " + k / tp + " is not divisible by group size " + g + at,
                    kind,
                    tp);
        } else if (k / tp % TILE_K != 0) {
            out.add(
                    module,
                    "K/tp % 128",
                    "K/tp = " + k + "/" + tp + " = " + k / tp + " is not divisible by the Marlin tile " + TILE_K + at,
                    kind,
                    tp);
        }
    }

    private static void requireOptions(int groupSize, List<Integer> tpSizes) {
        if (groupSize <= 0 && groupSize != -1) {
            throw new InputException("--group-size " + groupSize + ": must be positive, or -1 for one group per row");
        }
        for (int tp : tpSizes) {
            if (tp <= 0) {
                throw new InputException("--tp " + tp + ": tensor-parallel sizes must be positive, e.g. --tp 1,2,4,8");
            }
        }
    }

    /** Violations kept once per (module kind, rule, tp), with a count of the further tensors that repeat one. */
    static final class Violations {
        private final Map<String, Violation> first = new LinkedHashMap<>();
        private final Map<String, Integer> repeats = new LinkedHashMap<>();
        private final boolean countRepeats;

        /** {@code countRepeats}: append "(and n more)" to a violation other tensors repeat. */
        Violations(boolean countRepeats) {
            this.countRepeats = countRepeats;
        }

        void add(String tensor, String rule, String detail, String kind, int tp) {
            String key = kind + "\u0000" + rule + "\u0000" + tp;
            if (first.putIfAbsent(key, new Violation(tensor, rule, detail)) != null) {
                repeats.merge(key, 1, Integer::sum);
            }
        }

        List<Violation> list() {
            List<Violation> out = new ArrayList<>();
            for (Map.Entry<String, Violation> e : first.entrySet()) {
                Violation v = e.getValue();
                Integer more = repeats.get(e.getKey());
                out.add(
                        countRepeats && more != null
                                ? new Violation(v.tensor(), v.rule(), v.detail() + " (and " + more + " more like it)")
                                : v);
            }
            return List.copyOf(out);
        }
    }
}
