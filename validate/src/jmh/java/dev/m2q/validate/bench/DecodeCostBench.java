package dev.m2q.validate.bench;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.VectorKernels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * The products of one decode step of Qwen2.5-32B on this CPU, from DRAM (a synthetic target: random weights of the
 * real shapes), for the two ratios the speculative-decoding speedup depends on:
 *
 * <ul>
 *   <li>{@code targetLayer}: one decoder layer's seven linears as W4A16 (G = 128): q, o [5120×5120], k, v
 *       [1024×5120], gate, up [27648×5120], down [5120×27648], for {@code rows} rows (1: a decode step; k + 1: a
 *       verify). A target token costs 64 of these plus {@code targetLmHead}.
 *   <li>{@code targetLmHead}: the bf16 lm_head [152064×5120] for {@code rows} rows (a verify needs the logits of
 *       every row).
 *   <li>{@code draftStep}: the EAGLE-3 head's nine bf16 linears for one row: fc [5120×15360], q [5120×10240], k, v
 *       [1024×10240], o [5120×5120], gate, up [27648×5120], down [5120×27648], lm_head over 32,000 draft ids
 *       [32000×5120].
 * </ul>
 *
 * Norms, RoPE, attention over a short context and the embedding gather are left out: at these shapes they are a few
 * percent of a step. The target layer rotates through {@link #LAYER_COPIES} copies (≥ 1 GiB in all), so every
 * operation reads its weights from DRAM; the lm_head and the head are over 1.5 GB each and are read once per
 * operation. c (draft/target cost per token) = draftStep / (64·targetLayer + targetLmHead) at rows = 1; the
 * verify/decode ratio for k drafts = (64·targetLayer + targetLmHead) at rows = k + 1 over the same at rows = 1.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(
        value = 1,
        jvmArgsAppend = {
            "--add-modules",
            "jdk.incubator.vector",
            "--enable-native-access=ALL-UNNAMED",
            "-Xmx4g",
            "-XX:MaxDirectMemorySize=16g"
        })
@State(Scope.Benchmark)
public class DecodeCostBench {
    static final int H = 5120;
    static final int KV = 1024;
    static final int FFN = 27648;
    static final int GROUP = 128;
    static final int LAYER_COPIES = 5;

    /** Rows of x: 1 (decoding) or k + 1 (verifying k drafts); draftStep always runs one row. */
    @Param({"1", "2", "4", "6", "8"})
    public int rows;

    Arena arena;
    Matrix[][] layers;
    Matrix lmHead;
    Matrix[] head;
    float[] x;
    float[] y;
    int next;

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) {
        String bench = params.getBenchmark();
        SplittableRandom rnd = new SplittableRandom(32);
        arena = Arena.ofShared();
        int widest = 0;
        if (bench.endsWith("targetLayer")) {
            int[][] shapes = {{H, H}, {KV, H}, {KV, H}, {H, H}, {FFN, H}, {FFN, H}, {H, FFN}};
            layers = new Matrix[LAYER_COPIES][shapes.length];
            for (int c = 0; c < LAYER_COPIES; c++) {
                for (int i = 0; i < shapes.length; i++) {
                    layers[c][i] = w4(shapes[i][0], shapes[i][1], rnd);
                    widest = Math.max(widest, shapes[i][0]);
                }
            }
        } else if (bench.endsWith("targetLmHead")) {
            lmHead = bf16(152064, H, rnd);
            widest = 152064;
        } else {
            int[][] shapes = {
                {H, 3 * H}, {H, 2 * H}, {KV, 2 * H}, {KV, 2 * H}, {H, H}, {FFN, H}, {FFN, H}, {H, FFN}, {32000, H}
            };
            head = new Matrix[shapes.length];
            for (int i = 0; i < shapes.length; i++) {
                head[i] = bf16(shapes[i][0], shapes[i][1], rnd);
                widest = Math.max(widest, shapes[i][0]);
            }
        }
        x = new float[rows * Math.max(3 * H, FFN)];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        y = new float[rows * widest];
    }

    private Matrix.W4 w4(int n, int k, SplittableRandom rnd) {
        MemorySegment q = arena.allocate((long) n * k / 2, 64);
        for (long i = 0; i < (long) n * k / 8; i++) {
            q.setAtIndex(Matrix.LE_INT, i, rnd.nextInt());
        }
        float[] scales = new float[k / GROUP * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) rnd.nextDouble(0.001, 0.05);
        }
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = c / GROUP;
        }
        return new Matrix.W4(q, scales, gIdx, n, k, GROUP);
    }

    private Matrix.Bf16 bf16(int n, int k, SplittableRandom rnd) {
        MemorySegment s = arena.allocate(2L * n * k, 64);
        // random bf16 in [-2, 2): sign, exponent 126..127, random mantissa, two per int
        for (long i = 0; i < (long) n * k / 2; i++) {
            int a = 0x3F00 | (rnd.nextInt() & 0x80FF);
            int b = 0x3F00 | (rnd.nextInt() & 0x80FF);
            s.setAtIndex(Matrix.LE_INT, i, a | (b << 16));
        }
        return new Matrix.Bf16(s, n, k);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        layers = null;
        lmHead = null;
        head = null;
        arena.close();
    }

    @Benchmark
    public float[] targetLayer() {
        Matrix[] layer = layers[next];
        next = next + 1 == layers.length ? 0 : next + 1;
        for (Matrix w : layer) {
            VectorKernels.INSTANCE.matmul(x, rows, w, null, y);
        }
        return y;
    }

    @Benchmark
    public float[] targetLmHead() {
        VectorKernels.INSTANCE.matmul(x, rows, lmHead, null, y);
        return y;
    }

    @Benchmark
    public float[] draftStep() {
        for (Matrix w : head) {
            VectorKernels.INSTANCE.matmul(x, 1, w, null, y);
        }
        return y;
    }
}
