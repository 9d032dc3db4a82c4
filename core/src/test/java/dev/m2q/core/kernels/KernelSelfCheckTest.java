package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The self-check passes the Java twins against each other and catches each kind of wrong backend. */
class KernelSelfCheckTest {
    @Test
    void theJavaTwinsAgreeBothWaysWellUnderTwoSeconds() {
        List<KernelSelfCheck.Probe> probes = KernelSelfCheck.coreProbes();
        KernelSelfCheck.Outcome scalar = KernelSelfCheck.check(ScalarKernels.INSTANCE, VectorKernels.INSTANCE, probes);
        KernelSelfCheck.Outcome vector = KernelSelfCheck.check(VectorKernels.INSTANCE, ScalarKernels.INSTANCE, probes);
        assertEquals(Optional.empty(), scalar.failure());
        assertEquals(Optional.empty(), vector.failure());
        assertEquals(21, scalar.probes());
        System.out.printf(
                "self-check scalar vs vector: %.1f ms (first run), vector vs scalar: %.1f ms%n",
                scalar.time().toNanos() / 1e6, vector.time().toNanos() / 1e6);
        assertTrue(
                scalar.time().compareTo(Duration.ofSeconds(2)) < 0,
                scalar.time().toString());
        assertTrue(
                vector.time().compareTo(Duration.ofSeconds(2)) < 0,
                vector.time().toString());
    }

    @ParameterizedTest
    @CsvSource({
        "DOT_RELATIVE_1E_3, dot (n 64): result[0] = ",
        "AXPY_WRITES_PAST_N, axpy (n 64, y offset 0): y[64] = ",
        "SYRK_ONE_ULP, syrkUpper (x [7, 13]): c[0, 12] = ",
        "GEMM_ONE_ULP, gemmAcc (5×9 · 9×11): c[",
        "MATMUL_F32_RELATIVE_1E_3, matmul (f32 [13, 37], 3 rows, bias): y[2, 12] = ",
        "MATMUL_W4_ONE_ULP, matmul (W4 [13, 40] g8, 3 rows, bias): y[2, 12] = ",
        "MATMUL_DROPS_NAN, matmul (f32 [13, 37], 4 rows, a NaN in row 1): y[1, 0] = 0.0 where the Java kernels give NaN",
        "MATMUL_THROWS, matmul threw IllegalStateException: no kernel image for this device",
        "RMSNORM_16_ULPS, rmsNorm (3 × 37): out[1, 1] = ",
        "ROPE_1E_4, rope (3 rows, 2 heads of 8, positions [0, 7, 4097]): x[0, 9] = ",
        "ATTENTION_WRONG_KV_HEAD, attention (2 seq × 3 tokens from position 0, 4/2 heads of 8): out[0, 16] = ",
        "SWIGLU_NAN, swiglu (n 37): gate[18] = NaN where the Java kernels give ",
        "ABSMAX_DROPS_NAN, absMaxColumns (6 × 9, a NaN): out[4] = "
    })
    void aWrongBackendFailsNamingTheKernelAndTheElement(WrongKernels.Fault fault, String expected) {
        KernelSelfCheck.Outcome o =
                KernelSelfCheck.check(new WrongKernels(fault), ScalarKernels.INSTANCE, KernelSelfCheck.coreProbes());
        assertFalse(o.passed(), fault + " passed the self-check");
        String line = o.failure().get();
        assertTrue(line.startsWith(expected), line);
        assertFalse(line.contains("\n"), line);
    }

    /**
     * Right host-array kernels whose resident backend is wrong in one operation: only the "backend …" probes can
     * see it, and the line names the operation, the case and the element (or the error the backend threw).
     */
    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "READ_IGNORES_OFFSET | backend write/read (read [2, 23) into a host array at 4 after a write at 5): host[4] = ",
                "COPY_OUT_OF_MEMORY | backend copy threw IllegalStateException: cuMemcpyDtoD(76 bytes): CUDA_ERROR_OUT_OF_MEMORY",
                "ADD_WRITES_PAST_N | backend add (n 33 of 37): out[33] = ",
                "SCALE_BY_NEXT_UP | backend scale (n 31 of 37, by ",
                "ROPE_IGNORES_START | backend rope (2 rows, 3 heads of 6, from position 4097, sequences of 2): x[0, ",
                "SYRK_CHAINS_FROM_C | backend syrkUpper (x [7, 13]): c[",
                "MATMUL_BUFFER_WEIGHT_SKIPS_LAST | backend matmul with fp32 weights from buffers (f32 [13, 37], 3 rows, bias): y[2, 12] = NaN where the Java kernels give "
            })
    void aWrongResidentBackendFailsNamingTheOperation(WrongBackend.Fault fault, String expected) {
        KernelSelfCheck.Outcome o =
                KernelSelfCheck.check(new WrongKernels(fault), ScalarKernels.INSTANCE, KernelSelfCheck.coreProbes());
        assertFalse(o.passed(), fault + " passed the self-check");
        String line = o.failure().get();
        assertTrue(line.startsWith(expected), line);
        assertFalse(line.contains("\n"), line);
        // The host-array probes all passed first: the backend's operations come after them.
        assertTrue(o.probes() > 10, o.probes() + " probes");
    }

    /** A host kernel that is wrong fails again on the Java backend over it, under the backend probe's name. */
    @Test
    void theBackendProbesRunTheCandidatesOwnBackend() {
        List<KernelSelfCheck.Probe> backendOnly = KernelSelfCheck.coreProbes().stream()
                .filter(p -> p.kernel().startsWith("backend "))
                .toList();
        assertEquals(11, backendOnly.size());
        String line = KernelSelfCheck.check(
                        new WrongKernels(WrongKernels.Fault.SWIGLU_NAN), ScalarKernels.INSTANCE, backendOnly)
                .failure()
                .get();
        assertTrue(line.startsWith("backend swiglu (n 37): gate[18] = NaN where the Java kernels give "), line);
    }

    @Test
    void failureLinesSayTheToleranceOrTheNanRule() {
        String f32 = KernelSelfCheck.check(
                        new WrongKernels(WrongKernels.Fault.MATMUL_F32_RELATIVE_1E_3),
                        ScalarKernels.INSTANCE,
                        KernelSelfCheck.coreProbes())
                .failure()
                .get();
        assertTrue(
                f32.matches(".* where the Java kernels give \\S+: \\|Δ\\| \\S+ > \\S+ \\(fp32 summation order\\)"),
                f32);
        String w4 = KernelSelfCheck.check(
                        new WrongKernels(WrongKernels.Fault.MATMUL_W4_ONE_ULP),
                        ScalarKernels.INSTANCE,
                        KernelSelfCheck.coreProbes())
                .failure()
                .get();
        assertTrue(w4.endsWith("(bit-exact operation)"), w4);
        String absmax = KernelSelfCheck.check(
                        new WrongKernels(WrongKernels.Fault.ABSMAX_DROPS_NAN),
                        ScalarKernels.INSTANCE,
                        KernelSelfCheck.coreProbes())
                .failure()
                .get();
        assertTrue(absmax.endsWith("where the Java kernels give NaN (a NaN input must give NaN)"), absmax);
    }

    @Test
    void probesFromOtherModulesRunAfterTheCoreOnesAndStopTheCheck() {
        List<String> ran = new ArrayList<>();
        KernelSelfCheck.Probe passes = probe("first", ran, Optional.empty());
        KernelSelfCheck.Probe fails =
                probe("gptqColumns", ran, Optional.of("(k 8): codes[3] = 4 where the Java kernels give 5"));
        KernelSelfCheck.Probe never = probe("never", ran, Optional.empty());
        List<KernelSelfCheck.Probe> probes = new ArrayList<>(KernelSelfCheck.coreProbes());
        probes.addAll(List.of(passes, fails, never));
        KernelSelfCheck.Outcome o = KernelSelfCheck.check(ScalarKernels.INSTANCE, VectorKernels.INSTANCE, probes);
        assertEquals(Optional.of("gptqColumns (k 8): codes[3] = 4 where the Java kernels give 5"), o.failure());
        assertEquals(KernelSelfCheck.coreProbes().size() + 2, o.probes());
        assertEquals(List.of("first", "gptqColumns"), ran);
        // Core's class path registers no further probes.
        assertEquals(
                KernelSelfCheck.coreProbes().size(),
                KernelSelfCheck.registered().size());
    }

    @Test
    void toleranceBoundsFollowTheirDerivation() {
        assertEquals(64 * 0x1p-24 / (1 - 64 * 0x1p-24), KernelSelfCheck.gamma(64), 0);
        float[] want = {1f, Float.NaN, -0f};
        assertTrue(KernelSelfCheck.exact("x", 0, want.clone(), want).isEmpty());
        String signedZero = KernelSelfCheck.exact("x", 0, new float[] {1f, Float.NaN, 0f}, want)
                .get();
        assertEquals("x[2] = 0.0 where the Java kernels give -0.0 (bit-exact operation)", signedZero);
        double[] bound = {1e-3, 1e-3, 1e-3};
        assertTrue(KernelSelfCheck.compare("x", 0, new float[] {1.0009f, Float.NaN, 0f}, want, bound, "t")
                .isEmpty());
        assertTrue(KernelSelfCheck.compare("x", 0, new float[] {1.0011f, Float.NaN, 0f}, want, bound, "t")
                .isPresent());
        assertTrue(KernelSelfCheck.compare("x", 0, new float[] {1f, 0f, 0f}, want, bound, "t")
                .isPresent());
    }

    private static KernelSelfCheck.Probe probe(String name, List<String> ran, Optional<String> result) {
        return new KernelSelfCheck.Probe() {
            @Override
            public String kernel() {
                return name;
            }

            @Override
            public Optional<String> run(Kernels candidate, Kernels reference) {
                ran.add(name);
                return result;
            }
        };
    }
}
