package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.JavaBackend;
import dev.m2q.core.kernels.ScalarKernels;
import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * What CudaBackend refuses before it touches the device, checked without one: buffers and weights of another
 * backend, and ranges outside a buffer (the device would read or write past an allocation). The device and its
 * buffers here are stand-ins that no call reaches (a null context, unallocated pointers).
 */
class CudaBackendHostTest {
    private static final CudaBackend CUDA = backend();

    private static CudaBackend backend() {
        Device dev = new Device(null, Vendor.NONE);
        return new CudaBackend(new Object(), dev, new DeviceMatmul(dev, true), ScalarKernels.INSTANCE);
    }

    /** A CudaBuf of n floats whose memory is never touched. */
    private static Backend.Buf buf(long n) {
        return new CudaBuf(new DeviceBuffer(null, new CUdeviceptr(), 4 * n), n);
    }

    private static void refused(String message, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @Test
    void buffersOfAnotherBackendAreRefused() {
        Backend.Buf java = new JavaBackend(ScalarKernels.INSTANCE).alloc(8);
        String foreign = "does not belong to the CUDA backend";
        refused(foreign, () -> CUDA.scale(java, 8, 2f));
        refused(foreign, () -> CUDA.add(buf(8), java, buf(8), 8));
        refused(foreign, () -> CUDA.copy(java, 0, buf(8), 0, 8));
        refused(foreign, () -> CUDA.read(java, 0, new float[8], 0, 8));
        refused(foreign, () -> CUDA.take(java));
        refused(foreign, () -> CUDA.weight(java, 2, 4));
        refused(
                "weight",
                () -> CUDA.matmul(buf(8), 2, new JavaBackend(ScalarKernels.INSTANCE).weight(java, 2, 4), null, buf(4)));
    }

    @Test
    void rangesOutsideABufferAreRefused() {
        refused("copy (source): [4, 12) is outside a buffer of 10 values", () -> CUDA.copy(buf(10), 4, buf(20), 0, 8));
        refused("copy (destination): [15, 23)", () -> CUDA.copy(buf(10), 0, buf(20), 15, 8));
        refused("add (out)", () -> CUDA.add(buf(10), buf(10), buf(9), 10));
        refused("write", () -> CUDA.write(new float[4], 0, buf(3), 0, 4));
        refused("read", () -> CUDA.read(buf(3), 1, new float[4], 0, 3));
        refused("swiglu (up)", () -> CUDA.swiglu(buf(10), buf(9), 10));
        refused("rmsNorm (weight)", () -> CUDA.rmsNorm(buf(12), 3, 4, buf(3), 1e-6f, buf(12)));
        refused("rope (x)", () -> CUDA.rope(buf(10), 3, 1, 4, buf(2), 0, 3));
        refused("rope: startPos", () -> CUDA.rope(buf(12), 3, 1, 4, buf(2), 0, 0));
        refused("attention (k)", () -> CUDA.attention(buf(16), buf(15), buf(16), 1, 2, 0, 2, 2, 4, buf(16)));
        refused("syrkUpper (c)", () -> CUDA.syrkUpper(buf(6), 2, 3, buf(8)));
        refused("absMaxColumns (x)", () -> CUDA.absMaxColumns(buf(5), 2, 3, buf(3)));
        refused("weight: the buffer has 5 values, [2, 3] needed", () -> CUDA.weight(buf(5), 2, 3));
        Backend.Weight w = CUDA.weight(buf(6), 2, 3);
        assertEquals(2, w.rows());
        refused("matmul (x)", () -> CUDA.matmul(buf(5), 2, w, null, buf(4)));
        refused("matmul (bias)", () -> CUDA.matmul(buf(6), 2, w, buf(1), buf(4)));
    }
}
