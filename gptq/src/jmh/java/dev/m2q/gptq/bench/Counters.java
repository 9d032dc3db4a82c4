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
 *
 * <p>{@code :peakPct} reads as the achieved share of the machine's fp32 FMA peak in percent: the peak in GFLOP/s is
 * the system property {@code m2q.peak.gflops} (pass {@code -jvmArgsAppend -Dm2q.peak.gflops=…} with what
 * {@code PeakBench.fma2} measured on the machine; tools/bench/kernels.sh does), 452 by default, the figure
 * PeakBench measured on the 2-core reference machine of docs/BENCHMARKS.md.
 */
public final class Counters {
    private Counters() {}

    /** The fp32 FMA peak {@code :peakPct} is read against, GFLOP/s (see the class comment). */
    static final double PEAK_GFLOPS = Double.parseDouble(System.getProperty("m2q.peak.gflops", "452"));

    /** Floating-point operations done, in 10⁹ (an FMA counts 2), and as percent-seconds of the peak. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Flops {
        public double gflop;
        public double peakPct;

        @Setup(Level.Iteration)
        public void reset() {
            gflop = 0;
            peakPct = 0;
        }

        /** Counts one operation of {@code flops} floating-point operations. */
        public void add(double flops) {
            gflop += flops * 1e-9;
            peakPct += flops * 1e-9 / PEAK_GFLOPS * 100;
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
