package dev.m2q.kernels;

import jcuda.driver.CUfunction;

/** A {@code __global__} function of the loaded fatbins, from {@link CudaContext#kernel}. */
public final class Kernel {
    private final CudaContext context;
    private final String name;
    private final CUfunction function;

    Kernel(CudaContext context, String name, CUfunction function) {
        this.context = context;
        this.name = name;
        this.function = function;
    }

    public String name() {
        return name;
    }

    CUfunction function() {
        return function;
    }

    /**
     * Runs the kernel and waits for it. args: DeviceBuffer (pointer), Integer, Long, Float, Double, in the kernel's
     * parameter order; also a CUdeviceptr, for a pointer into a buffer ({@code buf.ptr().withByteOffset(n)}). Checks cuLaunchKernel's result, then synchronizes and checks, naming the kernel, so an error
     * is attributed to the kernel that caused it.
     *
     * @throws CudaException naming this kernel when the launch or the kernel fails
     * @throws IllegalArgumentException for an argument of another type
     */
    public void launch(
            int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes, Object... args) {
        context.launch(this, new int[] {gridX, gridY, gridZ, blockX, blockY, blockZ}, sharedBytes, args);
    }

    /** cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES): needed before a launch with more than 48 KiB. */
    public void setMaxDynamicShared(int bytes) {
        context.setMaxDynamicShared(this, bytes);
    }

    @Override
    public String toString() {
        return "Kernel[" + name + "]";
    }
}
