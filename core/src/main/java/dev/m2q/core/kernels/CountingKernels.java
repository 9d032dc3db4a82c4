package dev.m2q.core.kernels;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.Set;

/**
 * A wrapper around any {@link Kernels} that forwards every call and records, per operation, the calls and the
 * bytes that would cross the host ↔ backend boundary if the wrapped backend were a device reached through
 * today's host-array SPI: the part of each array operand that the call reads is copied in, the part it writes is
 * copied out (an operand read and written counts both ways), as if every call ran on the device (CUDA's
 * small-call policy, which keeps vector-sized calls on the CPU, is not modelled). It measures the design's
 * traffic, not a backend's: the figures issue 14 item 1 (backend-resident buffers) must bring down.
 *
 * <p>The rules, operand by operand (4 bytes per float or int, the SPI's element types):
 *
 * <ul>
 *   <li>weights ({@link Matrix} operands of matmul) count once per distinct {@code Matrix} object, on its first
 *       use, under their own operation "weights" (one call per distinct weight; matmul counts x, bias and y):
 *       the CUDA backend's {@code WeightCache} keys its device copies by the matrix's identity and keeps them
 *       while the object lives, so a weight crosses once (eviction under memory pressure is not modelled).
 *       A weight's bytes are those of its SPI form: bf16 2 per element, fp32 4, W4 its packed qweight (K/8 · N
 *       words), scales (K/G · N floats) and g_idx (K ints); the CUDA backend also uploads the W4 layout it
 *       derives from g_idx (members and group starts, 4·K + 4·(K/G + 1) bytes, and a repacked copy of qweight when
 *       g_idx is not contiguous), which is not counted;
 *   <li>every other array (activations, norm weights, biases, invFreq, positions) counts on every call, only
 *       the part that the call's shape and offsets address;
 *   <li>syrkUpper counts x in and the k·(k+1)/2 upper-triangle sums out, not c in: the CUDA backend computes
 *       the chunk sums from zero on the device and adds them to c on the host, so c never crosses;
 *   <li>a scalar result (dot's sum, a success flag) counts 4 bytes out.
 * </ul>
 *
 * <p>Capabilities ({@link #capability}) are forwarded to the wrapped backend. A module that owns a capability
 * interface counts its operations by implementing {@link CapabilityCounter} and listing it in {@code
 * META-INF/services/dev.m2q.core.kernels.CountingKernels$CapabilityCounter} (the GPTQ module does, for its
 * column loop and Cholesky inverse), so core never names those interfaces.
 *
 * <p>Thread-safe: the tallies are updated under this object's lock (the wrapped calls are not).
 */
public final class CountingKernels implements Kernels {
    /**
     * One operation's tally.
     *
     * @param op the operation's name: the {@link Kernels} method, or a capability's (e.g. "gptq.columnLoop")
     * @param calls calls made
     * @param bytesIn bytes copied host → backend
     * @param bytesOut bytes copied backend → host
     */
    public record OpCount(String op, long calls, long bytesIn, long bytesOut) {
        public long bytes() {
            return bytesIn + bytesOut;
        }
    }

    /**
     * Counts a capability that a method module owns (found through {@link ServiceLoader}, see the class
     * javadoc).
     */
    public interface CapabilityCounter {
        /**
         * The capability {@code type} as a counting wrapper should offer it, or empty when this counter does not
         * handle {@code type}.
         *
         * @param found what the wrapped backend offers (empty when it offers nothing: the counter may then wrap
         *     the module's Java implementation over {@code counter.inner()}, modelling a device backend that runs
         *     the capability whole, as the CUDA backend does)
         * @param counter the wrapper, whose {@link #record} the counter calls
         */
        <T> Optional<T> count(Class<T> type, Optional<T> found, CountingKernels counter);
    }

    private final Kernels inner;
    private final Map<String, long[]> tallies = new LinkedHashMap<>();
    private Backend backend;
    private final Set<Object> seenWeights = Collections.newSetFromMap(new IdentityHashMap<>());

    public CountingKernels(Kernels inner) {
        this.inner = Objects.requireNonNull(inner, "inner");
    }

    /** The wrapped backend. */
    public Kernels inner() {
        return inner;
    }

    @Override
    public String name() {
        return "counting(" + inner.name() + ")";
    }

    /** Adds one call of {@code op} moving {@code in} bytes in and {@code out} bytes out. */
    public synchronized void record(String op, long in, long out) {
        long[] t = tallies.computeIfAbsent(op, k -> new long[3]);
        t[0]++;
        t[1] += in;
        t[2] += out;
    }

    /**
     * True the first time {@code weight} (by identity) is seen, and it is then remembered: the caller counts its
     * bytes only then (the weight-cache rule of the class javadoc).
     */
    public synchronized boolean firstUse(Object weight) {
        return seenWeights.add(weight);
    }

    /** The tallies so far, in the order the operations were first called. */
    public synchronized List<OpCount> counts() {
        List<OpCount> out = new ArrayList<>();
        tallies.forEach((op, t) -> out.add(new OpCount(op, t[0], t[1], t[2])));
        return List.copyOf(out);
    }

    /** One operation's tally (zeros when it was not called). */
    public synchronized OpCount count(String op) {
        long[] t = tallies.getOrDefault(op, new long[3]);
        return new OpCount(op, t[0], t[1], t[2]);
    }

    /** All operations together, named "total". */
    public synchronized OpCount total() {
        long c = 0, in = 0, out = 0;
        for (long[] t : tallies.values()) {
            c += t[0];
            in += t[1];
            out += t[2];
        }
        return new OpCount("total", c, in, out);
    }

    /**
     * Forgets the tallies; with {@code weights} also the weights already seen (so they count again, as after the
     * backend's cache is cleared).
     */
    public synchronized void reset(boolean weights) {
        tallies.clear();
        if (weights) {
            seenWeights.clear();
        }
    }

    /** A readable table: per operation calls, bytes in, bytes out, then the total. */
    public String table() {
        List<OpCount> rows = new ArrayList<>(counts());
        rows.add(total());
        StringBuilder sb = new StringBuilder(
                String.format(Locale.ROOT, "%-20s %10s %16s %16s%n", "operation", "calls", "bytes in", "bytes out"));
        for (OpCount r : rows) {
            sb.append(
                    String.format(Locale.ROOT, "%-20s %10d %16d %16d%n", r.op(), r.calls(), r.bytesIn(), r.bytesOut()));
        }
        return sb.toString();
    }

    /** The bytes of a weight in its SPI form (see the class javadoc). */
    public static long weightBytes(Matrix w) {
        long n = w.rows(), k = w.cols();
        return switch (w) {
            case Matrix.Bf16 b -> 2 * n * k;
            case Matrix.F32 f -> 4 * n * k;
            case Matrix.W4 q -> q.qweight().byteSize() + 4L * q.scales().length + 4L * q.gIdx().length;
        };
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        inner.matmul(x, rows, w, bias, y);
        long in = 4L * rows * w.cols() + (bias == null ? 0 : 4L * w.rows());
        synchronized (this) {
            if (firstUse(w)) {
                record("weights", weightBytes(w), 0);
            }
            record("matmul", in, 4L * rows * w.rows());
        }
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float r = inner.dot(a, aOff, b, bOff, n);
        record("dot", 8L * n, 4);
        return r;
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        inner.axpy(alpha, x, xOff, y, yOff, n);
        record("axpy", 8L * n, 4L * n);
    }

    @Override
    public void syrkUpper(float[] x, int rows, int k, float[] c) {
        inner.syrkUpper(x, rows, k, c);
        record("syrkUpper", 4L * rows * k, 4L * k * (k + 1) / 2);
    }

    @Override
    public void gemmAcc(
            int m,
            int n,
            int depth,
            float[] a,
            int aOff,
            int aRow,
            int aCol,
            float[] b,
            int bOff,
            int ldb,
            float[] c,
            int cOff,
            int ldc) {
        inner.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
        if (m <= 0 || n <= 0 || depth <= 0) {
            record("gemmAcc", 0, 0);
            return;
        }
        long mn = (long) m * n;
        record("gemmAcc", 4L * ((long) m * depth + (long) depth * n + mn), 4L * mn);
    }

    @Override
    public void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        inner.rmsNorm(x, rows, dim, weight, eps, out);
        record("rmsNorm", 4L * rows * dim + 4L * dim, 4L * rows * dim);
    }

    @Override
    public void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        inner.rope(x, rows, heads, headDim, invFreq, positions);
        long len = 4L * rows * heads * headDim;
        record("rope", len + 4L * (headDim / 2) + 4L * rows, len);
    }

    @Override
    public void attention(
            float[] q,
            float[] k,
            float[] v,
            int nSeq,
            int seqLen,
            int startPos,
            int heads,
            int kvHeads,
            int headDim,
            float[] out) {
        inner.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
        long qLen = 4L * nSeq * seqLen * heads * headDim;
        long kvLen = 4L * nSeq * (startPos + seqLen) * kvHeads * headDim;
        record("attention", qLen + 2 * kvLen, qLen);
    }

    @Override
    public void swiglu(float[] gate, float[] up, int n) {
        inner.swiglu(gate, up, n);
        record("swiglu", 8L * n, 4L * n);
    }

    @Override
    public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        inner.absMaxColumns(x, xOff, rows, cols, out, outOff);
        record("absMaxColumns", 4L * rows * cols + 4L * cols, 4L * cols);
    }

    /** The wrapped kernels' {@link Backend}, its crossings counted in these tallies ({@link CountingBackend}). */
    @Override
    public synchronized Backend backend() {
        if (backend == null) {
            backend = new CountingBackend(inner.backend(), this);
        }
        return backend;
    }

    /**
     * The wrapped backend's capability, passed through the first registered {@link CapabilityCounter} that
     * handles {@code type}; as found when none does.
     */
    @Override
    public <T> Optional<T> capability(Class<T> type) {
        Optional<T> found = inner.capability(type);
        for (CapabilityCounter c : ServiceLoader.load(CapabilityCounter.class)) {
            Optional<T> counted = c.count(type, found, this);
            if (counted.isPresent()) {
                return counted;
            }
        }
        return found;
    }
}
