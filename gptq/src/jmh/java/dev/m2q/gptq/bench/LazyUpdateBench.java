package dev.m2q.gptq.bench;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * GPTQ's lazy-batch update after one block of B = 128 columns, on the shape of a 7B-class linear (N = 5120
 * outputs): W_rest[N, K_rest] −= Err[N, B]·U[B, K_rest], K_rest = K − B. Gptq keeps the transposed working copy
 * W1 = Wᵀ [K, N], so the update is W1[i2:, :] −= U[i1:i2, i2:]ᵀ·Err1 and goes through {@link Kernels#matmul}
 * (y = x·Wᵀ) with x = U[i1:i2, j…]ᵀ [256, B] (chunks of 256 trailing rows), the matrix Err1ᵀ [N, B], and y
 * [256, N] subtracted row by row with {@link Kernels#axpy}.
 *
 * <p>{@link #lazyUpdate} is that sequence exactly as {@code Gptq.lazyBatchUpdate} runs it (Err1 transposed,
 * U's block rows gathered per chunk, matmul, axpy, temporaries allocated per call); {@link #matmulOnly} is just
 * its {@code matmul} calls on pre-gathered chunks, to separate the product from the data movement around it.
 *
 * <p>Work per operation (both methods): <b>flops = 2·N·B·K_rest</b> (the axpy's N·K_rest subtractions are not
 * counted); JMH prints it as {@code :gflop} (GFLOP/s, see {@link Counters}). The kernels use every core.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 3, time = 10)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
public class LazyUpdateBench {
    /** Output channels. */
    static final int N = 5120;
    /** GPTQ block size. */
    static final int B = 128;
    /** Trailing rows of W1 per matmul, as Gptq.LAZY_CHUNK. */
    static final int CHUNK = 256;

    @State(Scope.Benchmark)
    public static class Shape {
        /** Input channels; K_rest = K − B. */
        @Param({"5120", "27648"})
        public int k;

        @Param({"vector"})
        public String kernels;

        Kernels impl;
        /** W1 = Wᵀ [K, N] row-major fp32, the working copy. */
        float[] wt;
        /** U's block rows [B, K] row-major fp32 (row stride K, as in the full [K, K] factor). */
        float[] u;
        /** Err1 [B, N] row-major fp32. */
        float[] err1;
        /** For matmulOnly: Err1ᵀ [N, B] row-major fp32. */
        Matrix.F32 e;
        /** For matmulOnly: per chunk, U[0:B, j0…j0+CHUNK)ᵀ [CHUNK, B] row-major fp32. */
        float[][] xChunks;
        /** For matmulOnly: [CHUNK, N] row-major fp32 output. */
        float[] y;

        @Setup
        public void setUp() {
            impl = Kernels.byName(kernels);
            SplittableRandom rnd = new SplittableRandom(42);
            wt = uniform(rnd, k * N, 1f);
            u = uniform(rnd, B * k, 0.05f);
            err1 = uniform(rnd, B * N, 0.01f);
            float[] errT = new float[N * B];
            for (int bb = 0; bb < B; bb++) {
                for (int c = 0; c < N; c++) {
                    errT[c * B + bb] = err1[bb * N + c];
                }
            }
            e = new Matrix.F32(errT, N, B);
            int chunks = (k - B + CHUNK - 1) / CHUNK;
            xChunks = new float[chunks][];
            for (int ch = 0; ch < chunks; ch++) {
                int j0 = B + ch * CHUNK;
                int rows = Math.min(CHUNK, k - j0);
                float[] x = new float[CHUNK * B];
                for (int r = 0; r < rows; r++) {
                    for (int bb = 0; bb < B; bb++) {
                        x[r * B + bb] = u[bb * k + j0 + r];
                    }
                }
                xChunks[ch] = x;
            }
            y = new float[CHUNK * N];
        }
    }

    @Benchmark
    public void lazyUpdate(Shape s, Counters.Flops flops, Blackhole bh) {
        lazyBatchUpdate(s.wt, s.u, s.err1, 0, B, N, s.k, s.impl);
        bh.consume(s.wt);
        flops.gflop += flops(s.k) * 1e-9;
    }

    @Benchmark
    public void matmulOnly(Shape s, Counters.Flops flops, Blackhole bh) {
        for (int ch = 0; ch < s.xChunks.length; ch++) {
            int rows = Math.min(CHUNK, s.k - B - ch * CHUNK);
            s.impl.matmul(s.xChunks[ch], rows, s.e, null, s.y);
        }
        bh.consume(s.y);
        flops.gflop += flops(s.k) * 1e-9;
    }

    /** 2·N·B·K_rest. */
    static double flops(int k) {
        return 2.0 * N * B * (k - B);
    }

    /**
     * A copy of {@code Gptq.lazyBatchUpdate} (private there), so this measures the same calls in the same order:
     * W1[i2:, :] −= U[i1:i2, i2:]ᵀ · Err1, U [K, K] row-major addressed with row stride k.
     */
    private static void lazyBatchUpdate(
            float[] wt, float[] u, float[] err1, int i1, int i2, int n, int k, Kernels kernels) {
        int cnt = i2 - i1;
        if (i2 >= k) {
            return;
        }
        float[] errT = new float[n * cnt]; // Err1ᵀ [N, cnt]
        for (int bb = 0; bb < cnt; bb++) {
            for (int c = 0; c < n; c++) {
                errT[c * cnt + bb] = err1[bb * n + c];
            }
        }
        Matrix e = new Matrix.F32(errT, n, cnt);
        int chunk = Math.min(CHUNK, k - i2);
        float[] x = new float[chunk * cnt]; // U[i1:i2, j]ᵀ for a chunk of j: [rows, cnt]
        float[] y = new float[chunk * n];
        for (int j0 = i2; j0 < k; j0 += chunk) {
            int rows = Math.min(chunk, k - j0);
            for (int r = 0; r < rows; r++) {
                for (int bb = 0; bb < cnt; bb++) {
                    x[r * cnt + bb] = u[(i1 + bb) * k + j0 + r];
                }
            }
            kernels.matmul(x, rows, e, null, y);
            for (int r = 0; r < rows; r++) {
                kernels.axpy(-1f, y, r * n, wt, (j0 + r) * n, n);
            }
        }
    }

    static float[] uniform(SplittableRandom rnd, int size, float scale) {
        float[] a = new float[size];
        for (int i = 0; i < size; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1) * scale;
        }
        return a;
    }
}
