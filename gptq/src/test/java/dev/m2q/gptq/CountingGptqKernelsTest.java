package dev.m2q.gptq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.CountingKernels.OpCount;
import dev.m2q.core.kernels.Kernels;
import java.lang.reflect.Proxy;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** GPTQ's two operations counted through a {@link CountingKernels}: hand-computed bytes, capability wrapping. */
class CountingGptqKernelsTest {
    private static final Kernels JAVA = Kernels.byName("scalar");

    /** An SPD matrix [k, k]: the strict upper triangle in a, the diagonal in diag. */
    private static float[][] spd(int k, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[k * k];
        float[] diag = new float[k];
        for (int i = 0; i < k; i++) {
            diag[i] = k + 1;
            for (int j = i + 1; j < k; j++) {
                a[i * k + j] = (float) r.nextDouble(-0.5, 0.5);
            }
        }
        return new float[][] {a, diag};
    }

    @Test
    void javaBackendGetsTheCountedJavaReference() {
        CountingKernels ck = new CountingKernels(JAVA);
        GptqKernels g = GptqKernels.of(ck);
        assertInstanceOf(CountingGptqKernels.class, g);
        float[][] s = spd(8, 1);
        float[][] ref = spd(8, 1);
        assertTrue(g.choleskyInverse(s[0], s[1], 0f, 8, false));
        assertTrue(new JavaGptqKernels(JAVA).choleskyInverse(ref[0], ref[1], 0f, 8, false));
        assertArrayEquals(ref[0], s[0], "counting changes nothing");
        assertEquals(
                new OpCount("gptq.choleskyInverse", 1, 4 * (64 + 8), 4 * 64 + 4), ck.count("gptq.choleskyInverse"));
        assertEquals(0, ck.count("gemmAcc").calls(), "the loop is one device call, not the products inside it");
    }

    @Test
    void columnLoopBytesWithAndWithoutPermAndStaticScales() {
        CountingKernels ck = new CountingKernels(JAVA);
        GptqKernels g = GptqKernels.of(ck);
        int k = 8, n = 3, gs = 4;
        float[] u = new float[k * k];
        for (int i = 0; i < k; i++) {
            u[i * k + i] = 1f;
        }
        SplittableRandom r = new SplittableRandom(2);
        float[] w1 = new float[k * n];
        for (int i = 0; i < w1.length; i++) {
            w1[i] = (float) r.nextDouble(-1, 1);
        }
        g.columnLoop(new GptqProblem(w1.clone(), u, k, n, gs, 4, null, null));
        // in W1 24 + U 64 floats; out codes 24 + g_idx 8 + computed scales 2·3
        assertEquals(new OpCount("gptq.columnLoop", 1, 4 * (24 + 64), 4 * (24 + 8 + 6)), ck.count("gptq.columnLoop"));
        int[] perm = {7, 6, 5, 4, 3, 2, 1, 0};
        float[] scales = {0.1f, 0.1f, 0.1f, 0.2f, 0.2f, 0.2f};
        g.columnLoop(new GptqProblem(w1.clone(), u, k, n, gs, 4, perm, scales));
        // in adds perm 8 and the static scales 6; out has no scales
        assertEquals(
                new OpCount(
                        "gptq.columnLoop", 2, 4 * (24 + 64) + 4 * (24 + 64 + 8 + 6), 4 * (24 + 8 + 6) + 4 * (24 + 8)),
                ck.count("gptq.columnLoop"));
    }

    /** A backend's own GptqKernels is what the counting wrapper forwards to. */
    @Test
    void backendsOwnGptqKernelsForwarded() {
        GptqKernels own = new JavaGptqKernels(JAVA);
        Kernels withOwn = (Kernels) Proxy.newProxyInstance(
                Kernels.class.getClassLoader(), new Class<?>[] {Kernels.class}, (proxy, m, args) -> {
                    if (m.getName().equals("capability")) {
                        return args[0] == GptqKernels.class ? Optional.of(own) : Optional.empty();
                    }
                    return m.invoke(JAVA, args);
                });
        GptqKernels g = GptqKernels.of(new CountingKernels(withOwn));
        assertEquals("counting(" + own.name() + ")", g.name());
        assertTrue(new CountingKernels(JAVA).capability(String.class).isEmpty(), "other types pass through");
        assertSame(Optional.empty(), new CountingKernels(JAVA).capability(Integer.class));
    }
}
