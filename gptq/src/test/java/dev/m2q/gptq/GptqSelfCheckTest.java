package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.KernelSelfCheck;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.List;
import java.util.Optional;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

class GptqSelfCheckTest {
    private static final JavaGptqKernels REF = new JavaGptqKernels(ScalarKernels.INSTANCE);

    @Test
    void theGptqProbesAreRegisteredAndTheJavaTwinsPassThem() {
        List<String> names = KernelSelfCheck.registered().stream()
                .map(KernelSelfCheck.Probe::kernel)
                .toList();
        assertTrue(names.containsAll(List.of("choleskyInverse", "columnLoop")), names.toString());
        KernelSelfCheck.Outcome o =
                KernelSelfCheck.check(VectorKernels.INSTANCE, ScalarKernels.INSTANCE, KernelSelfCheck.registered());
        assertEquals(Optional.empty(), o.failure());
        assertEquals(names.size(), o.probes());
    }

    @Test
    void aWrongInverseFactorFails() {
        // One element of L⁻¹ moved by 50%: some 1e-2 of the whole factor's norm at k 24, far beyond the fp32 bound
        // (2e-4).
        GptqKernels wrong = wrapping(null, a -> a[5 * 24 + 3] *= 1.5f);
        String line = GptqSelfCheck.choleskyInverse(wrong, REF).orElseThrow();
        assertTrue(line.startsWith("(k 24, fp32): L⁻¹ differs from the Java kernels' by"), line);
    }

    @Test
    void aFactorizationThatAcceptsANegativePivotFails() {
        GptqKernels accepting = new GptqKernels() {
            @Override
            public String name() {
                return "accepting";
            }

            @Override
            public boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64) {
                boolean ok = REF.choleskyInverse(a, diag, shift, k, fp64);
                return ok || diag[k / 2] < 0;
            }

            @Override
            public void finishHessian(Backend backend, Backend.Buf sum, int k, long tokens) {
                REF.finishHessian(backend, sum, k, tokens);
            }

            @Override
            public Resident quantize(Backend backend, Backend.Weight w, Backend.Buf h, GptqOptions o) {
                return REF.quantize(backend, w, h, o);
            }

            @Override
            public GptqCodes columnLoop(GptqProblem p) {
                return REF.columnLoop(p);
            }
        };
        assertEquals(
                Optional.of("(k 24, a negative pivot): accepted a matrix that is not positive definite"),
                GptqSelfCheck.choleskyInverse(accepting, REF));
    }

    @Test
    void codesBeyondTheTieFlipAllowanceFail() {
        GptqKernels flipping = wrapping(
                c -> {
                    for (int i = 0; i < 3; i++) {
                        c.codes()[i * 7] = (c.codes()[i * 7] + 1) % 16;
                    }
                },
                null);
        String line = GptqSelfCheck.columnLoop(flipping, REF).orElseThrow();
        assertEquals("(k 64, act-order): 3 of 1536 codes differ from the Java kernels' (rounding ties allow 2)", line);
        GptqKernels oneFlip = wrapping(c -> c.codes()[0] = (c.codes()[0] + 1) % 16, null);
        assertEquals(Optional.empty(), GptqSelfCheck.columnLoop(oneFlip, REF), "one tie flip is allowed");
    }

    /** The Java reference with its column loop's result or its L⁻¹ altered after the fact. */
    private static GptqKernels wrapping(Consumer<GptqCodes> onCodes, Consumer<float[]> onFactor) {
        return new GptqKernels() {
            @Override
            public String name() {
                return "wrong";
            }

            @Override
            public boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64) {
                boolean ok = REF.choleskyInverse(a, diag, shift, k, fp64);
                if (ok && onFactor != null && k == 24) {
                    onFactor.accept(a);
                }
                return ok;
            }

            @Override
            public void finishHessian(Backend backend, Backend.Buf sum, int k, long tokens) {
                REF.finishHessian(backend, sum, k, tokens);
            }

            @Override
            public Resident quantize(Backend backend, Backend.Weight w, Backend.Buf h, GptqOptions o) {
                return REF.quantize(backend, w, h, o);
            }

            @Override
            public GptqCodes columnLoop(GptqProblem p) {
                GptqCodes c = REF.columnLoop(p);
                if (onCodes != null) {
                    onCodes.accept(c);
                }
                return c;
            }
        };
    }
}
