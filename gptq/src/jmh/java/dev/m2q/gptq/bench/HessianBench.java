package dev.m2q.gptq.bench;

import dev.m2q.core.kernels.Kernels;
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
 * The Hessian accumulation's inner step ({@code HessianAccumulator.add}): {@link Kernels#syrkUpper} adds one
 * chunk of T = 512 tokens x [T, K] into the upper triangle of Σ x xᵀ [K, K].
 *
 * <p>Work per operation: one FMA (2 flops) per token per upper-triangle pair (i ≤ j), so
 * <b>flops = 2·T·K(K+1)/2 = T·K·(K+1)</b>; JMH prints it as {@code :gflop} (GFLOP/s, see {@link Counters}).
 *
 * <p>{@link #syrkUpper} runs K = 5120 (a 7B-class hidden size) with both kernel sets; {@link #syrkUpperLarge}
 * runs K = 27648 (an MLP down-projection input: C is 27648² fp32 = 3.06 GB, hence -Xmx8g) with the vector
 * kernels only, since the scalar twin would take minutes per operation there. Both kernel sets use every core
 * (the kernels split rows of C over the common pool), so compare them with the multi-threaded peak.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 3, time = 10)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx8g"})
public class HessianBench {
    /** Tokens per chunk. */
    static final int T = 512;

    /** K = 5120, both kernel sets. */
    @State(Scope.Benchmark)
    public static class Chunk {
        @Param({"vector", "scalar"})
        public String kernels;

        @Param({"5120"})
        public int k;

        Kernels impl;
        /** [T, K] row-major fp32, seeded uniform in [-1, 1). */
        float[] x;
        /** [K, K] row-major fp32; only the upper triangle is written. */
        float[] c;

        @Setup
        public void setUp() {
            impl = Kernels.byName(kernels);
            x = activations(T, k);
            c = new float[k * k];
        }
    }

    /** K = 27648, vector kernels. */
    @State(Scope.Benchmark)
    public static class LargeChunk {
        @Param({"vector"})
        public String kernels;

        @Param({"27648"})
        public int k;

        Kernels impl;
        /** [T, K] row-major fp32, seeded uniform in [-1, 1). */
        float[] x;
        /** [K, K] row-major fp32 (3.06 GB); only the upper triangle is written. */
        float[] c;

        @Setup
        public void setUp() {
            impl = Kernels.byName(kernels);
            x = activations(T, k);
            c = new float[k * k];
        }
    }

    @Benchmark
    public void syrkUpper(Chunk s, Counters.Flops flops, Blackhole bh) {
        s.impl.syrkUpper(s.x, T, s.k, s.c);
        bh.consume(s.c);
        flops.add(flops(s.k));
    }

    @Benchmark
    public void syrkUpperLarge(LargeChunk s, Counters.Flops flops, Blackhole bh) {
        s.impl.syrkUpper(s.x, T, s.k, s.c);
        bh.consume(s.c);
        flops.add(flops(s.k));
    }

    /** T·K·(K+1): 2 flops per token for each of the K(K+1)/2 upper-triangle pairs. */
    static double flops(int k) {
        return (double) T * k * (k + 1);
    }

    static float[] activations(int rows, int k) {
        SplittableRandom rnd = new SplittableRandom(42);
        float[] x = new float[rows * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return x;
    }
}
