package dev.m2q.kernels;

import dev.m2q.core.kernels.Backend;
import java.util.Objects;

/**
 * A {@link Backend.Weight} of the CUDA backend: a matrix [rows, cols] resident in device memory in the form the
 * matmul kernels read ({@link DeviceWeights}).
 */
record CudaWeight(DeviceWeights weights, int rows, int cols) implements Backend.Weight {
    CudaWeight {
        Objects.requireNonNull(weights);
    }

    @Override
    public void close() {
        weights.close();
    }

    /** The device weights behind {@code w}, which must belong to a CUDA backend. */
    static CudaWeight of(Backend.Weight w) {
        if (w instanceof CudaWeight c) {
            return c;
        }
        throw new IllegalArgumentException("weight " + w + " does not belong to the CUDA backend");
    }
}
