package dev.m2q.gptq.bench;

import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The roofline the kernel benchmarks are read against, measured with the Vector API on this machine.
 *
 * <ul>
 *   <li>{@link #fma1}/{@link #fma2}: the fp32 FMA peak, 1 and 2 threads. Each thread runs 12 independent FMA
 *       chains of {@code FloatVector.SPECIES_PREFERRED} in registers (enough to cover FMA latency × ports on
 *       current x86), <b>flops = 2 × lanes × 12 × iterations</b> per operation per thread.
 *   <li>{@link #stream1}/{@link #stream2}: memory read bandwidth, 1 and 2 threads. Each thread sums its own
 *       512 MiB float array with FMAs into 4 accumulators, <b>bytes = 4 × length</b> per operation per thread.
 * </ul>
 *
 * <p>JMH prints {@code :gflop} as GFLOP/s and {@code :gbyte} as GB/s, summed over threads ({@link Counters}).
 * The species and its lane count are printed by the fork at set-up.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 5)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
public class PeakBench {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** FMA loop trips per operation (about 0.1 s at ~100 GFLOP/s per core with 16 lanes). */
    static final int ITERATIONS = 1 << 24;
    /** Floats per streamed array: 512 MiB. */
    static final int STREAM_LENGTH = 128 << 20;

    /** Per-thread operands, loaded from the heap so the JIT cannot fold the chains. */
    @State(Scope.Thread)
    public static class Regs {
        float[] m;
        float[] c;
        int iterations;

        @Setup
        public void setUp() {
            m = new float[F.length()];
            c = new float[F.length()];
            for (int l = 0; l < F.length(); l++) {
                m[l] = 0.999999f - l * 1e-8f;
                c[l] = 1e-6f * (l + 1);
            }
            iterations = ITERATIONS;
            System.out.println("species " + F + ", " + F.length() + " fp32 lanes");
        }
    }

    /** A per-thread 512 MiB array, so two threads stream two arrays and share no cache lines. */
    @State(Scope.Thread)
    public static class Stream {
        float[] a;

        @Setup
        public void setUp() {
            a = new float[STREAM_LENGTH];
            for (int i = 0; i < a.length; i++) {
                a[i] = (i & 1023) * 1e-3f;
            }
        }
    }

    @Benchmark
    @Threads(1)
    public float fma1(Regs r, Counters.Flops flops) {
        flops.add(fmaFlops(r.iterations));
        return fmaChains(r);
    }

    @Benchmark
    @Threads(2)
    public float fma2(Regs r, Counters.Flops flops) {
        flops.add(fmaFlops(r.iterations));
        return fmaChains(r);
    }

    @Benchmark
    @Threads(1)
    public float stream1(Stream s, Counters.Bytes bytes) {
        bytes.gbyte += 4.0 * s.a.length * 1e-9;
        return streamSum(s.a);
    }

    @Benchmark
    @Threads(2)
    public float stream2(Stream s, Counters.Bytes bytes) {
        bytes.gbyte += 4.0 * s.a.length * 1e-9;
        return streamSum(s.a);
    }

    static double fmaFlops(int iterations) {
        return 2.0 * F.length() * 12 * iterations;
    }

    /** 12 independent chains a ← a·m + c; the returned sum keeps every chain live (JMH consumes it). */
    static float fmaChains(Regs r) {
        FloatVector m = FloatVector.fromArray(F, r.m, 0);
        FloatVector c = FloatVector.fromArray(F, r.c, 0);
        FloatVector a0 = c.add(0f);
        FloatVector a1 = c.add(1f);
        FloatVector a2 = c.add(2f);
        FloatVector a3 = c.add(3f);
        FloatVector a4 = c.add(4f);
        FloatVector a5 = c.add(5f);
        FloatVector a6 = c.add(6f);
        FloatVector a7 = c.add(7f);
        FloatVector a8 = c.add(8f);
        FloatVector a9 = c.add(9f);
        FloatVector a10 = c.add(10f);
        FloatVector a11 = c.add(11f);
        for (int i = 0; i < r.iterations; i++) {
            a0 = a0.fma(m, c);
            a1 = a1.fma(m, c);
            a2 = a2.fma(m, c);
            a3 = a3.fma(m, c);
            a4 = a4.fma(m, c);
            a5 = a5.fma(m, c);
            a6 = a6.fma(m, c);
            a7 = a7.fma(m, c);
            a8 = a8.fma(m, c);
            a9 = a9.fma(m, c);
            a10 = a10.fma(m, c);
            a11 = a11.fma(m, c);
        }
        return a0.add(a1)
                .add(a2)
                .add(a3)
                .add(a4)
                .add(a5)
                .add(a6)
                .add(a7)
                .add(a8)
                .add(a9)
                .add(a10)
                .add(a11)
                .reduceLanes(VectorOperators.ADD);
    }

    /** Σ a, read once front to back with FMAs into 4 accumulators (a·1 + acc). */
    static float streamSum(float[] a) {
        FloatVector one = FloatVector.broadcast(F, 1f);
        FloatVector s0 = FloatVector.zero(F);
        FloatVector s1 = FloatVector.zero(F);
        FloatVector s2 = FloatVector.zero(F);
        FloatVector s3 = FloatVector.zero(F);
        int v = F.length();
        int i = 0;
        for (; i + 4 * v <= a.length; i += 4 * v) {
            s0 = FloatVector.fromArray(F, a, i).fma(one, s0);
            s1 = FloatVector.fromArray(F, a, i + v).fma(one, s1);
            s2 = FloatVector.fromArray(F, a, i + 2 * v).fma(one, s2);
            s3 = FloatVector.fromArray(F, a, i + 3 * v).fma(one, s3);
        }
        float s = s0.add(s1).add(s2).add(s3).reduceLanes(VectorOperators.ADD);
        for (; i < a.length; i++) {
            s += a[i];
        }
        return s;
    }
}
