package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.quant.GptqLayoutCheck.Violation;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
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

/**
 * {@code inspect --check} on 8-bit GPTQ and compressed-tensors checkpoints (docs/FORMATS-8BIT.md): a well-formed one
 * passes, and each broken rule (qzeros not 0x7F7F7F7F, v2 zeros 0x80808080, a config saying 4 bits on 8-bit
 * tensors) is one violation naming the tensor.
 */
class EightBitLayoutCheckTest {
    static final String Q = GptqLayoutCheckTest.Q;
    static final String DOWN = GptqLayoutCheckTest.DOWN;
    static final int K = GptqLayoutCheckTest.K;
    static final int G = GptqLayoutCheckTest.G;

    @TempDir
    Path tmp;

    /** One 8-bit GPTQ linear W[n, K]: random codes 0..255 packed four per word by the writer's packer. */
    static void gptqLinear(Map<String, TensorView> out, String prefix, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] codes = r.ints((long) K * n, 0, 256).toArray();
        float[] scales = new float[K / G * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = Float.float16ToFloat(Float.floatToFloat16((float) (0.0005 + 0.001 * r.nextDouble())));
        }
        QuantizedLinear q = new QuantizedLinear(n, K, G, codes, scales, GptqPacking.gIdxSequential(K, G), Bits.EIGHT);
        GptqFormat.Packed p = GptqFormat.pack(prefix, q);
        out.put(prefix + ".qweight", GptqLayoutCheckTest.ints(prefix + ".qweight", new long[] {K / 4, n}, p.qweight()));
        out.put(
                prefix + ".qzeros",
                GptqLayoutCheckTest.ints(prefix + ".qzeros", new long[] {K / G, n / 4}, p.qzeros()));
        out.put(
                prefix + ".scales",
                GptqLayoutCheckTest.floats(
                        prefix + ".scales", DType.F16, new long[] {K / G, n}, GptqPacking.scalesFromF16(p.scales())));
        out.put(prefix + ".g_idx", GptqLayoutCheckTest.ints(prefix + ".g_idx", new long[] {K}, p.gIdx()));
    }

    List<Violation> checkGptq(Consumer<Map<String, Object>> editConfig, Consumer<Map<String, TensorView>> corrupt)
            throws IOException {
        Map<String, TensorView> tensors = new LinkedHashMap<>();
        gptqLinear(tensors, Q, 128, 1);
        gptqLinear(tensors, DOWN, 64, 2);
        corrupt.accept(tensors);
        Map<String, Object> qc = GptqLayoutCheckTest.gptqConfig();
        qc.put("bits", 8L);
        editConfig.accept(qc);
        return write(qc, tensors);
    }

    private List<Violation> write(Map<String, Object> qc, Map<String, TensorView> tensors) throws IOException {
        Path dir = Files.createTempDirectory(tmp, "ckpt");
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("architectures", List.of("Qwen2ForCausalLM"));
        config.put("quantization_config", qc);
        Files.writeString(dir.resolve("config.json"), Json.write(config));
        SafetensorsWriter.writeFile(
                dir.resolve("model.safetensors"), new ArrayList<>(tensors.values()), Map.of("format", "pt"));
        return GptqLayoutCheck.checkCheckpoint(dir, List.of(1, 2));
    }

    @Test
    void wellFormedEightBitGptqPasses() throws IOException {
        assertEquals(List.of(), checkGptq(qc -> {}, t -> {}));
        // The same tensors under AutoRound's label.
        assertEquals(
                List.of(),
                checkGptq(
                        qc -> {
                            qc.clear();
                            qc.put("quant_method", "auto-round");
                            qc.put("packing_format", "auto_round:auto_gptq");
                            qc.put("bits", 8L);
                            qc.put("group_size", (long) G);
                            qc.put("sym", true);
                        },
                        t -> {}));
    }

    @Test
    void fourBitZerosOnAnEightBitReleaseAreNamed() throws IOException {
        // 0x77777777 is the 4-bit word: at 8 bits it is zero 0x78 = 120 per byte, eight steps off.
        List<Violation> vs = checkGptq(qc -> {}, t -> {
            int[] z = new int[K / G * 64 / 4];
            Arrays.fill(z, 0x7F7F7F7F);
            z[5] = 0x77777777;
            t.put(DOWN + ".qzeros", GptqLayoutCheckTest.ints(DOWN + ".qzeros", new long[] {K / G, 64 / 4}, z));
        });
        GptqLayoutCheckTest.assertOne(
                vs, DOWN + ".qzeros", "sym zeros v1", "qzeros[0, 5] is 0x77777777 (1 words differ)");
        assertTrue(vs.getFirst().toString().contains("0x7F7F7F7F at bits 8"), vs.toString());
        GptqLayoutCheckTest.assertOne(
                checkGptq(qc -> {}, t -> {
                    int[] z = new int[K / G * 128 / 4];
                    Arrays.fill(z, 0x80808080);
                    t.put(Q + ".qzeros", GptqLayoutCheckTest.ints(Q + ".qzeros", new long[] {K / G, 128 / 4}, z));
                }),
                Q + ".qzeros",
                "sym zeros v1",
                "64 of 64 words are 0x80808080: zero 128 stored as is (the v2 convention)");
    }

    @Test
    void aFourBitConfigOnEightBitTensorsNamesTheTensor() throws IOException {
        List<Violation> vs = checkGptq(qc -> qc.put("bits", 4L), t -> {});
        assertEquals(2, vs.size(), vs.toString());
        assertEquals(Q + ".qweight", vs.get(0).tensor());
        assertEquals("qweight bits", vs.get(0).rule());
        assertTrue(
                vs.get(0)
                        .toString()
                        .contains("[64, 128] for K = 256 (g_idx): 4 codes per word, the 8-bit packing, but"
                                + " quantization_config.bits is 4"),
                vs.toString());
        assertEquals(DOWN + ".qweight", vs.get(1).tensor());
    }

    /** One 8-bit compressed-tensors linear W[n, K] as the writer lays it out. */
    static void ctLinear(Map<String, TensorView> out, String prefix, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] codes = r.ints((long) K * n, 0, 256).toArray();
        float[] scales = new float[K / G * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = dev.m2q.core.tensor.Bf16.round((float) (0.0005 + 0.001 * r.nextDouble()));
        }
        QuantizedLinear q = new QuantizedLinear(n, K, G, codes, scales, GptqPacking.gIdxSequential(K, G), Bits.EIGHT);
        out.put(
                prefix + ".weight_packed",
                GptqLayoutCheckTest.ints(
                        prefix + ".weight_packed", new long[] {n, K / 4}, CompressedTensorsFormat.packRows(q)));
        float[] transposed = new float[n * (K / G)];
        for (int g = 0; g < K / G; g++) {
            for (int c = 0; c < n; c++) {
                transposed[c * (K / G) + g] = scales[g * n + c];
            }
        }
        out.put(
                prefix + ".weight_scale",
                GptqLayoutCheckTest.floats(prefix + ".weight_scale", DType.F32, new long[] {n, K / G}, transposed));
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putLong(n).putLong(K);
        out.put(
                prefix + ".weight_shape",
                new TensorView(
                        prefix + ".weight_shape",
                        DType.I64,
                        new long[] {2},
                        java.lang.foreign.MemorySegment.ofArray(b.array())));
    }

    List<Violation> checkCt(int numBits) throws IOException {
        Map<String, TensorView> tensors = new LinkedHashMap<>();
        ctLinear(tensors, Q, 128, 3);
        ctLinear(tensors, DOWN, 64, 4);
        Map<String, Object> qc = Json.parseObject(
                Json.write(CompressedTensorsFormat.quantizationConfig(G, QuantScheme.W4A16, null, Bits.of(numBits))));
        return write(qc, tensors);
    }

    @Test
    void compressedTensorsEightBitPassesAndAFourBitConfigNamesWeightPacked() throws IOException {
        assertEquals(List.of(), checkCt(8));
        List<Violation> vs = checkCt(4);
        assertEquals(2, vs.size(), vs.toString());
        // The checker visits the prefixes sorted: mlp before self_attn.
        assertEquals(DOWN + ".weight_packed", vs.get(0).tensor());
        assertEquals(Q + ".weight_packed", vs.get(1).tensor());
        assertEquals("weight_packed bits", vs.get(0).rule());
        assertTrue(
                vs.get(0).toString().contains("the 8-bit packing, but the config's weights num_bits is 4"),
                vs.toString());
    }
}
