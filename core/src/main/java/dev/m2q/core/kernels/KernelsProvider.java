package dev.m2q.core.kernels;

import java.util.Optional;

/**
 * An accelerated {@link Kernels} backend, found at run time through {@link java.util.ServiceLoader} (a module
 * such as m2q-kernels lists its provider in META-INF/services), so core and the algorithms never link against
 * a device library.
 */
public interface KernelsProvider {
    /** The device name users pass to {@code --device}, e.g. "cuda". */
    String device();

    /**
     * Empty when this backend can run here; otherwise one line saying why not (no driver, no device, a driver
     * older than the toolkit that built the kernels), naming the fix where there is one. Never throws.
     */
    Optional<String> unavailableReason();

    /** A one-line description of what {@link #open} will run on, e.g. "NVIDIA H100 80GB HBM3, driver 13.0". */
    String describe();

    /**
     * The backend's kernels. {@code cpu} is the Java implementation the backend hands work to where a device
     * round trip cannot pay (a dot product of 128 values); results must match it within the tolerances the
     * backend's tests state. Only called when {@link #unavailableReason()} is empty.
     */
    Kernels open(Kernels cpu);

    /**
     * The same kernels for {@link KernelSelfCheck}: every call on the device, whatever its size, with the same
     * numerics as {@link #open} otherwise (the same tensor-core choice). The check's inputs are tiny, and a backend
     * that hands small calls to {@code cpu} would otherwise check the CPU against itself. The default, for a
     * backend that runs everything it is given, is {@link #open}.
     */
    default Kernels openForSelfCheck(Kernels cpu) {
        return open(cpu);
    }
}
