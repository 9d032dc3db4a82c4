package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Devices;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.KernelsProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * What --device sees on whatever machine runs the tests: the provider is found through ServiceLoader, and auto takes
 * CUDA exactly when the probe says it can, otherwise the CPU with the probe's reason in its line. In a build without
 * kernels the reason says so; on a machine without an NVIDIA driver (checked independently, by asking the dynamic
 * linker for libcuda through FFM) it is the missing driver.
 */
class CudaAvailabilityTest {
    static final Kernels CPU = Kernels.byName("vector");

    static boolean libcudaLoads() {
        try (Arena a = Arena.ofConfined()) {
            SymbolLookup.libraryLookup("libcuda.so.1", a);
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    @Test
    void autoFallsBackToTheCpuSayingWhy() {
        KernelsProvider p = Devices.provider("cuda").orElseThrow();
        assertInstanceOf(CudaKernelsProvider.class, p);
        Optional<String> why = p.unavailableReason();
        assertEquals(why, p.unavailableReason(), "the probe is cached");
        if (KernelBuild.load().skipped()) {
            assertEquals(Optional.of(KernelBuild.SKIPPED), why);
        } else if (!libcudaLoads()) {
            assertEquals(Optional.of("no CUDA driver (libcuda.so.1 not found)"), why);
        }
        Devices.Selection auto = Devices.select("auto", CPU);
        if (why.isPresent()) {
            assertEquals("cpu", auto.device());
            assertSame(CPU, auto.kernels());
            assertEquals("device: cpu (vector kernels; CUDA not used: " + why.get() + ")", auto.line());
            assertEquals("unavailable: " + why.get(), p.describe());
            InputException e = assertThrows(InputException.class, () -> Devices.select("cuda", CPU));
            assertEquals("--device cuda: " + why.get() + "; use --device cpu or auto", e.getMessage());
            CudaException c = assertThrows(CudaException.class, CudaContext::get);
            assertEquals("CUDA is not available: " + why.get(), c.getMessage());
        } else {
            assertEquals("cuda", auto.device());
            assertInstanceOf(CudaKernels.class, auto.kernels());
            assertTrue(
                    auto.line().startsWith("device: cuda (" + CudaContext.get().describe() + "; self-check: "),
                    auto.line());
        }
        assertNotEquals("", why.orElse("x"));
        assertTrue(Devices.select("cpu", CPU).line().startsWith("device: cpu (vector kernels"));
    }
}
