package dev.m2q.gptq.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Work counters that JMH prints beside each score. Each benchmark adds its work per operation; in throughput
 * mode (all of these benchmarks, unit ops/s) JMH divides the iteration's total by its time and sums over
 * threads, so {@code :gflop} reads as GFLOP/s and {@code :gbyte} as GB/s (10⁹, not 2³⁰). Time per operation
 * is 1 / the primary score (per thread, for multi-threaded runs).
 */
public final class Counters {
    private Counters() {}

    /** Floating-point operations done, in 10⁹ (an FMA counts 2). */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Flops {
        public double gflop;

        @Setup(Level.Iteration)
        public void reset() {
            gflop = 0;
        }
    }

    /** Bytes read from memory, in 10⁹. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Bytes {
        public double gbyte;

        @Setup(Level.Iteration)
        public void reset() {
            gbyte = 0;
        }
    }
}
