// A 32B decode step's products from DRAM for issue 16 item 2, interleaved best-of over one or more builds of core's
// classes (each in its own class loader, e.g. before and after a change): one decoder layer's seven linears as
// W4A16 (G = 128) and the bf16 lm_head [152064x5120] for each row count (1: decode; k + 1: verify), and the EAGLE-3
// head's nine bf16 linears for one row; prints c = draft / (64 layers + lm_head) and verify/decode per row count.
// About 4.3 GB of native memory. Run from the repository root, after building core:
//   java -Xmx3g --add-modules jdk.incubator.vector tools/bench/Cost32.java 12 1,2,4,6,8 core/target/classes/
import java.lang.foreign.*;
import java.lang.invoke.*;
import java.net.*;
import java.nio.file.*;
import java.util.*;

/** 32B decode costs, old vs new classes, interleaved: W4 layer (7 linears) and bf16 lm_head at rows r, bf16 draft head step. */
public class Cost32 {
    static final int H = 5120, KV = 1024, FFN = 27648, G = 128;
    public static void main(String[] a) throws Throwable {
        int reps = Integer.parseInt(a[0]);
        int[] rowsList = Arrays.stream(a[1].split(",")).mapToInt(Integer::parseInt).toArray();
        String[] cps = Arrays.copyOfRange(a, 2, a.length);
        int V = cps.length;
        SplittableRandom rnd = new SplittableRandom(32);
        Arena arena = Arena.ofShared();
        int[][] layerShapes = {{H, H}, {KV, H}, {KV, H}, {H, H}, {FFN, H}, {FFN, H}, {H, FFN}};
        int copies = 5;
        MemorySegment[][] layerSegs = new MemorySegment[copies][layerShapes.length];
        float[][] layerScales = new float[layerShapes.length][];
        for (int i = 0; i < layerShapes.length; i++) {
            layerScales[i] = new float[layerShapes[i][1] / G * layerShapes[i][0]];
            for (int j = 0; j < layerScales[i].length; j++) layerScales[i][j] = (float) rnd.nextDouble(0.001, 0.05);
            for (int c = 0; c < copies; c++) layerSegs[c][i] = fill(arena, (long) layerShapes[i][0] * layerShapes[i][1] / 2, rnd, false);
        }
        MemorySegment lm = fill(arena, 2L * 152064 * H, rnd, true);
        int[][] headShapes = {{H, 3 * H}, {H, 2 * H}, {KV, 2 * H}, {KV, 2 * H}, {H, H}, {FFN, H}, {FFN, H}, {H, FFN}, {32000, H}};
        MemorySegment[] headSegs = new MemorySegment[headShapes.length];
        for (int i = 0; i < headShapes.length; i++) headSegs[i] = fill(arena, 2L * headShapes[i][0] * headShapes[i][1], rnd, true);
        System.out.println("filled");
        MethodHandle[] mm = new MethodHandle[V];
        Object[][][] layers = new Object[V][copies][layerShapes.length];
        Object[] lmHead = new Object[V];
        Object[][] head = new Object[V][headShapes.length];
        for (int v = 0; v < V; v++) {
            ClassLoader cl = new URLClassLoader(new URL[] {Path.of(cps[v]).toUri().toURL()}, Cost32.class.getClassLoader().getParent());
            Class<?> mat = cl.loadClass("dev.m2q.core.kernels.Matrix");
            Class<?> kern = cl.loadClass("dev.m2q.core.kernels.Kernels");
            Object inst = cl.loadClass("dev.m2q.core.kernels.VectorKernels").getField("INSTANCE").get(null);
            mm[v] = MethodHandles.publicLookup().findVirtual(kern, "matmul", MethodType.methodType(void.class, float[].class, int.class, mat, float[].class, float[].class)).bindTo(inst);
            var bf = cl.loadClass("dev.m2q.core.kernels.Matrix$Bf16").getConstructor(MemorySegment.class, int.class, int.class);
            var w4 = cl.loadClass("dev.m2q.core.kernels.Matrix$W4").getConstructor(MemorySegment.class, float[].class, int[].class, int.class, int.class, int.class);
            for (int c = 0; c < copies; c++)
                for (int i = 0; i < layerShapes.length; i++) {
                    int n = layerShapes[i][0], k = layerShapes[i][1];
                    int[] g = new int[k];
                    for (int j = 0; j < k; j++) g[j] = j / G;
                    layers[v][c][i] = w4.newInstance(layerSegs[c][i], layerScales[i], g, n, k, G);
                }
            lmHead[v] = bf.newInstance(lm, 152064, H);
            for (int i = 0; i < headShapes.length; i++) head[v][i] = bf.newInstance(headSegs[i], headShapes[i][0], headShapes[i][1]);
        }
        float[] x = new float[8 * FFN];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        float[] y = new float[8 * 152064];
        int R = rowsList.length;
        int ops = 2 * R + 1; // layer r, lm r, draft
        long[][][] ts = new long[V][ops][reps];
        int next = 0;
        for (int r = -2; r < reps; r++) {
            for (int o = 0; o < ops * V; o++) {
                int idx = (o + Math.max(r, 0)) % (ops * V);
                int v = idx % V, op = idx / V;
                long t0 = System.nanoTime();
                if (op < R) {
                    Object[] layer = layers[v][next++ % copies];
                    for (Object w : layer) mm[v].invoke(x, rowsList[op], w, (float[]) null, y);
                } else if (op < 2 * R) {
                    mm[v].invoke(x, rowsList[op - R], lmHead[v], (float[]) null, y);
                } else {
                    for (Object w : head[v]) mm[v].invoke(x, 1, w, (float[]) null, y);
                }
                if (r >= 0) ts[v][op][r] = System.nanoTime() - t0;
            }
        }
        for (int v = 0; v < V; v++) {
            double[] best = new double[ops], p25 = new double[ops];
            for (int op = 0; op < ops; op++) {
                Arrays.sort(ts[v][op]);
                best[op] = ts[v][op][0] / 1e6;
                p25[op] = ts[v][op][reps / 4] / 1e6;
                String name = op < R ? "W4 layer rows " + rowsList[op] : op < 2 * R ? "bf16 lm_head rows " + rowsList[op - R] : "draft step (bf16, 1 row)";
                System.out.printf("%s %-26s best %8.2f ms  p25 %8.2f ms  median %8.2f ms%n", cps[v], name, best[op], p25[op], ts[v][op][reps / 2] / 1e6);
            }
            double tok1 = 64 * best[0] + best[R];
            System.out.printf("%s target token (64 layers + lm_head), best: %.1f ms; c = draft/target %.3f%n", cps[v], tok1, best[2 * R] / tok1);
            for (int i = 0; i < R; i++) {
                double t = 64 * best[i] + best[R + i];
                System.out.printf("%s   rows %d: %.1f ms, verify/decode %.2f (layer alone %.2f, lm_head alone %.2f)%n", cps[v], rowsList[i], t, t / tok1, best[i] / best[0], best[R + i] / best[R]);
            }
        }
    }

    static MemorySegment fill(Arena arena, long bytes, SplittableRandom rnd, boolean bf16) {
        MemorySegment s = arena.allocate(bytes, 64);
        for (long i = 0; i < bytes / 4; i++) {
            int w = rnd.nextInt();
            if (bf16) w = (0x3F00 | (w & 0x80FF)) | ((0x3F00 | ((w >>> 16) & 0x80FF)) << 16);
            s.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i, w);
        }
        return s;
    }
}
