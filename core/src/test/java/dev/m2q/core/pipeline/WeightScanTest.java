package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.Rtn;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The weight scan on tiny synthetic checkpoints (one Qwen2 layer, hidden 16) with one planted bad value each, on the
 * fixture (clean), and its bit-level scanner against a plain loop.
 */
class WeightScanTest {
    static final Path FIXTURE = QuantizeJobTest.FIXTURE;

    static final String CONFIG = """
            {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
             "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "num_key_value_heads": 1, "head_dim": 8, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
             "rope_theta": 10000.0, "rope_scaling": null, "sliding_window": null, "use_sliding_window": false,
             "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32}
            """;

    /**
     * A one-layer model with seeded weights in [−0.5, 0.5) and the values in {@code planted} ("tensor" → {flat
     * index, value}, several per tensor allowed) written over them; all BF16.
     */
    static Path model(Path dir, Map<String, float[][]> planted) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), CONFIG);
        ModelConfig cfg = ModelConfig.load(dir);
        SplittableRandom r = new SplittableRandom(7);
        List<TensorView> tensors = new ArrayList<>();
        for (Map.Entry<String, long[]> e : cfg.expectedShapes().entrySet()) {
            int n = Math.toIntExact(TensorView.numel(e.getValue()));
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                v[i] = (float) (r.nextDouble() - 0.5);
            }
            for (float[] p : planted.getOrDefault(e.getKey(), new float[0][])) {
                v[(int) p[0]] = p[1];
            }
            tensors.add(bf16(e.getKey(), e.getValue(), v));
        }
        SafetensorsWriter.writeFile(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        return dir;
    }

    static TensorView bf16(String name, long[] shape, float[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putShort(Bf16.fromFloat(x));
        }
        return new TensorView(name, DType.BF16, shape, MemorySegment.ofArray(b.array()));
    }

    /** How the message prints a value stored as BF16. */
    static String g6(float x) {
        return String.format(java.util.Locale.ROOT, "%.6g", Bf16.round(x));
    }

    static String refusal(Path dir, ReleaseFormat layout) {
        return assertThrows(InputException.class, () -> WeightScan.check(dir, ModelConfig.load(dir), layout))
                .getMessage();
    }

    static void assertMentions(String message, String... parts) {
        for (String p : parts) {
            assertTrue(message.contains(p), "expected \"" + p + "\" in: " + message);
        }
    }

    @Test
    void cleanModelsPass(@TempDir Path tmp) throws IOException {
        Path clean = model(tmp.resolve("clean"), Map.of());
        ModelConfig cfg = ModelConfig.load(clean);
        for (ReleaseFormat layout : List.of(GptqRelease.GPTQ, CompressedTensorsRelease.NO_ACT_ORDER)) {
            WeightScan.Result r = WeightScan.check(clean, cfg, layout);
            assertEquals(cfg.expectedShapes().size(), r.tensors());
            assertTrue(r.bytes() > 0 && r.bytes() < Files.size(clean.resolve("model.safetensors")));
        }
        ModelConfig fixture = ModelConfig.load(FIXTURE);
        WeightScan.Result f = WeightScan.check(FIXTURE, fixture, GptqRelease.GPTQ);
        assertEquals(fixture.expectedShapes().size(), f.tensors());
        WeightScan.check(FIXTURE, fixture, CompressedTensorsRelease.NO_ACT_ORDER);
    }

    @Test
    void nonFiniteValuesAreNamedByTensorAndElement(@TempDir Path tmp) throws IOException {
        // down_proj is W [16, 32]: flat 5·32 + 17 is [5, 17]. The later NaN must not be the one named.
        String m = refusal(
                model(tmp.resolve("nan"), Map.of("model.layers.0.mlp.down_proj.weight", new float[][] {
                    {5 * 32 + 17, Float.NaN}, {9 * 32 + 1, Float.NaN}
                })),
                GptqRelease.GPTQ);
        assertMentions(m, "model.layers.0.mlp.down_proj.weight[5, 17] is NaN", "model.safetensors", "re-download");
        assertTrue(!m.contains("other tensor"), m);

        m = refusal(
                model(
                        tmp.resolve("pinf"),
                        Map.of("model.layers.0.self_attn.q_proj.weight", new float[][] {{3 * 16 + 15, 1f / 0f}})),
                CompressedTensorsRelease.NO_ACT_ORDER);
        assertMentions(m, "model.layers.0.self_attn.q_proj.weight[3, 15] is +Inf");

        m = refusal(
                model(
                        tmp.resolve("ninf"),
                        Map.of("model.layers.0.mlp.up_proj.weight", new float[][] {{31 * 16, -1f / 0f}})),
                GptqRelease.GPTQ);
        assertMentions(m, "model.layers.0.mlp.up_proj.weight[31, 0] is -Inf");
    }

    @Test
    void nonFiniteNormsAndEmbeddingsAreRefusedToo(@TempDir Path tmp) throws IOException {
        String m = refusal(
                model(
                        tmp.resolve("norm"),
                        Map.of("model.layers.0.post_attention_layernorm.weight", new float[][] {{3, Float.NaN}})),
                GptqRelease.GPTQ);
        assertMentions(m, "model.layers.0.post_attention_layernorm.weight[3] is NaN");

        // Two tensors offend: the first in checkpoint order (the embeddings) is named, the other counted.
        m = refusal(
                model(
                        tmp.resolve("embed"),
                        Map.of(
                                "model.embed_tokens.weight", new float[][] {{7 * 16 + 2, Float.NaN}},
                                "lm_head.weight", new float[][] {{0, -1f / 0f}})),
                GptqRelease.GPTQ);
        assertMentions(m, "model.embed_tokens.weight[7, 2] is NaN", "1 other tensor fail");
    }

    @Test
    void biasesBeyondFp16AreRefusedOnlyWhereTheReleaseStoresThemInFp16(@TempDir Path tmp) throws IOException {
        // 70 000 is a BF16 value (70 144 after rounding) that fp16 (max 65 504) cannot hold.
        Path dir = model(
                tmp.resolve("bias"), Map.of("model.layers.0.self_attn.k_proj.bias", new float[][] {{4, 70_000f}}));
        String m = refusal(dir, GptqRelease.GPTQ);
        assertMentions(m, "model.layers.0.self_attn.k_proj.bias[4] is " + g6(70_000f), "fp16", "compressed-tensors");
        WeightScan.check(dir, ModelConfig.load(dir), CompressedTensorsRelease.NO_ACT_ORDER);
    }

    @Test
    void linearWeightsWhoseScaleOverflowsFp16AreRefused(@TempDir Path tmp) throws IOException {
        Path dir =
                model(tmp.resolve("big"), Map.of("model.layers.0.self_attn.o_proj.weight", new float[][] {{17, 6e5f}}));
        for (ReleaseFormat layout : List.of(GptqRelease.GPTQ, CompressedTensorsRelease.NO_ACT_ORDER)) {
            assertMentions(
                    refusal(dir, layout),
                    "model.layers.0.self_attn.o_proj.weight[1, 1] is " + g6(6e5f),
                    "overflows fp16");
        }
        // The same value in a norm is only copied: accepted.
        Path norm = model(
                tmp.resolve("bignorm"), Map.of("model.layers.0.input_layernorm.weight", new float[][] {{1, 6e5f}}));
        WeightScan.check(norm, ModelConfig.load(norm), GptqRelease.GPTQ);
    }

    /** The limits are exact: the largest accepted BF16 magnitude passes the quantizer, the next one fails it. */
    @Test
    void limitsSitExactlyWhereTheReleaseStopsHoldingTheValue() {
        int g = WeightScan.limitBits(DType.BF16, WeightScan.Rule.LINEAR_GPTQ);
        Rtn.scale(Bf16.toFloat((short) g));
        assertThrows(IllegalArgumentException.class, () -> Rtn.scale(Bf16.toFloat((short) (g + 1))));

        int c = WeightScan.limitBits(DType.BF16, WeightScan.Rule.LINEAR_COMPRESSED);
        assertTrue(c <= g, "compressed-tensors rounds scales to BF16, which can only narrow the range");
        // In F32, finer than BF16's spacing of 2048 there, the narrowing shows.
        assertTrue(WeightScan.limitBits(DType.F32, WeightScan.Rule.LINEAR_COMPRESSED)
                < WeightScan.limitBits(DType.F32, WeightScan.Rule.LINEAR_GPTQ));
        assertTrue(compressedHolds(Bf16.toFloat((short) c)));
        assertTrue(!compressedHolds(Bf16.toFloat((short) (c + 1))));

        int b = WeightScan.limitBits(DType.BF16, WeightScan.Rule.F16);
        assertTrue(Float.isFinite(Float.float16ToFloat(Float.floatToFloat16(Bf16.toFloat((short) b)))));
        assertTrue(Float.isInfinite(Float.float16ToFloat(Float.floatToFloat16(Bf16.toFloat((short) (b + 1))))));

        assertEquals(0x7F7F, WeightScan.limitBits(DType.BF16, WeightScan.Rule.FINITE));
        assertEquals(0x7BFF, WeightScan.limitBits(DType.F16, WeightScan.Rule.FINITE));
        assertEquals(0x7F7F_FFFF, WeightScan.limitBits(DType.F32, WeightScan.Rule.FINITE));
        // Every finite F16 value is small enough for a 4-bit scale.
        assertEquals(0x7BFF, WeightScan.limitBits(DType.F16, WeightScan.Rule.LINEAR_GPTQ));
    }

    /** Whether compressed-tensors holds a weight of magnitude a: its fp16 scale, rounded to BF16, stays ≤ 65504. */
    static boolean compressedHolds(float a) {
        try {
            return Bf16.round(Rtn.scale(a)) <= 65504f;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    /** The four-lanes-per-load scanner against a plain loop, on random data with planted values at every offset. */
    @Test
    void bitScannersAgreeWithAPlainLoop() {
        SplittableRandom r = new SplittableRandom(19);
        for (int trial = 0; trial < 2000; trial++) {
            int n = 1 + r.nextInt(80);
            int limit16 = r.nextInt(0x8000);
            short[] s = new short[n];
            int[] w = new int[n];
            int limit32 = 1 + r.nextInt(Integer.MAX_VALUE - 1);
            for (int i = 0; i < n; i++) {
                // Mostly below the limit, with signs; a few planted at, just above and far above it.
                s[i] = (short) ((r.nextInt(limit16 + 1)) | (r.nextBoolean() ? 0x8000 : 0));
                w[i] = r.nextInt(limit32) | (r.nextBoolean() ? 0x8000_0000 : 0);
            }
            for (int k = r.nextInt(3); k > 0; k--) {
                int at = r.nextInt(n);
                int bump = r.nextInt(3);
                s[at] = (short) (Math.min(0x7FFF, limit16 + bump) | (r.nextBoolean() ? 0x8000 : 0));
                w[at] = (int) Math.min(0x7FFF_FFFFL, (long) limit32 + bump) | (r.nextBoolean() ? 0x8000_0000 : 0);
            }
            ByteBuffer b16 = ByteBuffer.allocate(2 * n + 3).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer b32 = ByteBuffer.allocate(4 * n + 3).order(ByteOrder.LITTLE_ENDIAN);
            int pad = r.nextInt(4); // unaligned starts, as safetensors offsets may be
            b16.position(pad);
            b32.position(pad);
            for (int i = 0; i < n; i++) {
                b16.putShort(s[i]);
                b32.putInt(w[i]);
            }
            MemorySegment seg16 = MemorySegment.ofArray(b16.array()).asSlice(pad, 2L * n);
            MemorySegment seg32 = MemorySegment.ofArray(b32.array()).asSlice(pad, 4L * n);
            int from = r.nextInt(n);
            long want16 = -1;
            long want32 = -1;
            for (int i = n - 1; i >= from; i--) {
                want16 = (s[i] & 0x7FFF) > limit16 ? i : want16;
                want32 = (w[i] & 0x7FFF_FFFF) > limit32 ? i : want32;
            }
            assertEquals(want16, WeightScan.first16(seg16, from, n, limit16), "16-bit trial " + trial);
            assertEquals(want32, WeightScan.first32(seg32, from, n, limit32), "32-bit trial " + trial);
        }
    }

    @Test
    void multiIndexIsRowMajor() {
        assertEquals("[5, 17]", WeightScan.multiIndex(new long[] {16, 32}, 5 * 32 + 17));
        assertEquals("[3]", WeightScan.multiIndex(new long[] {16}, 3));
        assertEquals("[1, 2, 3]", WeightScan.multiIndex(new long[] {2, 3, 4}, 12 + 8 + 3));
    }
}
