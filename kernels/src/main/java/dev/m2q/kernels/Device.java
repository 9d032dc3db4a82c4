package dev.m2q.kernels;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The context with the weight cache, and allocations that make room by evicting cached weights when the device
 * runs out of memory. Shared by {@link CudaKernels}' operations, which call it under their lock.
 */
final class Device {
    /** Dynamic shared memory a launch may use without opting in. */
    private static final int DEFAULT_SHARED = 48 * 1024;

    final CudaContext ctx;
    final WeightCache weights = new WeightCache();
    /** cuBLAS / cuSOLVER when this process found them, else empty (m2q's kernels run). */
    final Vendor vendor;

    private final Map<String, Integer> sharedAllowed = new HashMap<>();

    Device(CudaContext ctx) {
        this(ctx, Vendor.of(ctx));
    }

    Device(CudaContext ctx, Vendor vendor) {
        this.ctx = ctx;
        this.vendor = vendor;
    }

    /** ctx.alloc, evicting cached weights (least recently used first) while the device is out of memory. */
    DeviceBuffer alloc(long bytes) {
        return roomy(() -> ctx.alloc(bytes));
    }

    DeviceBuffer upload(float[] a, int off, int len) {
        return roomy(() -> ctx.upload(a, off, len));
    }

    DeviceBuffer upload(int[] a, int off, int len) {
        return roomy(() -> ctx.upload(a, off, len));
    }

    DeviceBuffer upload(MemorySegment s) {
        return roomy(() -> ctx.upload(s));
    }

    Kernel kernel(String name) {
        return ctx.kernel(name);
    }

    /** Lets {@code k} launch with {@code bytes} of dynamic shared memory (opting in above 48 KiB, once). */
    void allowShared(Kernel k, int bytes) {
        if (bytes > DEFAULT_SHARED && sharedAllowed.getOrDefault(k.name(), DEFAULT_SHARED) < bytes) {
            k.setMaxDynamicShared(bytes);
            sharedAllowed.put(k.name(), bytes);
        }
    }

    /** ceil(items / per) as a grid dimension. */
    static int blocks(long items, int per) {
        long b = (items + per - 1) / per;
        if (b > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(items + " items need more than 2^31 - 1 thread blocks");
        }
        return (int) Math.max(1, b);
    }

    private <T> T roomy(Supplier<T> allocation) {
        while (true) {
            try {
                return allocation.get();
            } catch (CudaException e) {
                if (!String.valueOf(e.getMessage()).contains("CUDA_ERROR_OUT_OF_MEMORY") || !weights.evictOne()) {
                    throw e;
                }
            }
        }
    }
}
