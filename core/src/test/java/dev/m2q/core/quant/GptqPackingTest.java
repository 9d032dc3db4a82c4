package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Packing is integer bit-twiddling: every check here is exact. */
class GptqPackingTest {
    @Test
    void handComputedQweightWord() {
        // K = 8, N = 2: column 0 holds codes 0..7 down the input channels, column 1 holds 15, 14, …, 8.
        int[] codes = new int[16];
        for (int k = 0; k < 8; k++) {
            codes[k * 2] = k;
            codes[k * 2 + 1] = 15 - k;
        }
        int[] q = GptqPacking.packQweight(codes, 8, 2);
        assertArrayEquals(new int[] {0x76543210, 0x89ABCDEF}, q);
        assertTrue(q[1] < 0, "a word with the top nibble ≥ 8 is a negative int32; its bits are what count");
        assertArrayEquals(codes, GptqPacking.unpackQweight(q, 8, 2));
    }

    @Test
    void handComputedQzerosWord() {
        // 1 group, N = 16: output channels 0..7 → word 0, channels 8..15 → word 1.
        int[] z = new int[16];
        for (int c = 0; c < 16; c++) {
            z[c] = c;
        }
        int[] packed = GptqPacking.packQzeros(z, 1, 16);
        assertArrayEquals(new int[] {0x76543210, 0xFEDCBA98}, packed);
        assertArrayEquals(z, GptqPacking.unpackQzeros(packed, 1, 16));
    }

    @Test
    void symmetricZerosAreSevenInEveryNibble() {
        int[] packed = GptqPacking.symmetricQzeros(3, 24);
        assertEquals(9, packed.length);
        for (int w : packed) {
            assertEquals(0x77777777, w);
        }
        int[] zeros = GptqPacking.unpackQzeros(packed, 3, 24);
        for (int z : zeros) {
            assertEquals(Bits.FOUR.zero() - 1, z);
        }
        int[] sevens = new int[3 * 24];
        java.util.Arrays.fill(sevens, 7);
        assertArrayEquals(packed, GptqPacking.packQzeros(sevens, 3, 24));
    }

    @ParameterizedTest
    @CsvSource({"8, 8", "16, 24", "128, 40", "256, 8"})
    void unpackInvertsPackOnRandomCodes(int k, int n) {
        SplittableRandom rnd = new SplittableRandom(31L * k + n);
        int[] codes = new int[k * n];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = rnd.nextInt(16);
        }
        int[] packed = GptqPacking.packQweight(codes, k, n);
        assertEquals(k / 8 * n, packed.length);
        assertArrayEquals(codes, GptqPacking.unpackQweight(packed, k, n));
        int[] zeros = new int[(k / 8) * n];
        for (int i = 0; i < zeros.length; i++) {
            zeros[i] = rnd.nextInt(16);
        }
        assertArrayEquals(zeros, GptqPacking.unpackQzeros(GptqPacking.packQzeros(zeros, k / 8, n), k / 8, n));
    }

    @Test
    void refusesShapesThatDoNotPack() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> GptqPacking.packQweight(new int[12], 12, 1));
        assertTrue(e.getMessage().contains("K (in_features) = 12"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GptqPacking.symmetricQzeros(1, 12));
        assertTrue(e.getMessage().contains("N (out_features) = 12"), e.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> GptqPacking.packQweight(new int[] {16, 0, 0, 0, 0, 0, 0, 0}, 8, 1));
    }

    @Test
    void scalesRoundTripThroughF16AndRejectNonHalfValues() {
        float[] s = {Rtn.scale(0.3f), Rtn.scale(1e-3f), Rtn.scale(0f), 65504f};
        assertArrayEquals(s, GptqPacking.scalesFromF16(GptqPacking.scalesF16(s)));
        assertThrows(IllegalArgumentException.class, () -> GptqPacking.scalesF16(new float[] {0.1f}));
    }

    @Test
    void gIdxSequential() {
        assertArrayEquals(new int[] {0, 0, 0, 1, 1, 1}, GptqPacking.gIdxSequential(6, 3));
        assertThrows(IllegalArgumentException.class, () -> GptqPacking.gIdxSequential(7, 3));
    }
}
