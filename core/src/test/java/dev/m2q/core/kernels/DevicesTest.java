package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * --device on core's own class path, where no accelerated backend is registered, and with a fake CUDA provider
 * whose kernels are right or deliberately wrong.
 */
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

    /** A "cuda" provider on the CPU: {@code check} is what the self-check sees, {@code run} what a run gets. */
    private record FakeCuda(Kernels check, Kernels run, Optional<String> unavailable) implements KernelsProvider {
        FakeCuda(Kernels both) {
            this(both, both, Optional.empty());
        }

        @Override
        public String device() {
            return "cuda";
        }

        @Override
        public Optional<String> unavailableReason() {
            return unavailable;
        }

        @Override
        public String describe() {
            return "Fake GPU, driver 0.0";
        }

        @Override
        public Kernels open(Kernels cpu) {
            return run;
        }

        @Override
        public Kernels openForSelfCheck(Kernels cpu) {
            return check;
        }
    }

    private static Devices.Selection select(String device, KernelsProvider cuda) {
        return Devices.select(device, VectorKernels.INSTANCE, Optional.of(cuda), KernelSelfCheck.coreProbes());
    }

    @Test
    void aBackendThatAgreesIsUsedAndTheLineSaysItWasChecked() {
        for (String device : new String[] {"auto", "cuda"}) {
            Devices.Selection s = select(device, new FakeCuda(ScalarKernels.INSTANCE));
            assertSame(ScalarKernels.INSTANCE, s.kernels());
            assertEquals("cuda", s.device());
            assertTrue(
                    s.line()
                            .matches("device: cuda \\(Fake GPU, driver 0\\.0; self-check: "
                                    + KernelSelfCheck.coreProbes().size()
                                    + " kernels agree with the"
                                    + " vector kernels, \\d+\\.\\d\\d s\\)"),
                    s.line());
        }
    }

    @Test
    void autoFallsBackToTheCpuNamingTheKernelThatDisagrees() {
        Devices.Selection s = select("auto", new FakeCuda(new WrongKernels(WrongKernels.Fault.GEMM_ONE_ULP)));
        assertSame(VectorKernels.INSTANCE, s.kernels());
        assertEquals("cpu", s.device());
        assertTrue(
                s.line()
                        .startsWith(
                                "device: cpu (vector kernels; CUDA not used: self-check failed: gemmAcc (5×9 · 9×11): c["),
                s.line());
        assertTrue(s.line().endsWith("(bit-exact operation))"), s.line());
        assertFalse(s.line().contains("\n"), s.line());
    }

    @Test
    void cudaRefusesABackendThatDisagreesWithTheReason() {
        InputException e = assertThrows(
                InputException.class,
                () -> select("cuda", new FakeCuda(new WrongKernels(WrongKernels.Fault.ABSMAX_DROPS_NAN))));
        assertTrue(
                e.getMessage().startsWith("--device cuda: self-check failed: absMaxColumns (6 × 9, a NaN): out[4] = "),
                e.getMessage());
        assertTrue(e.getMessage().endsWith("; use --device cpu (or auto, which falls back to it)"), e.getMessage());
    }

    @Test
    void theCheckRunsOnTheProvidersCheckFormNotOnWhatRunsSmallCallsOnTheCpu() {
        // A backend whose small calls go to the CPU would pass on tiny inputs; the check must see the device form.
        FakeCuda p = new FakeCuda(
                new WrongKernels(WrongKernels.Fault.MATMUL_THROWS), ScalarKernels.INSTANCE, Optional.empty());
        Devices.Selection s = select("auto", p);
        assertEquals("cpu", s.device());
        assertTrue(s.line().contains("self-check failed: matmul threw IllegalStateException"), s.line());
    }

    @Test
    void anUnavailableBackendIsNotChecked() {
        FakeCuda p = new FakeCuda(
                new WrongKernels(WrongKernels.Fault.GEMM_ONE_ULP), ScalarKernels.INSTANCE, Optional.of("no driver"));
        assertEquals(
                "device: cpu (vector kernels; CUDA not used: no driver)",
                select("auto", p).line());
        InputException e = assertThrows(InputException.class, () -> select("cuda", p));
        assertEquals("--device cuda: no driver; use --device cpu or auto", e.getMessage());
    }
}
