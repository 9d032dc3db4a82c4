package dev.m2q.core.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Proxy;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Each operation's bytes against hand-computed values on tiny shapes (4 bytes per float or int). */
class CountingKernelsTest {
    private final CountingKernels ck = new CountingKernels(ScalarKernels.INSTANCE);

    private static float[] rand(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextDouble(-1, 1);
        }
        return a;
    }

    private void expect(String op, long calls, long in, long out) {
        assertEquals(new CountingKernels.OpCount(op, calls, in, out), ck.count(op));
    }

    @Test
    void matmulCountsEachWeightOnceAndActivationsPerCall() {
        Matrix w = new Matrix.F32(rand(3 * 4, 1), 3, 4); // N 3, K 4: 48 bytes
        float[] x = rand(2 * 4, 2);
        float[] y = new float[2 * 3];
        ck.matmul(x, 2, w, null, y);
        expect("matmul", 1, 2 * 4 * 4, 2 * 3 * 4);
        expect("weights", 1, 48, 0);
        ck.matmul(x, 2, w, new float[3], y); // same weight: not again; the bias (3 floats) every call
        expect("matmul", 2, 32 + (32 + 12), 2 * 24);
        expect("weights", 1, 48, 0);
        Matrix w2 = new Matrix.F32(w.toFloatArray(), 3, 4); // equal record, distinct object: counts again
        ck.matmul(x, 2, w2, null, y);
        expect("matmul", 3, 32 + (32 + 12) + 32, 3 * 24);
        expect("weights", 2, 2 * 48, 0);
        float[] ref = new float[6];
        ScalarKernels.INSTANCE.matmul(x, 2, w2, null, ref);
        assertArrayEquals(ref, y, "the wrapper forwards the result unchanged");
    }

    @Test
    void weightBytesPerForm() {
        int[] q = new int[(16 / 8) * 3]; // K 16, N 3: 6 words
        Matrix.W4 w4 = Matrix.W4.of(q, new float[2 * 3], new int[16], 3, 16, 8); // K/G 2
        assertEquals(6 * 4 + 6 * 4 + 16 * 4, CountingKernels.weightBytes(w4));
        assertEquals(
                2 * 3 * 4,
                CountingKernels.weightBytes(
                        new Matrix.Bf16(java.lang.foreign.MemorySegment.ofArray(new short[12]), 3, 4)));
    }

    @Test
    void vectorAndLayerOperations() {
        float[] a = rand(10, 3), b = rand(10, 4);
        assertEquals(ScalarKernels.INSTANCE.dot(a, 2, b, 1, 5), ck.dot(a, 2, b, 1, 5));
        expect("dot", 1, 2 * 5 * 4, 4);
        ck.axpy(0.5f, a, 1, b, 3, 6);
        expect("axpy", 1, 2 * 6 * 4, 6 * 4);
        ck.syrkUpper(rand(5 * 3, 5), 5, 3, new float[9]); // x [5, 3] in; the 6 upper sums out
        expect("syrkUpper", 1, 15 * 4, 6 * 4);
        // A [2, 3] via strides inside a larger array, B [3, 4] with ldb 5, C [2, 4] with ldc 6
        ck.gemmAcc(2, 4, 3, rand(40, 6), 1, 1, 7, rand(40, 7), 2, 5, new float[40], 3, 6);
        expect("gemmAcc", 1, (6 + 12 + 8) * 4, 8 * 4);
        ck.rmsNorm(rand(3 * 8, 8), 3, 8, rand(8, 9), 1e-6f, new float[24]);
        expect("rmsNorm", 1, (24 + 8) * 4, 24 * 4);
        ck.rope(rand(2 * 2 * 4, 10), 2, 2, 4, rand(2, 11), new int[] {0, 1});
        expect("rope", 1, (16 + 2 + 2) * 4, 16 * 4);
        // one new token at position 3 (a KV cache of 4 rows): q [1, 2·4], k and v [4, 1·4]
        ck.attention(rand(8, 12), rand(16, 13), rand(16, 14), 1, 1, 3, 2, 1, 4, new float[8]);
        expect("attention", 1, (8 + 16 + 16) * 4, 8 * 4);
        ck.swiglu(rand(7, 15), rand(7, 16), 7);
        expect("swiglu", 1, 14 * 4, 7 * 4);
        ck.absMaxColumns(rand(30, 17), 2, 4, 5, new float[8], 1);
        expect("absMaxColumns", 1, (20 + 5) * 4, 5 * 4);
        CountingKernels.OpCount t = ck.total();
        assertEquals(9, t.calls());
        assertEquals(
                ck.counts().stream().mapToLong(CountingKernels.OpCount::bytesIn).sum(), t.bytesIn());
        assertTrue(ck.table().contains("absMaxColumns") && ck.table().contains("total"), ck.table());
    }

    @Test
    void resetForgetsTalliesAndOptionallyWeights() {
        Matrix w = new Matrix.F32(new float[4], 2, 2);
        ck.matmul(new float[2], 1, w, null, new float[2]);
        ck.reset(false);
        ck.matmul(new float[2], 1, w, null, new float[2]);
        expect("matmul", 1, 8, 8);
        expect("weights", 0, 0, 0);
        ck.reset(true);
        ck.matmul(new float[2], 1, w, null, new float[2]);
        expect("weights", 1, 16, 0);
    }

    /** A capability no counter handles is forwarded as the wrapped backend offers it. */
    @Test
    void capabilityForwarded() {
        Object offered = new Object();
        Kernels withCap = (Kernels) Proxy.newProxyInstance(
                Kernels.class.getClassLoader(), new Class<?>[] {Kernels.class}, (proxy, m, args) -> {
                    if (m.getName().equals("capability")) {
                        return args[0] == Object.class ? Optional.of(offered) : Optional.empty();
                    }
                    return m.invoke(ScalarKernels.INSTANCE, args);
                });
        CountingKernels c = new CountingKernels(withCap);
        assertSame(offered, c.capability(Object.class).orElseThrow());
        assertTrue(c.capability(String.class).isEmpty());
    }
}
