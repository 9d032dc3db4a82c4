package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.tensor.Bf16;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * m2q_convert_f32_bf16 (vendor.cu), the step that rounds activations to bf16 before cuBLAS's bf16 GEMM, against its
 * Java twin Bf16.fromFloat: round to nearest, ties to even, bit for bit over every bit pattern (random ones, exact
 * ties in both directions, subnormals, ±0, ±Inf, the values that round up to Inf). A NaN need only stay a NaN: the
 * device writes the canonical bf16 NaN, the twin keeps the payload's top bits.
 */
@Tag("gpu")
class ConvertBf16GpuTest {
    @Test
    void roundsEveryFloatAsTheJavaTwin() {
        assertEquals(Optional.empty(), CudaContext.unavailableReason(), "CUDA must be usable where gpu tests run");
        CudaContext ctx = CudaContext.get();
        SplittableRandom r = new SplittableRandom(7);
        int count = 1 << 20 | 37; // not a multiple of the block
        float[] x = new float[count];
        for (int i = 0; i < count; i++) {
            int bits = r.nextInt();
            x[i] = Float.intBitsToFloat(
                    switch (i % 4) {
                        case 0 -> bits; // any pattern
                        case 1 -> (bits & 0xFFFF_0000) | 0x8000; // an exact tie
                        case 2 -> bits & 0x807F_FFFF; // subnormal or ±0
                        default -> (bits & 0xFFFF_0000) | 0x7FFF; // just below a tie
                    });
        }
        x[0] = Float.POSITIVE_INFINITY;
        x[1] = Float.NEGATIVE_INFINITY;
        x[2] = Float.MAX_VALUE; // rounds up to +Inf
        x[3] = -0f;
        int[] packed = new int[(count + 1) / 2];
        try (DeviceBuffer xb = ctx.upload(x, 0, count);
                DeviceBuffer out = ctx.alloc(4L * packed.length)) {
            ctx.kernel("m2q_convert_f32_bf16")
                    .launch(Device.blocks(count, 256), 1, 1, 256, 1, 1, 0, (long) count, xb, out);
            ctx.download(out, 0, packed, 0, packed.length);
        }
        for (int i = 0; i < count; i++) {
            short got = (short) (i % 2 == 0 ? packed[i / 2] : packed[i / 2] >>> 16);
            short want = Bf16.fromFloat(x[i]);
            if (Float.isNaN(x[i])) {
                assertTrue(Float.isNaN(Bf16.toFloat(got)), "element " + i + " (NaN) gave " + Integer.toHexString(got));
            } else {
                assertEquals(
                        want & 0xFFFF,
                        got & 0xFFFF,
                        "element " + i + " (" + Integer.toHexString(Float.floatToRawIntBits(x[i])) + ")");
            }
        }
    }
}
