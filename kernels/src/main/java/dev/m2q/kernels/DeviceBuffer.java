package dev.m2q.kernels;

import jcuda.driver.CUdeviceptr;

/**
 * Device memory from {@link CudaContext#alloc} (cuMemAlloc, never managed memory), freed by {@link #close()}.
 * A buffer of 0 bytes holds no allocation.
 */
public final class DeviceBuffer implements AutoCloseable {
    private final CudaContext context;
    private final CUdeviceptr ptr;
    private final long bytes;
    private boolean closed;

    DeviceBuffer(CudaContext context, CUdeviceptr ptr, long bytes) {
        this.context = context;
        this.ptr = ptr;
        this.bytes = bytes;
    }

    public long bytes() {
        return bytes;
    }

    /** The device address; a closed buffer has none. */
    public CUdeviceptr ptr() {
        if (closed) {
            throw new IllegalStateException("this DeviceBuffer of " + bytes + " bytes is closed");
        }
        return ptr;
    }

    /** The address whatever the state, for the free. */
    CUdeviceptr raw() {
        return ptr;
    }

    CudaContext context() {
        return context;
    }

    boolean isClosed() {
        return closed;
    }

    /** Marks the buffer closed; true the first time (the caller then frees it). */
    boolean markClosed() {
        boolean first = !closed;
        closed = true;
        return first;
    }

    /** cuMemFree, once; later calls do nothing. */
    @Override
    public void close() {
        context.free(this);
    }

    @Override
    public String toString() {
        return "DeviceBuffer[" + bytes + " bytes" + (closed ? ", closed]" : "]");
    }
}
