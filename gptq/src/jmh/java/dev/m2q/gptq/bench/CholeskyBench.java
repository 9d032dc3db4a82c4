package dev.m2q.gptq.bench;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.gptq.GptqKernels;
import dev.m2q.gptq.JavaGptqKernels;
import java.util.Arrays;
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
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * GPTQ's fp32 {@link GptqKernels#choleskyInverse}: A + shift·I = L·Lᵀ, then L⁻¹, in place in one K² buffer, on
 * the two shapes of a 32B-class layer (K = 5120 hidden, K = 27648 down_proj's input). A is symmetric and strictly
 * diagonally dominant (off-diagonal entries in ±0.5/K, diagonal 1), so it is positive definite by Gershgorin and the
 * fp32 path never falls back to fp64. The buffer is refilled before each operation, outside the timed region.
 *
 * <p>Work per operation: <b>flops = 2·K³/3</b> (K³/6 multiply-adds for the factor and as many for the inverse,
 * an FMA counting 2); JMH prints it as {@code :gflop} (GFLOP/s, see {@link Counters}). One operation at K = 27648
 * is minutes and needs two K² buffers (~6 GB of heap with the refill's source), hence the small iteration counts.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 1, time = 1)
@Measurement(iterations = 1, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx8g"})
public class CholeskyBench {
    @State(Scope.Benchmark)
    public static class Shape {
        @Param({"5120", "27648"})
        public int k;

        @Param({"vector"})
        public String kernels;

        GptqKernels impl;
        /** The input: A's strict upper triangle, the lower triangle scratch. */
        float[] source;
        /** The working buffer, refilled from {@link #source} before each operation. */
        float[] a;
        /** A's diagonal. */
        float[] diag;

        @Setup(Level.Trial)
        public void setUp() {
            impl = new JavaGptqKernels(Kernels.byName(kernels));
            source = new float[k * k];
            a = new float[k * k];
            diag = new float[k];
            Arrays.fill(diag, 1f);
            long state = 42;
            for (int i = 0; i < k; i++) {
                for (int j = i + 1; j < k; j++) {
                    state = state * 6364136223846793005L + 1442695040888963407L; // seeded LCG, cheap at K²
                    source[i * k + j] = (float) (((state >>> 40) / (double) (1L << 24) - 0.5) / k);
                }
            }
        }

        @Setup(Level.Invocation)
        public void refill() {
            System.arraycopy(source, 0, a, 0, a.length);
        }
    }

    @Benchmark
    public void choleskyInverse(Shape s, Counters.Flops flops, Blackhole bh) {
        if (!s.impl.choleskyInverse(s.a, s.diag, 0f, s.k, false)) {
            throw new IllegalStateException("the diagonally dominant A must factor in fp32");
        }
        bh.consume(s.a);
        flops.add(flops(s.k));
    }

    /** 2·K³/3. */
    static double flops(int k) {
        return 2.0 * k * k * (double) k / 3;
    }
}
