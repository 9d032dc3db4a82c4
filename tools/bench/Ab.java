// One product y = x·Wᵀ (VectorKernels.matmul) timed for two builds of core's classes side by side, interleaved,
// best-of / p25 / median per row count (issue 16 item 2's before/after under a shared machine's load):
//   java --add-modules jdk.incubator.vector tools/bench/Ab.java N K bf16|w4 REPS COPIES 1,2,4,8 OLD/ NEW/
// COPIES > 1 rotates through copies of W (e.g. 20 copies of 5120x5120 bf16, 1 GiB, for DRAM).
import java.lang.foreign.*;
import java.lang.invoke.*;
import java.net.*;
import java.nio.file.*;
import java.util.*;

/** A/B: old vs new core classes in two class loaders, interleaved, best-of and median per config. */
public class Ab {
    public static void main(String[] a) throws Throwable {
        int n = Integer.parseInt(a[0]), k = Integer.parseInt(a[1]);
        String kind = a[2];
        int reps = Integer.parseInt(a[3]);
        int copies = Integer.parseInt(a[4]);
        int[] rowsList = Arrays.stream(a[5].split(",")).mapToInt(Integer::parseInt).toArray();
        String[] cps = {a[6], a[7]};
        Object[][] ms = new Object[2][copies];
        MethodHandle[] mm = new MethodHandle[2];
        SplittableRandom rnd0 = new SplittableRandom(1);
        Arena arena = Arena.ofShared();
        MemorySegment[] segs = new MemorySegment[copies];
        long bytes = kind.equals("bf16") ? 2L * n * k : (long) n * k / 2;
        for (int c = 0; c < copies; c++) {
            segs[c] = arena.allocate(bytes, 64);
            for (long i = 0; i < bytes / 4; i++) segs[c].setAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i, kind.equals("bf16") ? ((Float.floatToRawIntBits((float) rnd0.nextGaussian()) >>> 16) | (Float.floatToRawIntBits((float) rnd0.nextGaussian()) & 0xFFFF0000)) : rnd0.nextInt());
        }
        float[] sc = new float[k / 128 * n];
        for (int i = 0; i < sc.length; i++) sc[i] = (float) rnd0.nextDouble(0.001, 0.05);
        int[] g = new int[k];
        for (int i = 0; i < k; i++) g[i] = i / 128;
        for (int v = 0; v < 2; v++) {
            ClassLoader cl = new URLClassLoader(new URL[] {Path.of(cps[v]).toUri().toURL()}, Ab.class.getClassLoader().getParent());
            Class<?> mat = cl.loadClass("dev.m2q.core.kernels.Matrix");
            Class<?> kern = cl.loadClass("dev.m2q.core.kernels.Kernels");
            Object inst = cl.loadClass("dev.m2q.core.kernels.VectorKernels").getField("INSTANCE").get(null);
            mm[v] = MethodHandles.publicLookup().findVirtual(kern, "matmul", MethodType.methodType(void.class, float[].class, int.class, mat, float[].class, float[].class)).bindTo(inst);
            for (int c = 0; c < copies; c++) {
                if (kind.equals("bf16")) {
                    ms[v][c] = cl.loadClass("dev.m2q.core.kernels.Matrix$Bf16").getConstructor(MemorySegment.class, int.class, int.class).newInstance(segs[c], n, k);
                } else {
                    ms[v][c] = cl.loadClass("dev.m2q.core.kernels.Matrix$W4").getConstructor(MemorySegment.class, float[].class, int[].class, int.class, int.class, int.class).newInstance(segs[c], sc, g, n, k, 128);
                }
            }
        }
        int R = rowsList.length;
        float[][] xs = new float[R][];
        float[][][] ys = new float[R][2][];
        for (int ri = 0; ri < R; ri++) {
            int rows = rowsList[ri];
            xs[ri] = new float[rows * k];
            for (int i = 0; i < xs[ri].length; i++) xs[ri][i] = (float) rnd0.nextGaussian();
            ys[ri][0] = new float[rows * n];
            ys[ri][1] = new float[rows * n];
            for (int w = 0; w < 20; w++) for (int v = 0; v < 2; v++) mm[v].invoke(xs[ri], rows, ms[v][w % copies], (float[]) null, ys[ri][v]);
        }
        long[][][] ts = new long[R][2][reps];
        int next = 0;
        for (int r = 0; r < reps; r++) {
            for (int o = 0; o < 2 * R; o++) {
                int idx = (o + r) % (2 * R);
                int ri = idx / 2, v = idx % 2;
                long t0 = System.nanoTime();
                mm[v].invoke(xs[ri], rowsList[ri], ms[v][r % copies], (float[]) null, ys[ri][v]);
                ts[ri][v][r] = System.nanoTime() - t0;
            }
        }
        for (int ri = 0; ri < R; ri++) {
            if (!Arrays.equals(ys[ri][0], ys[ri][1])) System.out.println("  (outputs differ!)");
            for (int v = 0; v < 2; v++) {
                Arrays.sort(ts[ri][v]);
                System.out.printf("%s %s %dx%d rows %d: best %.0f us, p25 %.0f us, median %.0f us%n", v == 0 ? "old" : "new", kind, n, k, rowsList[ri], ts[ri][v][0] / 1e3, ts[ri][v][reps / 4] / 1e3, ts[ri][v][reps / 2] / 1e3);
            }
        }
    }
}
