package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.io.TensorView;
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
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The one reader behind validate and the reference forward: GPTQ and compressed-tensors tensors of the same
 * quantized linear read back to the same weights, bit for bit, and every broken rule is refused by name.
 */
class PackedLinearsTest {
    static final int N = 64;
    static final int K = 256;
    static final int G = 128;
    static final String P = "model.layers.0.mlp.up_proj";
    static final ModelConfig.Quantization GPTQ = new ModelConfig.Quantization(GptqRelease.GPTQ, 4, G, true, false);
    static final ModelConfig.Quantization CT =
            new ModelConfig.Quantization(CompressedTensorsRelease.NO_ACT_ORDER, 4, G, true, false);

    /** Random codes; scales j/64 for small j, exact in fp16 and bf16 alike so both layouts store them exactly. */
    static QuantizedLinear linear() {
        SplittableRandom r = new SplittableRandom(11);
        int[] codes = r.ints((long) K * N, 0, 16).toArray();
        float[] scales = new float[K / G * N];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = r.nextInt(1, 64) / 64f;
        }
        int[] gIdx = new int[K];
        for (int k = 0; k < K; k++) {
            gIdx[k] = k / G;
        }
        return new QuantizedLinear(N, K, G, codes, scales, gIdx);
    }

    static Map<String, TensorView> gptqTensors(QuantizedLinear q) {
        Map<String, TensorView> m = new HashMap<>();
        put(m, P + ".qweight", DType.I32, ints(GptqPacking.packQweight(q.codes(), K, N)), K / 8, N);
        put(m, P + ".qzeros", DType.I32, ints(GptqPacking.symmetricQzeros(K / G, N)), K / G, N / 8);
        MemorySegment s = MemorySegment.ofArray(new byte[q.scales().length * 2]);
        for (int i = 0; i < q.scales().length; i++) {
            s.set(LE16, 2L * i, Float.floatToFloat16(q.scales()[i]));
        }
        put(m, P + ".scales", DType.F16, s, K / G, N);
        put(m, P + ".g_idx", DType.I32, ints(q.gIdx()), K);
        return m;
    }

    static Map<String, TensorView> ctTensors(QuantizedLinear q) {
        int[] qweight = GptqPacking.packQweight(q.codes(), K, N);
        int[] packed = new int[qweight.length];
        for (int r = 0; r < K / 8; r++) {
            for (int n = 0; n < N; n++) {
                packed[n * (K / 8) + r] = qweight[r * N + n];
            }
        }
        Map<String, TensorView> m = new HashMap<>();
        put(m, P + ".weight_packed", DType.I32, ints(packed), N, K / 8);
        MemorySegment s = MemorySegment.ofArray(new byte[q.scales().length * 2]);
        for (int g = 0; g < K / G; g++) {
            for (int n = 0; n < N; n++) {
                s.set(LE16, 2L * (n * (K / G) + g), Bf16.fromFloat(q.scales()[g * N + n]));
            }
        }
        put(m, P + ".weight_scale", DType.BF16, s, N, K / G);
        MemorySegment shape = MemorySegment.ofArray(new byte[16]);
        shape.set(LE64, 0, N);
        shape.set(LE64, 8, K);
        put(m, P + ".weight_shape", DType.I64, shape, 2);
        return m;
    }

    static Matrix.W4 read(Map<String, TensorView> m, ModelConfig.Quantization q) {
        return PackedLinears.read(m::get, m::containsKey, q, P, N, K);
    }

    @Test
    void bothLayoutsReadBackToTheQuantizersWeightsBitForBit() {
        QuantizedLinear q = linear();
        float[] want = q.dequantize();
        Matrix.W4 a = read(gptqTensors(q), GPTQ);
        Matrix.W4 b = read(ctTensors(q), CT);
        assertArrayEquals(want, a.dequantize());
        assertArrayEquals(want, b.dequantize());
        for (int n = 0; n < N; n += 7) {
            for (int k = 0; k < K; k += 13) {
                assertEquals(q.codes()[k * N + n], a.code(n, k));
                assertEquals(q.codes()[k * N + n], b.code(n, k));
            }
        }
    }

    /**
     * AutoRound's full-range scale rule gives a group whose positive side dominates a negative scale (its extreme on
     * code 0): a legal value in every layout, since engines just multiply. Mixed-sign scales read back bit for bit
     * from the GPTQ layout, the same tensors under AutoRound's "auto_round:auto_gptq" label, and compressed-tensors,
     * and QuantizedLinear accepts them. A sign-stripping or sign-refusing reader fails here.
     */
    @Test
    void negativeScalesReadBackBitForBit() {
        QuantizedLinear base = linear();
        float[] scales = base.scales().clone();
        for (int i = 0; i < scales.length; i += 2) {
            scales[i] = -scales[i];
        }
        QuantizedLinear q = new QuantizedLinear(N, K, G, base.codes(), scales, base.gIdx());
        float[] want = q.dequantize();
        ModelConfig.Quantization autoRound = new ModelConfig.Quantization(GptqRelease.AUTO_ROUND, 4, G, true, false);
        for (Matrix.W4 w :
                List.of(read(gptqTensors(q), GPTQ), read(gptqTensors(q), autoRound), read(ctTensors(q), CT))) {
            assertArrayEquals(scales, w.scales());
            assertArrayEquals(want, w.dequantize());
        }
    }

    @Test
    void brokenRulesAreRefusedByName() {
        QuantizedLinear q = linear();
        Map<String, TensorView> v2 = gptqTensors(q);
        put(v2, P + ".qzeros", DType.I32, ints(filled(K / G * N / 8, 0x88888888)), K / G, N / 8);
        assertMessage(() -> read(v2, GPTQ), P + ".qzeros[0, 0] is 0x88888888", "v2 convention");

        Map<String, TensorView> noScales = gptqTensors(q);
        noScales.remove(P + ".scales");
        assertMessage(() -> read(noScales, GPTQ), P + ".scales: missing");

        Map<String, TensorView> nan = gptqTensors(q);
        MemorySegment s = MemorySegment.ofArray(new byte[K / G * N * 2]);
        s.set(LE16, 2L * 5, Float.floatToFloat16(Float.NaN));
        put(nan, P + ".scales", DType.F16, s, K / G, N);
        assertMessage(() -> read(nan, GPTQ), P + ".scales[0, 5] is NaN");

        Map<String, TensorView> badGroup = gptqTensors(q);
        int[] g = q.gIdx().clone();
        g[7] = 9;
        put(badGroup, P + ".g_idx", DType.I32, ints(g), K);
        assertMessage(() -> read(badGroup, GPTQ), P + ".g_idx[7] = 9");

        Map<String, TensorView> shape = ctTensors(q);
        MemorySegment wrong = MemorySegment.ofArray(new byte[16]);
        wrong.set(LE64, 0, N);
        wrong.set(LE64, 8, 2 * K);
        put(shape, P + ".weight_shape", DType.I64, wrong, 2);
        assertMessage(() -> read(shape, CT), P + ".weight_shape is [64, 512]");

        Map<String, TensorView> asym = ctTensors(q);
        put(asym, P + ".weight_zero_point", DType.I32, ints(new int[N]), N, 1);
        assertMessage(() -> read(asym, CT), "weight_zero_point", "asymmetric");
    }

    private static void assertMessage(Runnable r, String... parts) {
        String msg = assertThrows(InputException.class, r::run).getMessage();
        for (String p : parts) {
            assertTrue(msg.contains(p), "\"" + msg + "\" should contain \"" + p + "\"");
        }
    }

    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static int[] filled(int n, int v) {
        int[] a = new int[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    private static MemorySegment ints(int[] v) {
        MemorySegment s = MemorySegment.ofArray(new byte[v.length * 4]);
        for (int i = 0; i < v.length; i++) {
            s.set(LE32, 4L * i, v[i]);
        }
        return s;
    }

    private static void put(Map<String, TensorView> m, String name, DType dtype, MemorySegment data, long... shape) {
        m.put(name, new TensorView(name, dtype, shape, data));
    }
}
