package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ArchSpec;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.RopeScaling;
import dev.m2q.core.quant.GptqLayoutCheck.Violation;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GptqLayoutCheckTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    @TempDir
    Path tmp;

    static List<String> lines(List<Violation> vs) {
        return vs.stream().map(Violation::toString).toList();
    }

    @Test
    void fixtureShapesLoadAtTp1And2ButNot8() {
        // hidden 256, 4 heads / 2 KV heads of 64, intermediate 768, G = 128.
        ModelConfig cfg = ModelConfig.load(FIXTURE);
        assertEquals(List.of(), GptqLayoutCheck.checkPlanned(cfg, 128, List.of(1, 2)));
        // tp 8: 4 heads cannot be split 8 ways (so the attention's per-rank widths are not checked further);
        // the MLP splits (768/8 = 96, fused gate/up 192 = 3·64) but down_proj's K/tp = 96 is not a whole group.
        assertEquals(
                List.of(
                        "model.layers.*.self_attn: num_attention_heads = 4 is not divisible by 8 at --tp 8 (vLLM"
                                + " gives every rank the same number of query heads)",
                        "model.layers.*.mlp.down_proj: K/tp = 768/8 = 96 is not divisible by group size 128 at --tp 8"),
                lines(GptqLayoutCheck.checkPlanned(cfg, 128, List.of(1, 2, 8))));
        List<Violation> v = GptqLayoutCheck.checkPlanned(cfg, 128, List.of(8));
        assertEquals("heads % tp", v.getFirst().rule());
        assertEquals("K/tp % G", v.get(1).rule());
        // G = -1 (one group per row) has no group rules; Marlin's tiles still hold at tp 2.
        assertEquals(List.of(), GptqLayoutCheck.checkPlanned(cfg, -1, List.of(1, 2)));
        // G = 32 passes the group rule at tp 4 (o_proj K/tp = 256/4 = 64, down_proj 768/4 = 192 = 6·32) but not
        // Marlin's K tile (192 = 1.5·128); the KV heads (2 < 4) are replicated twice, so the fused q/k/v per rank,
        // (1 + 2·1)·64 = 192 = 3·64, passes.
        assertEquals(
                List.of(
                        "model.layers.*.self_attn.o_proj: K/tp = 256/4 = 64 is not divisible by the Marlin tile 128"
                                + " at --tp 4",
                        "model.layers.*.mlp.down_proj: K/tp = 768/4 = 192 is not divisible by the Marlin tile 128"
                                + " at --tp 4"),
                lines(GptqLayoutCheck.checkPlanned(cfg, 32, List.of(4))));
        // tp 3 breaks heads % tp; tp 4 and up break o_proj's K/tp % 128 (or heads): only 1 and 2 load.
        assertEquals(List.of(1, 2), GptqLayoutCheck.loadableTps(cfg, 128));
        assertEquals(List.of(1, 2), GptqLayoutCheck.loadableTps(cfg, -1));
        assertEquals("loads at --tp 1, 2", GptqLayoutCheck.loadsAt(cfg, 128));
        // G = 96 does not divide K = 256 even unsplit: no tp helps.
        assertEquals(List.of(), GptqLayoutCheck.loadableTps(cfg, 96));
        assertEquals("loads at no --tp from 1 to 16", GptqLayoutCheck.loadsAt(cfg, 96));
    }

    /** Qwen2.5-32B: 64 layers, hidden 5120, intermediate 27648, 40 query heads / 8 KV heads of 128. */
    static ModelConfig qwen25_32b() {
        return new ModelConfig(
                ArchSpec.forArchitecture("Qwen2ForCausalLM"),
                5120,
                27648,
                64,
                40,
                8,
                128,
                1e-6,
                1e6,
                RopeScaling.NONE,
                32768,
                152064,
                false,
                true,
                "bfloat16",
                null);
    }

    /** Llama-3-8B: 32 layers, hidden 4096, intermediate 14336, 32 query heads / 8 KV heads of 128. */
    static ModelConfig llama3_8b() {
        return new ModelConfig(
                ArchSpec.forArchitecture("LlamaForCausalLM"),
                4096,
                14336,
                32,
                32,
                8,
                128,
                1e-5,
                5e5,
                RopeScaling.NONE,
                8192,
                128256,
                false,
                false,
                "bfloat16",
                null);
    }

    @Test
    void qwen25_32bLoadsAtTp1To8() {
        ModelConfig cfg = qwen25_32b();
        // Among 1..16, 40 heads divide only by 1, 2, 4, 5, 8, 10. tp 5: 8 KV heads ≥ 5 but 8 % 5 != 0. tp 10: more
        // ranks than KV heads, but 10 is not a multiple of 8, so they cannot be replicated evenly. At tp 2, 4, 8
        // everything divides: fused q/k/v per rank (20 + 2·4)·128, (10 + 2·2)·128, (5 + 2·1)·128 = 896 = 14·64;
        // o_proj K/tp = 2560, 1280, 640 = 5·128; intermediate/tp = 13824, 6912, 3456 = 27·128 (down_proj K/tp,
        // a multiple of G = 128 too) and fused gate/up 2·3456 = 108·64. With G = -1 only the group rules go, and
        // none of them was the binding one, so the list is the same.
        assertEquals(List.of(1, 2, 4, 8), GptqLayoutCheck.loadableTps(cfg, 128));
        assertEquals(List.of(1, 2, 4, 8), GptqLayoutCheck.loadableTps(cfg, -1));
        assertEquals(List.of(), GptqLayoutCheck.checkPlanned(cfg, 128, List.of(1, 2, 4, 8)));
        // tp 16: 40 % 16 != 0 (vLLM refuses the attention), and down_proj's K/tp = 1728 = 13.5·128.
        assertEquals(
                List.of(
                        "model.layers.*.self_attn: num_attention_heads = 40 is not divisible by 16 at --tp 16 (vLLM"
                                + " gives every rank the same number of query heads)",
                        "model.layers.*.mlp.down_proj: K/tp = 27648/16 = 1728 is not divisible by group size 128 at"
                                + " --tp 16"),
                lines(GptqLayoutCheck.checkPlanned(cfg, 128, List.of(16))));
        // tp 10: the heads split (4 per rank) but 8 KV heads cannot be replicated over 10 ranks.
        assertEquals(
                List.of("kv heads % tp", "tp % kv heads"),
                GptqLayoutCheck.checkPlanned(cfg, 128, List.of(5, 10)).stream()
                        .map(Violation::rule)
                        .filter(r -> r.contains("kv"))
                        .toList());
        assertEquals("loads at --tp 1, 2, 4, 8", GptqLayoutCheck.loadsAt(cfg, 128));
    }

    @Test
    void llama3_8bLoadsAtTp16WithReplicatedKvHeads() {
        ModelConfig cfg = llama3_8b();
        // 32 heads divide by 1, 2, 4, 8, 16. tp ≤ 8: 8 KV heads split evenly. tp 16: 16 % 8 == 0, so vLLM keeps
        // each KV head on 16/8 = 2 ranks; each rank holds 2 query heads and 1 KV head: fused q/k/v (2 + 2·1)·128 =
        // 512 = 8·64. o_proj K/tp = 4096/16 = 256 = 2·128; intermediate/tp = 14336/16 = 896 = 7·128 (down_proj
        // K/tp, a multiple of G = 128), fused gate/up 1792 = 28·64. Every other tp in 1..16 breaks heads % tp.
        assertEquals(List.of(1, 2, 4, 8, 16), GptqLayoutCheck.loadableTps(cfg, 128));
        assertEquals(List.of(1, 2, 4, 8, 16), GptqLayoutCheck.loadableTps(cfg, -1));
        assertEquals(List.of(), GptqLayoutCheck.checkPlanned(cfg, 128, List.of(16)));
        // A 40/8-head variant of the same sizes is refused at 16 for its heads alone.
        ModelConfig heads40 = new ModelConfig(
                cfg.arch(),
                5120,
                14336,
                1,
                40,
                8,
                128,
                1e-5,
                5e5,
                RopeScaling.NONE,
                8192,
                128256,
                false,
                false,
                "bfloat16",
                null);
        assertEquals(
                List.of("heads % tp"),
                GptqLayoutCheck.checkPlanned(heads40, 128, List.of(16)).stream()
                        .map(Violation::rule)
                        .toList());
    }

    @Test
    void rowParallelGroupRuleFollowsTheGroupSize() {
        // down_proj K = 14336 at tp 8: K/tp = 1792 = 7·256 = 14·128, so G = 256 passes; G = 512 does not
        // (1792 = 3.5·512), while G = -1 keeps every rank's scales whole and has no such rule.
        ModelConfig cfg = llama3_8b();
        assertEquals(List.of(), GptqLayoutCheck.checkPlanned(cfg, 256, List.of(8)));
        assertEquals(
                List.of("model.layers.*.mlp.down_proj: K/tp = 14336/8 = 1792 is not divisible by group size 512 at"
                        + " --tp 8"),
                lines(GptqLayoutCheck.checkPlanned(cfg, 512, List.of(8))));
        assertEquals(List.of(), GptqLayoutCheck.checkPlanned(cfg, -1, List.of(8)));
    }

    @Test
    void badOptionsAreRefused() {
        ModelConfig cfg = ModelConfig.load(FIXTURE);
        assertTrue(assertThrows(InputException.class, () -> GptqLayoutCheck.checkPlanned(cfg, 0, List.of(1)))
                .getMessage()
                .startsWith("--group-size 0"));
        assertTrue(assertThrows(InputException.class, () -> GptqLayoutCheck.checkPlanned(cfg, 128, List.of(0)))
                .getMessage()
                .startsWith("--tp 0"));
    }

    // A synthetic checkpoint: q_proj W[128, 256] (column-parallel, with bias) and down_proj W[64, 256]
    // (row-parallel), G = 128, symmetric v1 zeros.
    static final String Q = "model.layers.0.self_attn.q_proj";
    static final String DOWN = "model.layers.0.mlp.down_proj";
    static final int K = 256;
    static final int G = 128;

    static Map<String, Object> gptqConfig() {
        Map<String, Object> qc = new LinkedHashMap<>();
        qc.put("quant_method", "gptq");
        qc.put("bits", 4L);
        qc.put("group_size", (long) G);
        qc.put("sym", true);
        qc.put("desc_act", false);
        qc.put("checkpoint_format", "gptq");
        return qc;
    }

    static TensorView ints(String name, long[] shape, int[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(v);
        return new TensorView(name, DType.I32, shape, MemorySegment.ofArray(b.array()));
    }

    static TensorView floats(String name, DType dtype, long[] shape, float[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * dtype.bytes()).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            if (dtype == DType.F16) {
                b.putShort(Float.floatToFloat16(f));
            } else {
                b.putFloat(f);
            }
        }
        return new TensorView(name, dtype, shape, MemorySegment.ofArray(b.array()));
    }

    /** The tensors of one GPTQ linear W[n, K]: codes drawn from {@code seed}, packed per FORMATS §2. */
    static void linear(Map<String, TensorView> out, String prefix, int n, boolean bias, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] q = new int[K * n]; // [K, n] codes
        for (int i = 0; i < q.length; i++) {
            q[i] = r.nextInt(16);
        }
        int[] qweight = new int[K / 8 * n];
        for (int row = 0; row < K / 8; row++) {
            for (int c = 0; c < n; c++) {
                int word = 0;
                for (int j = 0; j < 8; j++) {
                    word |= q[(8 * row + j) * n + c] << (4 * j);
                }
                qweight[row * n + c] = word;
            }
        }
        int[] qzeros = new int[K / G * n / 8];
        Arrays.fill(qzeros, 0x77777777);
        float[] scales = new float[K / G * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) (0.001 + 0.01 * r.nextDouble());
        }
        int[] gIdx = new int[K];
        for (int k = 0; k < K; k++) {
            gIdx[k] = k / G;
        }
        out.put(prefix + ".qweight", ints(prefix + ".qweight", new long[] {K / 8, n}, qweight));
        out.put(prefix + ".qzeros", ints(prefix + ".qzeros", new long[] {K / G, n / 8}, qzeros));
        out.put(prefix + ".scales", floats(prefix + ".scales", DType.F16, new long[] {K / G, n}, scales));
        out.put(prefix + ".g_idx", ints(prefix + ".g_idx", new long[] {K}, gIdx));
        if (bias) {
            out.put(prefix + ".bias", floats(prefix + ".bias", DType.F16, new long[] {n}, new float[n]));
        }
    }

    /** Writes the synthetic checkpoint after {@code corrupt} edits its config and tensors; returns its violations. */
    List<Violation> check(Consumer<Map<String, Object>> editConfig, Consumer<Map<String, TensorView>> corrupt)
            throws IOException {
        Path dir = Files.createTempDirectory(tmp, "gptq");
        Map<String, TensorView> tensors = new LinkedHashMap<>();
        linear(tensors, Q, 128, true, 1);
        linear(tensors, DOWN, 64, false, 2);
        corrupt.accept(tensors);
        Map<String, Object> qc = gptqConfig();
        editConfig.accept(qc);
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("architectures", List.of("Qwen2ForCausalLM"));
        config.put("quantization_config", qc);
        Files.writeString(dir.resolve("config.json"), Json.write(config));
        SafetensorsWriter.writeFile(
                dir.resolve("model.safetensors"), new ArrayList<>(tensors.values()), Map.of("format", "pt"));
        return GptqLayoutCheck.checkCheckpoint(dir, List.of(1, 2));
    }

    /** Asserts exactly one violation, of {@code rule} on {@code tensor}, whose text contains {@code text}. */
    static void assertOne(List<Violation> vs, String tensor, String rule, String text) {
        assertEquals(1, vs.size(), vs.toString());
        assertEquals(tensor, vs.getFirst().tensor());
        assertEquals(rule, vs.getFirst().rule());
        assertTrue(vs.getFirst().toString().contains(text), vs.getFirst().toString());
    }

    @Test
    void wellFormedCheckpointPasses() throws IOException {
        assertEquals(List.of(), check(qc -> {}, t -> {}));
        assertEquals(
                List.of(),
                check(
                        qc -> {
                            qc.clear();
                            qc.put("quant_method", "auto-round");
                            qc.put("packing_format", "auto_round:auto_gptq");
                            qc.put("bits", 4L);
                            qc.put("group_size", (long) G);
                            qc.put("sym", true);
                        },
                        t -> {}));
    }

    @Test
    void v2ZerosUnderAGptqLabelAreNamed() throws IOException {
        assertOne(
                check(qc -> {}, t -> {
                    int[] z = new int[K / G * 128 / 8];
                    Arrays.fill(z, 0x88888888);
                    t.put(Q + ".qzeros", ints(Q + ".qzeros", new long[] {K / G, 128 / 8}, z));
                }),
                Q + ".qzeros",
                "sym zeros v1",
                "32 of 32 words are 0x88888888: zero 8 stored as is (the v2 convention)");
        assertOne(
                check(qc -> {}, t -> {
                    int[] z = new int[K / G * 64 / 8];
                    Arrays.fill(z, 0x77777777);
                    z[9] = 0x77777787;
                    t.put(DOWN + ".qzeros", ints(DOWN + ".qzeros", new long[] {K / G, 64 / 8}, z));
                }),
                DOWN + ".qzeros",
                "sym zeros v1",
                "qzeros[1, 1] is 0x77777787 (1 words differ)");
    }

    @Test
    void wrongScaleDtypeIsNamed() throws IOException {
        assertOne(
                check(
                        qc -> {},
                        t -> t.put(
                                DOWN + ".scales",
                                floats(DOWN + ".scales", DType.F32, new long[] {K / G, 64}, new float[K / G * 64]))),
                DOWN + ".scales",
                "scales dtype",
                DOWN + ".scales: dtype F32; the GPTQ layout stores scales as F16");
    }

    @Test
    void missingDescActIsNamed() throws IOException {
        assertOne(
                check(qc -> qc.remove("desc_act"), t -> {}),
                "config.json",
                "desc_act",
                "config.json: quantization_config has no \"desc_act\"; vLLM selects its Marlin kernel only when");
    }

    @Test
    void groupIndexOutOfRangeOrOutOfOrderIsNamed() throws IOException {
        int[] outOfRange = new int[K];
        int[] swapped = new int[K];
        for (int k = 0; k < K; k++) {
            outOfRange[k] = k / G;
            swapped[k] = k / G;
        }
        outOfRange[5] = 2;
        swapped[5] = 1;
        swapped[200] = 0;
        assertOne(
                check(qc -> {}, t -> t.put(Q + ".g_idx", ints(Q + ".g_idx", new long[] {K}, outOfRange))),
                Q + ".g_idx",
                "g_idx range",
                "g_idx[5] = 2 is outside [0, 2) (K/G groups)");
        assertOne(
                check(qc -> {}, t -> t.put(Q + ".g_idx", ints(Q + ".g_idx", new long[] {K}, swapped))),
                Q + ".g_idx",
                "g_idx order",
                "g_idx[5] = 1, but desc_act is false, which needs g_idx[k] = k / 128 = 0");
        assertEquals(
                List.of(),
                check(
                        qc -> qc.put("desc_act", true),
                        t -> t.put(Q + ".g_idx", ints(Q + ".g_idx", new long[] {K}, swapped))));
    }

    /** Negative finite scales (AutoRound's full-range rule) are legal: engines multiply, the sign is the weight's. */
    @Test
    void negativeScalesPass() throws IOException {
        float[] s = new float[K / G * 128];
        for (int i = 0; i < s.length; i++) {
            s[i] = i % 3 == 0 ? -0.01f : 0.01f;
        }
        assertEquals(
                List.of(),
                check(
                        qc -> {},
                        t -> t.put(Q + ".scales", floats(Q + ".scales", DType.F16, new long[] {K / G, 128}, s))));
    }

    @Test
    void nonFiniteScaleIsNamed() throws IOException {
        float[] s = new float[K / G * 128];
        Arrays.fill(s, 0.01f);
        s[130] = Float.NaN;
        assertOne(
                check(
                        qc -> {},
                        t -> t.put(Q + ".scales", floats(Q + ".scales", DType.F16, new long[] {K / G, 128}, s))),
                Q + ".scales",
                "scales finite",
                "scales[1, 2] is NaN");
    }

    @Test
    void missingQzerosIsNamed() throws IOException {
        assertOne(
                check(qc -> {}, t -> t.remove(DOWN + ".qzeros")),
                DOWN + ".qzeros",
                "qzeros missing",
                DOWN + ".qzeros: missing");
    }

    @Test
    void configProblemsAreNamed() throws IOException {
        assertOne(
                check(qc -> qc.put("quant_method", "awq"), t -> {}),
                "config.json",
                "quant_method",
                "quant_method is \"awq\"");
        assertOne(check(qc -> qc.put("bits", 3L), t -> {}), "config.json", "bits", "bits is 3");
        // bits 8 on these 4-bit tensors: the qweight rows are K/8, so g_idx's K says 4-bit packing.
        List<Violation> eight = check(qc -> qc.put("bits", 8L), t -> {});
        assertEquals(2, eight.size(), eight.toString());
        assertEquals(Q + ".qweight", eight.get(0).tensor());
        assertEquals("qweight bits", eight.get(0).rule());
        assertTrue(
                eight.get(0).toString().contains("the 4-bit packing, but quantization_config.bits is 8"),
                eight.toString());
        assertEquals(DOWN + ".qweight", eight.get(1).tensor());
        assertOne(
                check(qc -> qc.put("checkpoint_format", "gptq_v2"), t -> {}),
                "config.json",
                "checkpoint_format",
                "\"gptq_v2\"");
        assertOne(
                check(qc -> qc.clear(), t -> {}).subList(0, 1), "config.json", "quant_method", "quant_method is null");
    }

    @Test
    void shapeProblemsOnDiskUseTheSameRulesOncePerModuleKind() throws IOException {
        // down_proj with K = 192 in layers 0 and 1: 192 % 128 != 0, and at tp 2 K/tp = 96 is not either.
        String down1 = "model.layers.1.mlp.down_proj";
        List<Violation> vs = check(qc -> {}, t -> {
            t.put(DOWN + ".qweight", ints(DOWN + ".qweight", new long[] {192 / 8, 64}, new int[192 / 8 * 64]));
            t.put(DOWN + ".g_idx", ints(DOWN + ".g_idx", new long[] {192}, new int[192]));
            t.put(down1 + ".qweight", ints(down1 + ".qweight", new long[] {192 / 8, 64}, new int[192 / 8 * 64]));
        });
        assertEquals(
                List.of(
                        DOWN + ": K = 192 is not divisible by group size 128 (and 1 more like it)",
                        DOWN + ": K/tp = 192/2 = 96 is not divisible by group size 128 at --tp 2 (and 1 more like it)",
                        DOWN + ".g_idx: g_idx[128] = 0, but desc_act is false, which needs g_idx[k] = k / 128 = 1;"
                                + " write desc_act: true for reordered groups",
                        down1 + ".qzeros: missing; every qweight needs qzeros",
                        down1 + ".scales: missing; every qweight needs scales",
                        down1 + ".g_idx: missing; every qweight needs g_idx"),
                lines(vs));
    }
}
