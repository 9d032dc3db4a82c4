package dev.m2q.validate.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The read-bandwidth ceiling {@link MatVecBench} is read against: two threads, each summing its own native
 * segment of {@code mib} MiB front to back with the Vector API (8 independent add chains, so neither latency
 * nor the adds bound it). One operation = one thread's pass, so the machine's bandwidth is
 * 2 · mib · 2²⁰ bytes / (time per operation). mib = 512 (1 GiB in all, over twice the reported L3) is the
 * DRAM ceiling of the cold runs; mib = 32 (L3-resident) that of the hot runs.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx1g", "-XX:MaxDirectMemorySize=4g"})
@State(Scope.Thread)
public class ReadBandwidthBench {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    @Param({"512", "32"})
    public int mib;

    Arena arena;
    MemorySegment data;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        data = arena.allocate((long) mib << 20, 64);
        for (long i = 0; i < data.byteSize() / 4; i++) {
            data.setAtIndex(ValueLayout.JAVA_FLOAT, i, (i & 1023) * 1e-3f);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    @Threads(2)
    public float stream2() {
        return sum(data);
    }

    static float sum(MemorySegment a) {
        long v = F.vectorByteSize();
        ByteOrder le = ByteOrder.LITTLE_ENDIAN;
        FloatVector s0 = FloatVector.zero(F);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        FloatVector s4 = s0;
        FloatVector s5 = s0;
        FloatVector s6 = s0;
        FloatVector s7 = s0;
        long end = a.byteSize() - a.byteSize() % (8 * v);
        for (long i = 0; i < end; i += 8 * v) {
            s0 = s0.add(FloatVector.fromMemorySegment(F, a, i, le));
            s1 = s1.add(FloatVector.fromMemorySegment(F, a, i + v, le));
            s2 = s2.add(FloatVector.fromMemorySegment(F, a, i + 2 * v, le));
            s3 = s3.add(FloatVector.fromMemorySegment(F, a, i + 3 * v, le));
            s4 = s4.add(FloatVector.fromMemorySegment(F, a, i + 4 * v, le));
            s5 = s5.add(FloatVector.fromMemorySegment(F, a, i + 5 * v, le));
            s6 = s6.add(FloatVector.fromMemorySegment(F, a, i + 6 * v, le));
            s7 = s7.add(FloatVector.fromMemorySegment(F, a, i + 7 * v, le));
        }
        return s0.add(s1).add(s2).add(s3).add(s4).add(s5).add(s6).add(s7).reduceLanes(VectorOperators.ADD);
    }
}
