package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.tensor.Bf16;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The tiled, cache-blocked kernels ({@link TiledMatmul}, {@link TiledGemm}) on shapes that cross every block edge
 * (micro-tile rows and columns, depth blocks, column blocks, row blocks, the k mod V tail), compared bit for bit:
 * the tiling over output elements must not change any element's arithmetic.
 *
 * <ul>
 *   <li>matmul against an independent plain-loop statement of the vector path's order (V lane chains, their
 *       lane-order sum from 0f, the tail's rounded products, the bias) and against the row kernels of
 *       {@link VectorKernels} (one row per call), which the tiled path replaces for more than 8 rows;
 *   <li>gemmAcc and syrkUpper against {@link ScalarKernels}, whose loops are the SPI's order.
 * </ul>
 */
class TiledKernelsTest {
    private static final int V = FloatVector.SPECIES_PREFERRED.length();

    @ParameterizedTest
    @CsvSource({
        "9, 1, 16, true",
        "13, 63, 7, false",
        "12, 65, 33, true",
        "40, 200, 1000, true",
        "200, 70, 100, false",
        "7, 130, 64, true",
        "25, 20, 8300, true"
    })
    void matmulIsTheVectorRowOrderBitForBit(int rows, int n, int k, boolean withBias) {
        // 200 rows cross the 192-row block; k = 8300 gives 518 steps per lane, past the 512-step depth block,
        // plus a tail; n = 200 spans three column tiles of 64 and a ragged one. 7 rows stay on the row kernels
        // (the dispatch threshold is 8) and pin that both paths state one order.
        SplittableRandom rnd = new SplittableRandom(1000L * rows + 10L * n + k);
        float[] x = randoms(rnd, rows * k);
        float[] wf = randoms(rnd, n * k);
        float[] bias = withBias ? randoms(rnd, n) : null;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(2L * n * k);
            float[] wb = new float[n * k];
            for (int i = 0; i < n * k; i++) {
                short b = Bf16.fromFloat(wf[i]);
                seg.set(Matrix.LE_SHORT, 2L * i, b);
                wb[i] = Bf16.toFloat(b);
            }
            check(x, rows, new Matrix.F32(wf, n, k), wf, bias);
            check(x, rows, new Matrix.Bf16(seg, n, k), wb, bias);
        }
    }

    @Test
    void matmulKeepsTheSignOfZeroAsTheRowPathDoes() {
        // All-zero products sum to +0f, and +0f + (-0f) is +0f: a path that copied the bias instead of adding it
        // would give -0f.
        int rows = 12;
        int n = 70;
        int k = 40;
        float[] x = new float[rows * k];
        float[] wf = randoms(new SplittableRandom(5), n * k);
        float[] bias = new float[n];
        Arrays.fill(bias, -0f);
        check(x, rows, new Matrix.F32(wf, n, k), wf, bias);
        check(x, rows, new Matrix.F32(wf, n, k), wf, null);
    }

    private static void check(float[] x, int rows, Matrix w, float[] wf, float[] bias) {
        int n = w.rows();
        int k = w.cols();
        float[] y = new float[rows * n];
        VectorKernels.INSTANCE.matmul(x, rows, w, bias, y);
        for (int t = 0; t < rows; t++) {
            float[] one = new float[n];
            VectorKernels.INSTANCE.matmul(Arrays.copyOfRange(x, t * k, (t + 1) * k), 1, w, bias, one);
            for (int j = 0; j < n; j++) {
                float want = rowOrder(x, t, k, wf, j, bias == null ? 0f : bias[j]);
                String at = w.getClass().getSimpleName() + " [" + rows + ", " + n + ", " + k + "] at " + t + ", " + j;
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(y[t * n + j]), at);
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(one[j]), "row path " + at);
            }
        }
    }

    /** The vector path's order for one element, as plain loops. */
    private static float rowOrder(float[] x, int t, int k, float[] w, int j, float b) {
        int kv = k - k % V;
        float s = 0f;
        for (int l = 0; l < V; l++) {
            float lane = 0f;
            for (int c = l; c < kv; c += V) {
                lane = Math.fma(x[t * k + c], w[j * k + c], lane);
            }
            s += lane;
        }
        for (int c = kv; c < k; c++) {
            s += x[t * k + c] * w[j * k + c];
        }
        return s + b;
    }

    @ParameterizedTest
    @CsvSource({
        "100, 800, 600, true",
        "100, 800, 600, false",
        "7, 1000, 300, true",
        "500, 70, 257, false",
        "61, 385, 129, true",
        "4400, 4160, 9, false"
    })
    void gemmAccIsTheScalarChainBitForBit(int m, int n, int depth, boolean transposedA) {
        // depth 600 crosses two 256-deep blocks, 500 and 4400 rows the 192-row block of A, 4400 × 4160 (split
        // over rows) the 4096-column block of B; 7 rows split over columns, 500 over rows; ragged edges in every
        // direction. Offsets and padded strides as in the twin test.
        SplittableRandom rnd = new SplittableRandom(7L * m + 3L * n + depth);
        int aRow = transposedA ? 1 : depth + 3;
        int aCol = transposedA ? m + 2 : 1;
        float[] a = randoms(rnd, 5 + (m - 1) * aRow + (depth - 1) * aCol + 1 + 8);
        int ldb = n + 1;
        float[] b = randoms(rnd, 2 + depth * ldb);
        int ldc = n + 4;
        float[] start = randoms(rnd, 3 + m * ldc);
        float[] cs = start.clone();
        float[] cv = start.clone();
        ScalarKernels.INSTANCE.gemmAcc(m, n, depth, a, 5, aRow, aCol, b, 2, ldb, cs, 3, ldc);
        VectorKernels.INSTANCE.gemmAcc(m, n, depth, a, 5, aRow, aCol, b, 2, ldb, cv, 3, ldc);
        for (int e = 0; e < start.length; e++) {
            assertEquals(Float.floatToRawIntBits(cs[e]), Float.floatToRawIntBits(cv[e]), "c[" + e + "]");
        }
    }

    @Test
    void gemmPiecesPackTheLeast() {
        // R row pieces pack B R times, C = threads / R column pieces pack A C times: the least R·n + C·m.
        assertEquals(2, TiledGemm.pieceRows(2, 4587, 80, 27520, 5120)); // the lazy update: rows
        assertEquals(1, TiledGemm.pieceRows(2, 1, 16, 1, 1000)); // one row: columns
        assertEquals(2, TiledGemm.pieceRows(2, 86, 8, 512, 512)); // square: a tie goes to rows
        // 32 threads on the inverse's 512 × 512 products: 8 × 4 packs 8·512 + 4·512, less than 32 × 1's
        // 32·512 + 512; 4 × 8 ties with 8 × 4 and the rows win.
        assertEquals(8, TiledGemm.pieceRows(32, 86, 8, 512, 512));
        assertEquals(1, TiledGemm.pieceRows(1, 86, 8, 512, 512));
        // Too few tiles for an exact split of 3 threads: the longer side takes what it has.
        assertEquals(2, TiledGemm.pieceRows(3, 2, 1, 12, 40));
    }

    @ParameterizedTest
    @CsvSource({"700, 450", "64, 1031", "2100, 130"})
    void syrkUpperIsTheScalarChainBitForBit(int rows, int k) {
        // 700 and 2100 rows shrink the column block (rows × block ≈ 512 KiB); k = 1031 spans many threads'
        // column ranges with ragged tiles on the diagonal. The strict lower triangle must stay as it was.
        SplittableRandom rnd = new SplittableRandom(13L * rows + k);
        float[] x = randoms(rnd, rows * k);
        float[] start = randoms(rnd, k * k);
        float[] cs = start.clone();
        float[] cv = start.clone();
        ScalarKernels.INSTANCE.syrkUpper(x, rows, k, cs);
        VectorKernels.INSTANCE.syrkUpper(x, rows, k, cv);
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                int e = i * k + j;
                assertEquals(Float.floatToRawIntBits(cs[e]), Float.floatToRawIntBits(cv[e]), "c[" + i + ", " + j + "]");
                if (j < i) {
                    assertEquals(Float.floatToRawIntBits(start[e]), Float.floatToRawIntBits(cv[e]), "lower touched");
                }
            }
        }
    }

    private static float[] randoms(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }
}
