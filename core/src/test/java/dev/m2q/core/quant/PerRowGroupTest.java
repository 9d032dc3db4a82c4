package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.pipeline.CompressedTensorsRelease;
import dev.m2q.core.pipeline.GptqRelease;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@code --group-size -1}, one group per row: the quantizers see G = K ({@link GroupSize#resolve}), the GPTQ layout
 * stores one row of scales and zeros, compressed-tensors the "channel" strategy with weight_scale [N, 1], and the
 * readers given group_size −1 read both back bit for bit.
 */
class PerRowGroupTest {
    static final int N = 64;
    static final int K = 384;
    static final String P = "model.layers.0.mlp.down_proj";
    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** W [N, K], Gaussian with a few larger channels, seeded. */
    static float[] weights() {
        SplittableRandom r = new SplittableRandom(5);
        float[] w = new float[N * K];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (r.nextGaussian() * (i % K % 37 == 0 ? 0.2 : 0.02));
        }
        return w;
    }

    @Test
    void resolveAndMarlin() {
        assertEquals(768, GroupSize.resolve(-1, 768));
        assertEquals(128, GroupSize.resolve(128, 768));
        for (int g : new int[] {-1, 32, 64, 128}) {
            assertTrue(GroupSize.isMarlin(g));
            assertNull(GroupSize.marlinWarning(g));
        }
        for (int g : new int[] {8, 16, 256, 96}) {
            assertFalse(GroupSize.isMarlin(g));
            assertTrue(GroupSize.marlinWarning(g).startsWith("group size " + g + " is not one of vLLM's Marlin"));
        }
        assertEquals(-1, GroupSize.require(-1));
        assertEquals(8, GroupSize.require(8));
        for (int g : new int[] {0, -2, 4}) {
            assertTrue(assertThrows(InputException.class, () -> GroupSize.require(g))
                    .getMessage()
                    .startsWith("--group-size " + g + ": must be -1"));
        }
    }

    @Test
    void rtnPerRowIsOneScalePerOutputChannelWithGIdxZero() {
        float[] w = weights();
        QuantizedLinear q = Rtn.quantize(w, N, K, GroupSize.resolve(-1, K));
        assertEquals(1, q.groups());
        assertArrayEquals(new int[K], q.gIdx());
        // Each scale is RTN's rule over the whole row: fp16(2·absmax/15).
        for (int n = 0; n < N; n++) {
            float absmax = 0;
            for (int k = 0; k < K; k++) {
                absmax = Math.max(absmax, Math.abs(w[n * K + k]));
            }
            assertEquals(Rtn.scale(absmax), q.scales()[n]);
        }
    }

    @Test
    void gptqLayoutRoundTripsBitForBit() {
        QuantizedLinear q = Rtn.quantize(weights(), N, K, K);
        GptqFormat.Packed p = GptqFormat.pack(P, q);
        assertEquals(N / 8, p.qzeros().length, "qzeros [1, N/8]");
        assertEquals(N, p.scales().length, "scales [1, N]");
        Map<String, TensorView> m = new HashMap<>();
        put(m, P + ".qweight", DType.I32, ints(p.qweight()), K / 8, N);
        put(m, P + ".qzeros", DType.I32, ints(p.qzeros()), 1, N / 8);
        MemorySegment s = MemorySegment.ofArray(new byte[N * 2]);
        for (int i = 0; i < N; i++) {
            s.set(LE16, 2L * i, p.scales()[i]);
        }
        put(m, P + ".scales", DType.F16, s, 1, N);
        put(m, P + ".g_idx", DType.I32, ints(p.gIdx()), K);
        QuantizedLinear back = GptqRelease.GPTQ.read(m::get, name -> true, P, N, K, GroupSize.PER_ROW, Bits.FOUR);
        assertSame(q, back);
        // The validate / forward reader agrees and keeps one group.
        Matrix.W4 w4 = PackedLinears.read(
                m::get, m::containsKey, new ModelConfig.Quantization(GptqRelease.GPTQ, 4, -1, true, false), P, N, K);
        assertEquals(K, w4.groupSize());
        assertArrayEquals(q.dequantize(), w4.dequantize());
    }

    @Test
    void compressedTensorsChannelRoundTripsBitForBit() {
        QuantizedLinear q = CompressedTensorsFormat.asWritten(Rtn.quantize(weights(), N, K, K));
        Map<String, TensorView> m = new HashMap<>();
        put(m, P + ".weight_packed", DType.I32, ints(CompressedTensorsFormat.packRows(q)), N, K / 8);
        MemorySegment s = MemorySegment.ofArray(new byte[N * 2]);
        for (int n = 0; n < N; n++) {
            s.set(LE16, 2L * n, Bf16.fromFloat(q.scales()[n]));
        }
        put(m, P + ".weight_scale", DType.BF16, s, N, 1);
        MemorySegment shape = MemorySegment.ofArray(new byte[16]);
        shape.set(LE64, 0, N);
        shape.set(LE64, 8, K);
        put(m, P + ".weight_shape", DType.I64, shape, 2);
        assertSame(
                q,
                CompressedTensorsRelease.NO_ACT_ORDER.read(
                        m::get, m::containsKey, P, N, K, GroupSize.PER_ROW, Bits.FOUR));
    }

    @Test
    void compressedTensorsConfigUsesTheChannelStrategy() {
        CompressedTensorsFormat.WeightArgs weights = CompressedTensorsFormat.quantizationConfig(
                        -1, QuantScheme.W4A16, "weight")
                .configGroups()
                .get("group_0")
                .weights();
        assertEquals("channel", weights.strategy());
        String written = Json.write(weights);
        assertFalse(written.contains("group_size"), written);
        // compressed-tensors allows actorder with the group strategy only; with one group it changes nothing.
        assertNull(weights.actorder());
        assertTrue(written.contains("\"actorder\":null"), "written as null, as compressed-tensors does: " + written);
        CompressedTensorsFormat.WeightArgs grouped = CompressedTensorsFormat.quantizationConfig(
                        128, QuantScheme.W4A16, "weight")
                .configGroups()
                .get("group_0")
                .weights();
        assertEquals("group", grouped.strategy());
        assertEquals(128, grouped.groupSize());
        assertEquals("weight", grouped.actorder());
    }

    private static void assertSame(QuantizedLinear want, QuantizedLinear got) {
        assertEquals(K, got.groupSize());
        assertArrayEquals(want.codes(), got.codes(), "codes");
        assertArrayEquals(want.scales(), got.scales(), "scales, bit for bit");
        assertArrayEquals(new int[K], got.gIdx(), "g_idx all 0");
    }

    private static MemorySegment ints(int[] v) {
        MemorySegment s = MemorySegment.ofArray(new byte[v.length * 4]);
        for (int i = 0; i < v.length; i++) {
            s.set(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i, v[i]);
        }
        return s;
    }

    private static void put(Map<String, TensorView> m, String name, DType dtype, MemorySegment data, long... shape) {
        m.put(name, new TensorView(name, dtype, shape, data));
    }
}
