package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.PackedLinears;
import dev.m2q.core.quant.QuantScheme;
import dev.m2q.core.quant.QuantizedLinear;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every release format writes one quantized linear (with its bias) that the independent reader, {@link
 * PackedLinears} as validate uses it, reads back bit for bit: codes, scales as written and g_idx, at 4 and 8 bits.
 */
class ReleaseFormatRoundTripTest {
    static final Path FIXTURE = QuantizeJobTest.FIXTURE;
    static final String PREFIX = "model.layers.1.self_attn.q_proj";
    static final int G = 32;

    static final List<ReleaseFormat> FORMATS = List.of(
            GptqRelease.GPTQ,
            GptqRelease.AUTO_ROUND,
            new CompressedTensorsRelease(CompressedTensorsRelease.ActOrder.NONE),
            new CompressedTensorsRelease(CompressedTensorsRelease.ActOrder.WEIGHT),
            new CompressedTensorsRelease(CompressedTensorsRelease.ActOrder.GROUP));

    /**
     * Seeded codes over the full range of {@code bits}, scales j/1024 (F16 values, not all BF16 ones, so
     * compressed-tensors' rounding is exercised), and a g_idx permuted as dynamic act-order groups leave it when the
     * format stores one (otherwise contiguous groups, which is all a format without g_idx can hold).
     */
    static QuantizedLinear linear(int n, int k, Bits bits, boolean permuted, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] codes = r.ints((long) n * k, 0, bits.maxCode() + 1).toArray();
        float[] scales = new float[k / G * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = r.nextInt(1, 2048) / 1024f;
        }
        int[] gIdx = new int[k];
        for (int i = 0; i < k; i++) {
            gIdx[i] = i / G;
        }
        for (int i = k - 1; permuted && i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = gIdx[i];
            gIdx[i] = gIdx[j];
            gIdx[j] = t;
        }
        return new QuantizedLinear(n, k, G, codes, scales, gIdx, bits);
    }

    @Test
    void everyFormatRoundTripsBitExactThroughPackedLinears(@TempDir Path tmp) {
        ModelConfig cfg = ModelConfig.load(FIXTURE);
        long[] nk = cfg.expectedShapes().get(PREFIX + ".weight");
        int n = (int) nk[0];
        int k = (int) nk[1];
        long seed = 1;
        try (Checkpoint src = Checkpoint.open(FIXTURE)) {
            for (Bits bits : List.of(Bits.FOUR, Bits.EIGHT)) {
                for (ReleaseFormat format : FORMATS) {
                    String what = format + " at " + bits.value() + " bits";
                    boolean storesGIdx = !(format instanceof CompressedTensorsRelease ct)
                            || ct.actOrder() == CompressedTensorsRelease.ActOrder.GROUP;
                    QuantizedLinear q = format.asWritten(linear(n, k, bits, storesGIdx, seed++));
                    List<TensorSpec> specs = format.plan(cfg, src::tensor, G, QuantScheme.W4A16, bits).stream()
                            .filter(t -> t.name().startsWith(PREFIX + "."))
                            .toList();
                    Path dir = tmp.resolve(format.id() + "-" + seed);
                    try (CheckpointWriter w =
                            CheckpointWriter.create(dir, ShardPlan.single(specs), CheckpointWriter.PT_METADATA)) {
                        format.writeLinear(w, PREFIX, q, src.tensor(PREFIX + ".bias"));
                        w.finish();
                    }
                    try (Checkpoint back = Checkpoint.open(dir)) {
                        QuantizedLinear got = PackedLinears.readCodes(
                                back::tensor,
                                back::contains,
                                new ModelConfig.Quantization(format, bits.value(), G, true, storesGIdx),
                                PREFIX,
                                n,
                                k);
                        assertEquals(bits, got.bits(), what);
                        assertArrayEquals(q.codes(), got.codes(), what + ": codes");
                        assertArrayEquals(q.scales(), got.scales(), what + ": scales");
                        assertArrayEquals(q.gIdx(), got.gIdx(), what + ": g_idx");
                        float[] bias = src.tensor(PREFIX + ".bias").toFloatArray();
                        for (int i = 0; format.storesF16() && i < bias.length; i++) {
                            bias[i] = Float.float16ToFloat(Float.floatToFloat16(bias[i]));
                        }
                        assertArrayEquals(
                                bias,
                                back.tensor(PREFIX + ".bias").toFloatArray(),
                                what + ": the bias, as F16 in the GPTQ layout, in its own dtype otherwise");
                    }
                }
            }
        }
    }
}
