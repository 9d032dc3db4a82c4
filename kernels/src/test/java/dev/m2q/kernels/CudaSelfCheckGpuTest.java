package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.KernelSelfCheck;
import dev.m2q.core.kernels.VectorKernels;
import java.time.Duration;
import java.util.Optional;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The self-check that --device runs before trusting CUDA: on a working GPU every probe agrees with the Java
 * kernels, on the form the provider hands the check (every call on the device), in under 2 s including the
 * module load and first launches.
 */
@Tag("gpu")
class CudaSelfCheckGpuTest {
    @Test
    void everyProbeAgreesOnTheDeviceInUnderTwoSeconds() {
        assertEquals(Optional.empty(), CudaContext.unavailableReason(), "CUDA must be usable where gpu tests run");
        CudaKernelsProvider p = new CudaKernelsProvider();
        KernelSelfCheck.Outcome o = KernelSelfCheck.check(
                p.openForSelfCheck(VectorKernels.INSTANCE), VectorKernels.INSTANCE, KernelSelfCheck.registered());
        assertEquals(Optional.empty(), o.failure());
        assertTrue(o.time().compareTo(Duration.ofSeconds(2)) < 0, "self-check took " + o.time());
    }
}
