package dev.m2q.kernels;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.KernelsProvider;
import java.util.Optional;

/** {@code --device cuda}: {@link CudaKernels} on device 0, found by core's Devices through ServiceLoader. */
public final class CudaKernelsProvider implements KernelsProvider {
    @Override
    public String device() {
        return "cuda";
    }

    @Override
    public Optional<String> unavailableReason() {
        return CudaContext.unavailableReason();
    }

    @Override
    public String describe() {
        return CudaContext.unavailableReason().map(why -> "unavailable: " + why).orElseGet(() -> {
            CudaContext ctx = CudaContext.get();
            return ctx.describe() + "; BLAS: " + Vendor.of(ctx).describe();
        });
    }

    @Override
    public Kernels open(Kernels cpu) {
        return new CudaKernels(CudaContext.get(), cpu);
    }

    /** Every call on the device, as a run's would be at full size, tensor cores as {@link #open} has them. */
    @Override
    public Kernels openForSelfCheck(Kernels cpu) {
        return new CudaKernels(
                CudaContext.get(), cpu, CudaKernels.Policy.allOnDevice(CudaKernels.Policy.DEFAULT.bf16TensorCores()));
    }
}
