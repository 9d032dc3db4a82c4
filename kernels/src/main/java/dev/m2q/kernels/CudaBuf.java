package dev.m2q.kernels;

import dev.m2q.core.kernels.Backend;
import java.util.Objects;

/**
 * A {@link Backend.Buf} of the CUDA backend: {@code length} fp32 values in device memory.
 *
 * @param buffer the device allocation, 4·length bytes (none when length is 0)
 * @param length the number of floats
 */
record CudaBuf(DeviceBuffer buffer, long length) implements Backend.Buf {
    CudaBuf {
        Objects.requireNonNull(buffer);
    }

    @Override
    public void close() {
        buffer.close();
    }

    /** The device buffer behind {@code b}, which must belong to a CUDA backend. */
    static DeviceBuffer of(Backend.Buf b) {
        if (b instanceof CudaBuf c) {
            return c.buffer();
        }
        throw new IllegalArgumentException("buffer " + b + " does not belong to the CUDA backend");
    }
}
