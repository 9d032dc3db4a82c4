package dev.m2q.gptq.bench;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
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
import org.openjdk.jmh.infra.Blackhole;

/**
 * The prefill / calibration product of a decoder layer: {@link Kernels#matmul} of T rows x [T, K] fp32 with a
 * BF16 weight W [N, K] (read in place, as from a mapped checkpoint), y [T, N] = x·Wᵀ, at the linears of a
 * 32B-class layer (hidden 5120, MLP 27648, 8 KV heads of 128):
 *
 * <ul>
 *   <li>{@code 5120x5120}: q_proj, o_proj; {@code 5120x1024}: k_proj, v_proj;
 *   <li>{@code 5120x27648}: gate_proj, up_proj; {@code 27648x5120}: down_proj (written K x N).
 * </ul>
 *
 * <p>Work per operation: <b>flops = 2·T·K·N</b>; JMH prints it as {@code :gflop} (GFLOP/s) and {@code :peakPct}
 * (share of the fp32 peak, see {@link Counters}). The kernels use every core. Inputs seeded; the weights are
 * bf16 of uniform values in [-1, 1), the activations uniform in [-1, 1).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 1, time = 5)
@Measurement(iterations = 3, time = 10)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx10g"})
public class PrefillBench {
    @State(Scope.Benchmark)
    public static class Shape {
        /** Calibration rows (tokens) per product. */
        @Param({"512", "2048"})
        public int rows;

        /** K x N: input width x output width. */
        @Param({"5120x5120", "5120x1024", "5120x27648", "27648x5120"})
        public String shape;

        @Param({"vector"})
        public String kernels;

        Kernels impl;
        Arena arena;
        Matrix w;
        /** [rows, K] row-major fp32. */
        float[] x;
        /** [rows, N] row-major fp32. */
        float[] y;

        int k;
        int n;

        @Setup(Level.Trial)
        public void setUp() {
            String[] kn = shape.split("x");
            k = Integer.parseInt(kn[0]);
            n = Integer.parseInt(kn[1]);
            impl = Kernels.byName(kernels);
            SplittableRandom rnd = new SplittableRandom(42);
            arena = Arena.ofShared();
            MemorySegment seg = arena.allocate(2L * n * k);
            for (long i = 0; i < (long) n * k; i++) {
                float v = (float) (rnd.nextDouble() * 2 - 1);
                seg.set(Matrix.LE_SHORT, 2 * i, (short) (Float.floatToRawIntBits(v) >>> 16));
            }
            w = new Matrix.Bf16(seg, n, k);
            x = new float[rows * k];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (rnd.nextDouble() * 2 - 1);
            }
            y = new float[rows * n];
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            arena.close();
        }
    }

    @Benchmark
    public void matmul(Shape s, Counters.Flops flops, Blackhole bh) {
        s.impl.matmul(s.x, s.rows, s.w, null, s.y);
        bh.consume(s.y);
        flops.add(2.0 * s.rows * s.k * s.n);
    }
}
