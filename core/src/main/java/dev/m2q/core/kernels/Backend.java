package dev.m2q.core.kernels;

import java.util.function.Consumer;

/**
 * The layer and decode operations on data the backend owns: {@link Buf}s and {@link Weight}s live where the
 * backend computes (device memory for CUDA, plain heap arrays for the Java backend, which wraps them without a
 * copy), and they cross the host ↔ backend boundary only where a method says so. A layer pass or a decode step
 * written on these operations moves its weights in once, its inputs in and its results out, and nothing in
 * between.
 *
 * <p>Crossings, the only methods that move data between the host and the backend: {@link #wrap}, {@link #write},
 * {@link #read}, {@link #take}, {@link #inspect}, {@link #update} and {@link #weight(Matrix)}. Every other method works on the
 * backend's own data. {@link CountingKernels} counts the crossings.
 *
 * <p>Every operation computes exactly what the {@link Kernels} operation of the same name computes on the same
 * values (the Java backend calls it), so a forward written here gives the bits of the host-array forward on the
 * Java backend.
 *
 * <p>Buffers and weights belong to the backend that made them; passing one to another backend is an error. Not
 * thread-safe unless the implementation says so: one layer pass or one decode loop at a time.
 */
public interface Backend {
    /** A backend-resident fp32 array of {@link #length()} values. Closing frees it; closing twice is harmless. */
    interface Buf extends AutoCloseable {
        long length();

        @Override
        void close();
    }

    /** A weight matrix [rows, cols] resident on the backend, the operand of {@link #matmul}. */
    interface Weight extends AutoCloseable {
        int rows();

        int cols();

        @Override
        void close();
    }

    /** Short name for logs: "java (vector)", "cuda", … */
    String name();

    /** A new buffer of {@code length} zeros (no crossing). */
    Buf alloc(long length);

    /**
     * Hands {@code host} to the backend as a buffer of its length (a crossing of all of it). The Java backend keeps
     * the array itself, without a copy: an operation that writes the buffer writes the array. So a caller may keep
     * using {@code host} when it hands over an input that only operations that read it will see (the layer input of a
     * forward); otherwise it must not use the array afterwards.
     */
    Buf wrap(float[] host);

    /** dst[dstOff, dstOff + len) = src[off, off + len) (a crossing, host → backend). */
    void write(float[] src, int off, Buf dst, long dstOff, int len);

    /** dst[dstOff, dstOff + len) = src[srcOff, srcOff + len) (a crossing, backend → host). */
    void read(Buf src, long srcOff, float[] dst, int dstOff, int len);

    /**
     * The whole of {@code b} as a host array, closing {@code b} (a crossing, backend → host). The Java backend
     * returns its array without a copy.
     */
    float[] take(Buf b);

    /**
     * Shows the whole of {@code b} to {@code f} on the host, read-only (the Java backend passes its array; a device
     * backend reads the buffer out: one crossing). For observers that have no kernel.
     */
    void inspect(Buf b, Consumer<float[]> f);

    /**
     * Runs {@code f} on the host over the whole of {@code b} and keeps what it writes (the Java backend passes its
     * array; a device backend reads the buffer out and writes it back: two crossings). For the host-only paths
     * that have no kernel, such as the simulated activation quantization of validate.
     */
    void update(Buf b, Consumer<float[]> f);

    /**
     * {@code m} resident on the backend (a crossing of the matrix's bytes in its own form: bf16, fp32, or W4's packed
     * words, scales and g_idx). The Java backend holds {@code m} itself.
     */
    Weight weight(Matrix m);

    /**
     * The buffer {@code data} [rows, cols] as an fp32 weight, taking ownership of it (no crossing): closing the
     * weight frees the buffer.
     */
    Weight weight(Buf data, int rows, int cols);

    /** dst[dstOff + i] = src[srcOff + i] for i in [0, n) (no crossing). */
    void copy(Buf src, long srcOff, Buf dst, long dstOff, long n);

    /** out[i] = a[i] + b[i] for i in [0, n); out may be a or b. */
    void add(Buf a, Buf b, Buf out, long n);

    /** x[i] = x[i] · f for i in [0, n), in fp32. */
    void scale(Buf x, long n, float f);

    /** {@link Kernels#matmul}: y [rows, w.rows()] = x [rows, w.cols()] · Wᵀ (+ bias, which may be null). */
    void matmul(Buf x, int rows, Weight w, Buf bias, Buf y);

    /** {@link Kernels#rmsNorm}; out may be x. */
    void rmsNorm(Buf x, int rows, int dim, Buf weight, float eps, Buf out);

    /**
     * {@link Kernels#rope} in place, row r at position startPos + r % seqLen (nSeq sequences of seqLen rows, or
     * one sequence's new rows after startPos cached ones).
     */
    void rope(Buf x, int rows, int heads, int headDim, Buf invFreq, int startPos, int seqLen);

    /** {@link Kernels#attention}, with the same layout of k and v. */
    void attention(
            Buf q, Buf k, Buf v, int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim, Buf out);

    /**
     * {@link Kernels#rope} in place, row r at {@code layout.position(r)}: x [layout.rows(), heads·headDim]. The
     * layout is a parameter of the call, like the sizes (a device backend sends its few ints per row with the
     * launch), not a crossing of data.
     */
    void ropePacked(Buf x, int heads, int headDim, Buf invFreq, PackedRows layout);

    /**
     * Grouped-query attention of packed rows ({@link PackedRows}): q, out [layout.rows(), heads·headDim]; k, v
     * [layout.rows(), kvHeads·headDim], the rows' own keys and values. Row r, head h reads kv head h / (heads /
     * kvHeads) and sees the key rows {@code layout.key(r, 0..visible(r) − 1)}: its prefix, then its segment up to
     * itself, in that order. The arithmetic of {@link Kernels#attention} for each row (softmax scale 1/sqrt(headDim),
     * scores and output in fp32, the denominator in double, the keys in that order), so a row gives the bits of the
     * same row attending to the same keys from a KV cache. Every element of out is written.
     */
    void attentionPacked(Buf q, Buf k, Buf v, PackedRows layout, int heads, int kvHeads, int headDim, Buf out);

    /** {@link Kernels#swiglu} in place on gate. */
    void swiglu(Buf gate, Buf up, long n);

    /** {@link Kernels#syrkUpper}: c [k, k] += the upper triangle of xᵀx, x [rows, k]. */
    void syrkUpper(Buf x, int rows, int k, Buf c);

    /** {@link Kernels#absMaxColumns}: out[c] = max(out[c], max_r |x[r, c]|), x [rows, cols]. */
    void absMaxColumns(Buf x, int rows, int cols, Buf out);

    /**
     * Device memory the backend can still hand out, in bytes, to size batches and keep the working set resident;
     * {@link Long#MAX_VALUE} where the heap is the limit (the Java backend: the callers size by the heap).
     */
    default long freeBytes() {
        return Long.MAX_VALUE;
    }
}
