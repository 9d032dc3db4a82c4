package dev.m2q.gptq;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.CountingKernels;
import java.util.Objects;
import java.util.Optional;

/**
 * {@link GptqKernels} that forwards to another implementation and records the bytes its two operations would
 * move across the host ↔ device boundary with today's host-array interface, into a {@link CountingKernels}
 * (whose javadoc states the rules). A counting backend offers it through {@link CountingKernels#capability} by
 * way of {@link Counter}, registered in this module's {@code META-INF/services}, so core stays ignorant of GPTQ.
 *
 * <ul>
 *   <li>"gptq.choleskyInverse": in a [k, k] and diag [k]; out a [k, k] and the success flag (4 bytes), as
 *       DeviceCholesky uploads and downloads them;
 *   <li>"gptq.columnLoop": in W1 [K, N], U [K, K], perm [K] when given and the static scales [K/G, N] when
 *       given; out the codes [K, N] (one int each, the interface's form), g_idx [K] and the scales [K/G, N] when
 *       computed.
 * </ul>
 */
public final class CountingGptqKernels implements GptqKernels {
    private final GptqKernels inner;
    private final CountingKernels counter;

    public CountingGptqKernels(GptqKernels inner, CountingKernels counter) {
        this.inner = Objects.requireNonNull(inner, "inner");
        this.counter = Objects.requireNonNull(counter, "counter");
    }

    /**
     * Wraps what the counted backend offers for {@link GptqKernels}; when it offers nothing (the Java kernels),
     * wraps the Java reference over the counted backend's inner kernels, so the loop is counted as one device
     * call, as the CUDA backend runs it, rather than as the products it is made of.
     */
    public static final class Counter implements CountingKernels.CapabilityCounter {
        @Override
        public <T> Optional<T> count(Class<T> type, Optional<T> found, CountingKernels counter) {
            if (type != GptqKernels.class) {
                return Optional.empty();
            }
            GptqKernels impl = found.map(GptqKernels.class::cast).orElseGet(() -> new JavaGptqKernels(counter.inner()));
            return Optional.of(type.cast(new CountingGptqKernels(impl, counter)));
        }
    }

    @Override
    public String name() {
        return "counting(" + inner.name() + ")";
    }

    @Override
    public boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64) {
        boolean ok = inner.choleskyInverse(a, diag, shift, k, fp64);
        long kk = 4L * k * k;
        counter.record("gptq.choleskyInverse", kk + 4L * k, kk + 4);
        return ok;
    }

    @Override
    public GptqCodes columnLoop(GptqProblem p) {
        GptqCodes codes = inner.columnLoop(p);
        long k = p.k(), n = p.n(), scales = 4L * p.groups() * n;
        long in = 4 * k * n + 4 * k * k + (p.perm() == null ? 0 : 4 * k) + (p.staticGroups() ? scales : 0);
        long out = 4 * k * n + 4 * k + (p.staticGroups() ? 0 : scales);
        counter.record("gptq.columnLoop", in, out);
        return codes;
    }

    @Override
    public void finishHessian(Backend backend, Backend.Buf sum, int k, long tokens) {
        inner.finishHessian(backend, sum, k, tokens);
        counter.record("gptq.finishHessian", 0, 0);
    }

    /**
     * Counts H's diagonal in (K floats, read out by the device implementation) and the results out: the codes
     * [K, N] one int each, the scales [K/G, N], g_idx [K] and the proxy loss (8 bytes).
     */
    @Override
    public Resident quantize(Backend backend, Backend.Weight w, Backend.Buf h, GptqOptions o) {
        Resident r = inner.quantize(backend, w, h, o);
        long k = w.cols(), n = w.rows();
        long groups = r.result().q().scales().length / Math.max(1, n);
        counter.record("gptq.quantize", 0, 4 * k + 4 * k * n + 4 * groups * n + 4 * k + 8);
        return r;
    }
}
