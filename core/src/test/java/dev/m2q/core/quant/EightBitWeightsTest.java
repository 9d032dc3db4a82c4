package dev.m2q.core.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The 8-bit rules of docs/FORMATS-8BIT.md: packing, zero point and RTN, checked against hand-computed values. */
class EightBitWeightsTest {
    @Test
    void constantsFollowFromTheWidth() {
        assertEquals(8, Bits.FOUR.zero());
        assertEquals(15, Bits.FOUR.maxCode());
        assertEquals(8, Bits.FOUR.perWord());
        assertEquals(128, Bits.EIGHT.zero());
        assertEquals(255, Bits.EIGHT.maxCode());
        assertEquals(4, Bits.EIGHT.perWord());
        assertThrows(IllegalArgumentException.class, () -> Bits.of(3));
        assertThrows(IllegalArgumentException.class, () -> Bits.of(16));
    }

    @Test
    void packsFourCodesPerWordLowestByteFirst() {
        // K = 4 input channels of one output column: bytes 0x01, 0x80, 0xFF, 0x7F from the lowest byte up.
        int[] codes = {0x01, 0x80, 0xFF, 0x7F};
        int[] qweight = GptqPacking.packQweight(codes, 4, 1, Bits.EIGHT);
        assertArrayEquals(new int[] {0x7FFF8001}, qweight);
        assertArrayEquals(codes, GptqPacking.unpackQweight(qweight, 4, 1, Bits.EIGHT));
    }

    @Test
    void packsAlongKPerOutputColumn() {
        // K = 4, N = 2, codes [K, N] row-major: column 0 is 1, 2, 3, 4 and column 1 is 250, 251, 252, 253.
        int[] codes = {1, 250, 2, 251, 3, 252, 4, 253};
        int[] qweight = GptqPacking.packQweight(codes, 4, 2, Bits.EIGHT);
        assertArrayEquals(new int[] {0x04030201, 0xFDFCFBFA}, qweight);
    }

    @Test
    void randomCodesRoundTripBitExact() {
        Random rng = new Random(20261204L);
        int k = 64;
        int n = 24;
        int[] codes = new int[k * n];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = rng.nextInt(256);
        }
        int[] qweight = GptqPacking.packQweight(codes, k, n, Bits.EIGHT);
        assertEquals(k / 4 * n, qweight.length);
        assertArrayEquals(codes, GptqPacking.unpackQweight(qweight, k, n, Bits.EIGHT));
        int groups = 2;
        int[] zeros = new int[groups * n];
        for (int i = 0; i < zeros.length; i++) {
            zeros[i] = rng.nextInt(256);
        }
        int[] qzeros = GptqPacking.packQzeros(zeros, groups, n, Bits.EIGHT);
        assertEquals(groups * n / 4, qzeros.length);
        assertArrayEquals(zeros, GptqPacking.unpackQzeros(qzeros, groups, n, Bits.EIGHT));
    }

    @Test
    void symmetricZerosStoreZeroMinusOneInEveryByte() {
        assertEquals(0x7F7F7F7F, GptqPacking.symmetricZerosWord(Bits.EIGHT));
        assertEquals(GptqPacking.SYMMETRIC_ZEROS_WORD, GptqPacking.symmetricZerosWord(Bits.FOUR));
        int[] q = GptqPacking.symmetricQzeros(3, 8, Bits.EIGHT);
        assertEquals(6, q.length);
        int[] z = GptqPacking.unpackQzeros(q, 3, 8, Bits.EIGHT);
        for (int v : z) {
            assertEquals(127, v);
        }
    }

    @Test
    void fourBitOverloadsAreTheFourBitMethods() {
        Random rng = new Random(7L);
        int k = 16;
        int n = 8;
        int[] codes = new int[k * n];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = rng.nextInt(16);
        }
        assertArrayEquals(GptqPacking.packQweight(codes, k, n), GptqPacking.packQweight(codes, k, n, Bits.FOUR));
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rng.nextGaussian();
        }
        QuantizedLinear a = Rtn.quantize(w, n, k, 8);
        QuantizedLinear b = Rtn.quantize(w, n, k, 8, Bits.FOUR);
        assertArrayEquals(a.codes(), b.codes());
        assertArrayEquals(a.scales(), b.scales());
    }

    @Test
    void rejectsCodesBeyondTheWidth() {
        assertThrows(
                IllegalArgumentException.class,
                () -> GptqPacking.packQweight(new int[] {256, 0, 0, 0}, 4, 1, Bits.EIGHT));
        assertThrows(
                IllegalArgumentException.class,
                () -> new QuantizedLinear(1, 4, 4, new int[] {0, 0, 0, 256}, new float[] {1f}, new int[4], Bits.EIGHT));
        assertThrows(
                IllegalArgumentException.class,
                () -> new QuantizedLinear(1, 4, 4, new int[] {0, 0, 0, 16}, new float[] {1f}, new int[4]));
        assertThrows(IllegalArgumentException.class, () -> GptqPacking.packQweight(new int[6], 6, 1, Bits.EIGHT));
    }

    @Test
    void rtnOnOneGroupByHand() {
        // One row, G = K = 4, absmax 1: s = 2/255 = 0.0078431… rounds to fp16 1028·2⁻¹⁷ (fp16 spacing in
        // [2⁻⁷, 2⁻⁶) is 2⁻¹⁷; 2/255·2¹⁷ = 1028.016). w/s: 1 → 127.502 → 128 + 128 = 256, clamped to 255;
        // −0.5 → −63.751 → −64 → 64; 0.25 → 31.876 → 32 → 160; 0 → 128.
        float[] w = {1f, -0.5f, 0.25f, 0f};
        QuantizedLinear q = Rtn.quantize(w, 1, 4, 4, Bits.EIGHT);
        float s = 1028f / 131072f;
        assertEquals(s, q.scales()[0]);
        assertArrayEquals(new int[] {255, 64, 160, 128}, q.codes());
        assertEquals(Bits.EIGHT, q.bits());
        assertEquals(s * 127, q.dequant(0, 0));
        assertEquals(s * -64, q.dequant(0, 1));
        assertArrayEquals(new float[] {s * 127, s * -64, s * 32, 0f}, q.dequantize());
    }

    @Test
    void rtnTwoGroupsAndAnAllZeroGroupByHand() {
        // Two rows, K = 4, G = 2. Row 0: group 0 absmax 0.5 → 1/255 → fp16 1028·2⁻¹⁸; group 1 all zero → 2/255.
        // Row 1: group 0 absmax 2 → 4/255 → fp16 1028·2⁻¹⁶; group 1 absmax 0.125 → 0.25/255 → fp16 1028·2⁻²⁰.
        float[] w = {0.5f, -0.25f, 0f, 0f, 2f, 1f, -0.125f, 0.0625f};
        QuantizedLinear q = Rtn.quantize(w, 2, 4, 2, Bits.EIGHT);
        float s00 = 1028f / (1 << 18);
        float s01 = 1028f / (1 << 17);
        float s10 = 1028f / (1 << 16);
        float s11 = 1028f / (1 << 20);
        // scales [groups, N] row-major
        assertArrayEquals(new float[] {s00, s10, s01, s11}, q.scales());
        // row 0: 0.5/s00 = 127.50 → 128 → 255 (clamped); −0.25/s00 = −63.75 → −64 → 64; zeros → 128.
        // row 1: 2/s10 → 255; 1/s10 = 63.75 → 64 → 192; −0.125/s11 → −128 → 0; 0.0625/s11 = 63.75 → 64 → 192.
        // codes [K, N] row-major
        assertArrayEquals(new int[] {255, 255, 64, 192, 128, 0, 128, 192}, q.codes());
    }
}
