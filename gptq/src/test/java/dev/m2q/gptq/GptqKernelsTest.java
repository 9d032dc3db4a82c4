package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * How GPTQ finds its kernels ({@link GptqKernels#of}: the backend's through {@link Kernels#capability}, else the
 * Java reference), that {@link Gptq} runs both steps on them, and the checks of {@link GptqProblem}.
 */
class GptqKernelsTest {
    /** The GPTQ kernels a recording backend offers: the Java reference, counting the calls it receives. */
    static final class Recording implements GptqKernels {
        final GptqKernels java = new JavaGptqKernels(VectorKernels.INSTANCE);
        int inverses;
        int loops;

        @Override
        public String name() {
            return "recording";
        }

        @Override
        public boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64) {
            inverses++;
            return java.choleskyInverse(a, diag, shift, k, fp64);
        }

        @Override
        public GptqCodes columnLoop(GptqProblem problem) {
            loops++;
            return java.columnLoop(problem);
        }

        @Override
        public void finishHessian(
                dev.m2q.core.kernels.Backend backend, dev.m2q.core.kernels.Backend.Buf sum, int k, long tokens) {
            java.finishHessian(backend, sum, k, tokens);
        }

        @Override
        public Resident quantize(
                dev.m2q.core.kernels.Backend backend,
                dev.m2q.core.kernels.Backend.Weight w,
                dev.m2q.core.kernels.Backend.Buf h,
                GptqOptions o) {
            return java.quantize(backend, w, h, o);
        }
    }

    /** VectorKernels for every core operation, offering {@code gptq} as its GPTQ capability (a device's way). */
    static Kernels offering(GptqKernels gptq) {
        return (Kernels) Proxy.newProxyInstance(
                Kernels.class.getClassLoader(), new Class<?>[] {Kernels.class}, (proxy, method, args) -> {
                    if (method.getName().equals("capability")) {
                        return args[0] == GptqKernels.class ? Optional.of(gptq) : Optional.empty();
                    }
                    try {
                        return method.invoke(VectorKernels.INSTANCE, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    @Test
    void theJavaKernelsOfferNoGptqKernelsSoTheReferenceRunsOverThem() {
        for (Kernels k : new Kernels[] {ScalarKernels.INSTANCE, VectorKernels.INSTANCE}) {
            assertEquals(Optional.empty(), k.capability(GptqKernels.class));
            assertEquals(new JavaGptqKernels(k), GptqKernels.of(k));
        }
    }

    /**
     * A backend that offers GPTQ kernels gets both steps of a whole GPTQ run (the Cholesky inverse once, no
     * retry at this damping; the column loop once), and since these delegate to the reference the result is the
     * plain run's, bit for bit.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void gptqRunsBothStepsOnTheBackendsGptqKernels(boolean actOrder) {
        SplittableRandom rnd = new SplittableRandom(actOrder ? 41 : 42);
        int n = 24;
        int k = 64;
        float[] w = Fixtures.heavyTailedWeights(rnd, n, k);
        float[] h = Fixtures.hessian(rnd, 2 * k, k);
        GptqOptions o = GptqOptions.DEFAULTS.withGroupSize(32).withBlockSize(16).withActOrder(actOrder, true);
        Recording rec = new Recording();
        Kernels backend = offering(rec);
        assertSame(rec, GptqKernels.of(backend));
        GptqResult got = Gptq.quantize(w, n, k, h, o, backend);
        assertEquals(1, rec.inverses, "Cholesky inverses on the backend's GPTQ kernels");
        assertEquals(1, rec.loops, "column loops on the backend's GPTQ kernels");
        GptqResult want = Gptq.quantize(w, n, k, h, o, VectorKernels.INSTANCE);
        assertArrayEquals(want.q().codes(), got.q().codes());
        assertArrayEquals(want.q().scales(), got.q().scales());
        assertArrayEquals(want.q().gIdx(), got.q().gIdx());
    }

    /** Scalar and vector reference loops give the same bits; static scales come back as the given array. */
    @Test
    void theReferenceLoopIsTheSameBitsOverBothJavaKernels() {
        SplittableRandom rnd = new SplittableRandom(43);
        int n = 20;
        int k = 96;
        float[] w1 = Fixtures.heavyTailedWeights(rnd, k, n);
        float[] u =
                DampedCholesky.factor(Fixtures.hessian(rnd, 2 * k, k), k, 0.01).hinvUpper();
        int[] perm = ActOrder.permutation(Fixtures.hessian(rnd, k, k), k);
        float[] staticScales = new float[3 * n];
        for (int i = 0; i < staticScales.length; i++) {
            staticScales[i] = 0.05f + 0.01f * (i % 7);
        }
        for (float[] scales : new float[][] {null, staticScales}) {
            GptqCodes s = new JavaGptqKernels(ScalarKernels.INSTANCE)
                    .columnLoop(new GptqProblem(w1.clone(), u, k, n, 32, 40, perm, scales));
            GptqCodes v = new JavaGptqKernels(VectorKernels.INSTANCE)
                    .columnLoop(new GptqProblem(w1.clone(), u, k, n, 32, 40, perm, scales));
            assertArrayEquals(s.codes(), v.codes());
            assertArrayEquals(s.scales(), v.scales());
            assertArrayEquals(s.gIdx(), v.gIdx());
            if (scales != null) {
                assertSame(scales, v.scales());
            }
            for (int i = 0; i < k; i++) {
                int want = scales == null ? indexOf(perm, i) / 32 : i / 32; // dynamic: by position; static: channel
                assertEquals(want, v.gIdx()[i], "g_idx of input " + i);
            }
        }
    }

    @Test
    void aProblemThatDoesNotFitIsRefusedNamingWhat() {
        float[] w1 = new float[64 * 8];
        float[] u = new float[64 * 64];
        assertTrue(message(() -> new GptqProblem(w1, u, 64, 8, 24, 16, null, null))
                .contains("K 64 must be a positive multiple of the group size 24"));
        assertTrue(message(() -> new GptqProblem(new float[10], u, 64, 8, 32, 16, null, null))
                .contains("W1 needs [64, 8] values"));
        assertTrue(message(() -> new GptqProblem(w1, new float[64], 64, 8, 32, 16, null, null))
                .contains("U needs [64, 64] values"));
        assertTrue(message(() -> new GptqProblem(w1, u, 64, 8, 32, 16, null, new float[8]))
                .contains("the static scales need [2, 8] values"));
        int[] twice = new int[64];
        for (int i = 0; i < 64; i++) {
            twice[i] = i == 5 ? 4 : i;
        }
        assertTrue(message(() -> new GptqProblem(w1, u, 64, 8, 32, 16, twice, null))
                .contains("perm is not a permutation of [0, 64) at 5"));
        assertTrue(message(() -> new GptqProblem(w1, u, 64, 8, 32, 16, new int[3], null))
                .contains("perm has fewer than 64 values"));
    }

    private static String message(org.junit.jupiter.api.function.Executable e) {
        return assertThrows(IllegalArgumentException.class, e).getMessage();
    }

    private static int indexOf(int[] perm, int channel) {
        for (int i = 0; i < perm.length; i++) {
            if (perm[i] == channel) {
                return i;
            }
        }
        throw new AssertionError("channel " + channel + " not in perm");
    }
}
