package dev.m2q.gptq;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;

/**
 * The GPTQ Hessian of one linear input, H = (2/T)·Σ_t x_t x_tᵀ over all T calibration tokens, accumulated from
 * chunks of activations as the layer pass produces them. Linears sharing an input (q/k/v; gate/up) share one.
 *
 * <p>The buffer lives on a {@link Backend}: the layer pass's (a device's memory under CUDA), where the syrk and the
 * finishing step run, or the Java backend's heap for the host API ({@link #add(float[], int)}, {@link #hessian()}).
 *
 * <p>Memory: one [K, K] fp32 buffer, 4·K² bytes (3.06 GB for K = 27648), and nothing else. fp32 (not fp64)
 * because fp64 would double that. Only the upper triangle is accumulated ({@link Kernels#syrkUpper}, half the
 * flops); {@link #hessian()} scales it and mirrors it into the lower triangle, in place.
 *
 * <p>Deterministic: each element's sum runs over the chunks in the order they were added and over tokens in
 * order, whatever the thread count. Adding the same rows in different chunks changes only fp32 rounding.
 */
public final class HessianAccumulator implements AutoCloseable {
    /** Side of the tiles {@link #hessian()} scales and mirrors. */
    private static final int MIRROR_TILE = 64;

    private final int k;
    private final Backend backend;
    private final GptqKernels gptq;
    /** [K, K] row-major fp32 on the backend: Σ x xᵀ, upper triangle; finished, the full H. Null once handed out. */
    private Buf sum;

    private long tokens;
    private boolean finished;

    public HessianAccumulator(int k) {
        this(k, Kernels.fromProperty());
    }

    /** On the heap: the Java backend of {@code kernels}, finished by the Java reference. */
    public HessianAccumulator(int k, Kernels kernels) {
        this(k, new JavaBackend(kernels), new JavaGptqKernels(kernels));
    }

    /**
     * Resident on {@code backend}: the sums are accumulated there ({@link Backend#syrkUpper}) and finished there
     * ({@link GptqKernels#finishHessian} of {@code gptq}, the backend's GPTQ kernels), so nothing of H crosses.
     */
    public HessianAccumulator(int k, Backend backend, GptqKernels gptq) {
        if (k <= 0 || (long) k * k > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("Hessian size K = " + k + " must be in [1, 46340]");
        }
        this.k = k;
        this.backend = backend;
        this.gptq = gptq;
        this.sum = backend.alloc((long) k * k);
    }

    /** Adds rows x_t, t < rows, of x [rows, K] row-major fp32 (only the first rows·K values are read). */
    public void add(float[] x, int rows) {
        checkOpen();
        if (rows < 0 || x.length < (long) rows * k) {
            throw new IllegalArgumentException(
                    "activations [" + rows + ", " + k + "] need " + (long) rows * k + " values, got " + x.length);
        }
        if (rows == 0) {
            return;
        }
        // syrkUpper only reads x, so the Java backend may hold it (Backend#wrap); a device backend copies it in.
        try (Buf b = backend.wrap(x)) {
            backend.syrkUpper(b, rows, k, sum);
        }
        tokens += rows;
    }

    /** Adds rows x_t, t < rows, of x [rows, K] resident on the accumulator's backend (nothing crosses). */
    public void add(Buf x, int rows) {
        checkOpen();
        if (rows < 0 || x.length() < (long) rows * k) {
            throw new IllegalArgumentException(
                    "activations [" + rows + ", " + k + "] need " + (long) rows * k + " values, got " + x.length());
        }
        if (rows == 0) {
            return;
        }
        backend.syrkUpper(x, rows, k, sum);
        tokens += rows;
    }

    private void checkOpen() {
        if (finished) {
            throw new IllegalStateException("hessian() already handed out the buffer; create a new accumulator");
        }
    }

    /** T, the number of rows added so far. */
    public long tokens() {
        return tokens;
    }

    /** K. */
    public int size() {
        return k;
    }

    /**
     * H [K, K] row-major fp32, symmetric: (2/T)·Σ x xᵀ, on the host. Finishes the accumulator: the internal buffer
     * is scaled, mirrored and returned (on the Java backend without a second K² copy; a device backend reads it
     * out), and later {@link #add} calls fail.
     *
     * @throws IllegalStateException when no tokens were added, or when called twice
     */
    public float[] hessian() {
        return backend.take(finish());
    }

    /**
     * H as {@link #hessian()}, left resident on the backend: the caller owns (closes) the buffer.
     *
     * @throws IllegalStateException when no tokens were added, or when called twice
     */
    public Buf finish() {
        if (finished) {
            throw new IllegalStateException("hessian() was already called");
        }
        if (tokens == 0) {
            throw new IllegalStateException("no calibration tokens were added to this Hessian");
        }
        finished = true;
        gptq.finishHessian(backend, sum, k, tokens);
        Buf h = sum;
        sum = null;
        return h;
    }

    /** Frees the sums unless {@link #finish()} handed them out. */
    @Override
    public void close() {
        if (sum != null) {
            sum.close();
            sum = null;
        }
    }

    /**
     * H from Σ x xᵀ in place: sum [k, k] holds the sums in its upper triangle; each is multiplied by fp32(2/tokens)
     * once and mirrored into the lower triangle (the step {@link GptqKernels#finishHessian} runs on a backend).
     */
    static void finish(float[] sum, int k, long tokens) {
        float f = (float) (2.0 / tokens);
        // By MIRROR_TILE² tiles, so the column-wise writes of the mirror stay in cache (K = 27648: 3 GB); the tiles
        // on and above the diagonal, numbered row by row, split over threads (each element is one product and two
        // stores whichever thread does it, so the bits do not depend on the split).
        int tiles = (k + MIRROR_TILE - 1) / MIRROR_TILE;
        int[] firstOfRow = new int[tiles + 1];
        for (int t = 0; t < tiles; t++) {
            firstOfRow[t + 1] = firstOfRow[t] + (tiles - t);
        }
        Parallel.forRange(firstOfRow[tiles], (long) MIRROR_TILE * MIRROR_TILE, (from, to) -> {
            int ti = 0;
            for (int p = from; p < to; p++) {
                while (firstOfRow[ti + 1] <= p) {
                    ti++;
                }
                int i0 = ti * MIRROR_TILE;
                int j0 = (ti + p - firstOfRow[ti]) * MIRROR_TILE;
                int i1 = Math.min(k, i0 + MIRROR_TILE);
                int j1 = Math.min(k, j0 + MIRROR_TILE);
                for (int i = i0; i < i1; i++) {
                    int row = i * k;
                    for (int j = Math.max(i, j0); j < j1; j++) {
                        float v = sum[row + j] * f;
                        sum[row + j] = v;
                        sum[j * k + i] = v;
                    }
                }
            }
        });
    }
}
