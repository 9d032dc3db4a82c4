package dev.m2q.gptq.bench;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.gptq.GptqLoop;
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
 * W1 = Wᵀ [K, N], so the update is W1[i2:, :] −= U[i1:i2, i2:]ᵀ·Err1: one {@link Kernels#gemmAcc} with Uᵀ
 * read in place through its strides. {@link #lazyUpdate} calls {@link GptqLoop#lazyBatchUpdate} itself, so it
 * times exactly what the GPTQ loop runs.
 *
 * <p>Work per operation: <b>flops = 2·N·B·K_rest</b> (the negation of Err1, N·B, is not counted); JMH prints it
 * as {@code :gflop} (GFLOP/s, see {@link Counters}). The kernels use every core.
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

        @Setup
        public void setUp() {
            impl = Kernels.byName(kernels);
            SplittableRandom rnd = new SplittableRandom(42);
            wt = uniform(rnd, k * N, 1f);
            u = uniform(rnd, B * k, 0.05f);
            err1 = uniform(rnd, B * N, 0.01f);
        }
    }

    @Benchmark
    public void lazyUpdate(Shape s, Counters.Flops flops, Blackhole bh) {
        GptqLoop.lazyBatchUpdate(s.impl, s.wt, s.u, s.err1, 0, B, N, s.k);
        bh.consume(s.wt);
        flops.add(flops(s.k));
    }

    /** 2·N·B·K_rest. */
    static double flops(int k) {
        return 2.0 * N * B * (k - B);
    }

    static float[] uniform(SplittableRandom rnd, int size, float scale) {
        float[] a = new float[size];
        for (int i = 0; i < size; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1) * scale;
        }
        return a;
    }
}
