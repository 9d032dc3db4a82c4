package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import org.junit.jupiter.api.Test;

/** --device on core's own class path, where no accelerated backend is registered. */
class DevicesTest {
    @Test
    void cpuAndAutoRunTheJavaKernels() {
        Devices.Selection cpu = Devices.select("cpu", ScalarKernels.INSTANCE);
        assertSame(ScalarKernels.INSTANCE, cpu.kernels());
        assertEquals("device: cpu (scalar kernels)", cpu.line());
        Devices.Selection auto = Devices.select("AUTO", VectorKernels.INSTANCE);
        assertSame(VectorKernels.INSTANCE, auto.kernels());
        assertEquals("cpu", auto.device());
        assertTrue(auto.line().contains("CUDA not used: no CUDA backend on the class path"), auto.line());
    }

    @Test
    void cudaWithoutABackendAndUnknownDevicesAreInputErrors() {
        InputException cuda = assertThrows(InputException.class, () -> Devices.select("cuda", VectorKernels.INSTANCE));
        assertTrue(cuda.getMessage().startsWith("--device cuda: this build has no CUDA backend"), cuda.getMessage());
        InputException bogus = assertThrows(InputException.class, () -> Devices.select("tpu", VectorKernels.INSTANCE));
        assertEquals("--device tpu: choose cuda, cpu or auto", bogus.getMessage());
    }
}
