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
 * Decoding and speculative verify, y = x·Wᵀ for 1 to 8 rows of x, at the 32B target's shapes: {@code VectorKernels.matmul} on a {@link Matrix.Bf16}
 * (the BF16 engine) against a {@link Matrix.W4} of random codes with G = 128 (the W4A16 kernel). One operation
 * is one product of {@code rows} rows (1: a decode step; k + 1: the verify of k drafts), both cores (the kernels
 * split N themselves). The verify/decode cost ratio is the time at rows = k + 1 over the time at rows = 1.
 *
 * <p>{@code cache}: this machine reports a 480 MiB L3, which would hold every one of these matrices if the same
 * one were multiplied again and again. "cold" rotates through enough copies of the matrix (same contents,
 * separate native memory) that each operation reads a matrix not touched for ≥ 1 GiB of traffic, as in real
 * decoding, where a layer's weights are read once per token. "hot" multiplies one copy, L3-resident.
 *
 * <p>Bytes read per operation (for GB/s), whatever the row count (the kernels read W once for all rows): BF16 2·N·K; W4 N·K/2 (qweight) + 4·N·K/G (fp32 scales, as held in
 * memory; 2 bytes each on disk as F16) + 4·K (x).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
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
public class MatVecBench {
    static final int GROUP = 128;
    /** Cold runs rotate through copies totalling at least this many bytes (over twice the reported L3). */
    static final long COLD_BYTES = 1L << 30;

    /** N×K: q/k/v/o-sized, k/v projection, MLP up/gate, MLP down. */
    @Param({"5120x5120", "1024x5120", "27648x5120", "5120x27648"})
    public String shape;

    @Param({"cold", "hot"})
    public String cache;

    /** Rows of x: 1 (decoding) or k + 1 (verifying k drafts). */
    @Param({"1", "2", "4", "8"})
    public int rows;

    Arena arena;
    Matrix[] copies;
    float[] x;
    float[] y;
    int next;

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) {
        int n = Integer.parseInt(shape.substring(0, shape.indexOf('x')));
        int k = Integer.parseInt(shape.substring(shape.indexOf('x') + 1));
        boolean w4 = params.getBenchmark().endsWith("w4");
        SplittableRandom rnd = new SplittableRandom(n * 31L + k);
        arena = Arena.ofShared();
        long bytes = w4 ? (long) n * k / 2 : 2L * n * k;
        int count = "cold".equals(cache) ? (int) Math.max(2, (COLD_BYTES + bytes - 1) / bytes) : 1;
        copies = new Matrix[count];
        MemorySegment first = arena.allocate(bytes, 64);
        if (w4) {
            for (long i = 0; i < bytes / 4; i++) {
                first.setAtIndex(Matrix.LE_INT, i, rnd.nextInt());
            }
        } else {
            for (long i = 0; i < bytes / 2; i++) {
                first.setAtIndex(
                        Matrix.LE_SHORT, i, (short) (Float.floatToRawIntBits((float) rnd.nextGaussian()) >>> 16));
            }
        }
        for (int c = 0; c < count; c++) {
            MemorySegment seg = c == 0 ? first : arena.allocate(bytes, 64);
            if (c > 0) {
                MemorySegment.copy(first, 0, seg, 0, bytes);
            }
            copies[c] = w4 ? w4(seg, n, k, rnd) : new Matrix.Bf16(seg, n, k);
        }
        x = new float[rows * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        y = new float[rows * n];
        System.out.println(params.getBenchmark() + " " + shape + ": " + count + " copies of " + bytes + " bytes");
    }

    private static Matrix.W4 w4(MemorySegment qweight, int n, int k, SplittableRandom rnd) {
        float[] scales = new float[k / GROUP * n];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) rnd.nextDouble(0.001, 0.05);
        }
        int[] gIdx = new int[k];
        for (int c = 0; c < k; c++) {
            gIdx[c] = c / GROUP;
        }
        return new Matrix.W4(qweight, scales, gIdx, n, k, GROUP);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        copies = null;
        arena.close();
    }

    private Matrix nextMatrix() {
        Matrix m = copies[next];
        next = next + 1 == copies.length ? 0 : next + 1;
        return m;
    }

    @Benchmark
    public float[] bf16() {
        VectorKernels.INSTANCE.matmul(x, rows, nextMatrix(), null, y);
        return y;
    }

    @Benchmark
    public float[] w4() {
        VectorKernels.INSTANCE.matmul(x, rows, nextMatrix(), null, y);
        return y;
    }
}
