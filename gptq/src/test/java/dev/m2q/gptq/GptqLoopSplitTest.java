package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.quant.Bits;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * GPTQ's column loop with each block's output columns split into ranges ({@link GptqLoop#run(Kernels, GptqProblem,
 * int)}): the same codes, scales, g_idx and loss bit for bit as in one range, for both Java kernels, dynamic and
 * static groups, act-order, the clipping search and 8 bits. N = 200 is three whole units of 64 and a ragged one, so
 * the last range ends in the vector axpy's unfused tail as the one-range call does.
 */
class GptqLoopSplitTest {
    @ParameterizedTest
    @CsvSource({
        "vector, false, false, false, 4",
        "vector, true, false, false, 4",
        "vector, true, true, false, 4",
        "vector, false, false, true, 4",
        "vector, true, true, true, 8",
        "scalar, true, false, false, 4",
        "scalar, false, false, true, 8"
    })
    void aSplitLoopIsTheSameBits(String impl, boolean actOrder, boolean staticGroups, boolean clip, int bitWidth) {
        Kernels kern = impl.equals("vector") ? VectorKernels.INSTANCE : ScalarKernels.INSTANCE;
        Bits bits = bitWidth == 8 ? Bits.EIGHT : Bits.FOUR;
        int n = 200;
        int k = 96;
        int g = 32;
        SplittableRandom rnd = new SplittableRandom(7L * n + (actOrder ? 1 : 0) + (staticGroups ? 2 : 0));
        float[] w1 = Fixtures.heavyTailedWeights(rnd, k, n);
        float[] u =
                DampedCholesky.factor(Fixtures.hessian(rnd, 2 * k, k), k, 0.01).hinvUpper();
        int[] perm = actOrder ? ActOrder.permutation(Fixtures.hessian(rnd, k, k), k) : null;
        float[] st = null;
        if (staticGroups) {
            st = new float[(k / g) * n];
            for (int i = 0; i < st.length; i++) {
                st[i] = 0.05f + 0.01f * (i % 7);
            }
        }
        GptqCodes one = GptqLoop.run(kern, new GptqProblem(w1.clone(), u, k, n, g, 40, perm, st, bits, clip), 1);
        for (int pieces : new int[] {2, 3, 4, 9}) {
            GptqCodes split =
                    GptqLoop.run(kern, new GptqProblem(w1.clone(), u, k, n, g, 40, perm, st, bits, clip), pieces);
            assertArrayEquals(one.codes(), split.codes(), pieces + " pieces: codes");
            assertArrayEquals(one.scales(), split.scales(), pieces + " pieces: scales");
            assertArrayEquals(one.gIdx(), split.gIdx(), pieces + " pieces: g_idx");
            assertEquals(one.errSquares(), split.errSquares(), 0, pieces + " pieces: loss");
        }
    }

    @ParameterizedTest
    @CsvSource({"1", "3"})
    void aGroupThatCannotBeScaledFailsAsTheOneRangeLoopDoes(int pieces) {
        // An infinite weight in output column 150 (the third range of three) and in column 10 one group later: the
        // loop on one range meets column 150's first, at position 0, and so must the split one.
        int n = 200;
        int k = 96;
        SplittableRandom rnd = new SplittableRandom(5);
        float[] w1 = Fixtures.heavyTailedWeights(rnd, k, n);
        w1[3 * n + 150] = Float.POSITIVE_INFINITY;
        w1[40 * n + 10] = Float.POSITIVE_INFINITY;
        float[] u =
                DampedCholesky.factor(Fixtures.hessian(rnd, 2 * k, k), k, 0.01).hinvUpper();
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> GptqLoop.run(
                        VectorKernels.INSTANCE, new GptqProblem(w1.clone(), u, k, n, 32, 40, null, null), pieces));
        assertEquals(
                "a weight of output 150 in inputs 0..31 became Infinity during GPTQ; the Hessian is ill-conditioned,"
                        + " try a larger --damp",
                e.getMessage());
    }
}
