// VectorKernels.attention per key and head for one or more query rows after T cached keys (issue 16: attention by
// key blocks), best of six rounds; and the cost of Runtime.availableProcessors() (read once by Parallel). From the
// repository root, after a build:
//   java --add-modules jdk.incubator.vector -cp cli/target/m2q.jar tools/bench/AttentionBench.java T ROWS HEADS KV_HEADS HEAD_DIM CALLS
//   e.g. 300 1 4 2 64 20000 (the fixture), 2048 1 40 8 128 300 (Qwen2.5-32B); add -XX:ActiveProcessorCount=1 for one thread
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.SplittableRandom;

public class AttentionBench {
    public static void main(String[] a) {
        int t = Integer.parseInt(a[0]);
        int rows = Integer.parseInt(a[1]);
        int heads = Integer.parseInt(a[2]);
        int kvHeads = Integer.parseInt(a[3]);
        int d = Integer.parseInt(a[4]);
        int calls = Integer.parseInt(a[5]);
        SplittableRandom r = new SplittableRandom(1);
        float[] q = new float[rows * heads * d];
        float[] k = new float[t * kvHeads * d];
        float[] v = new float[t * kvHeads * d];
        float[] out = new float[rows * heads * d];
        for (int i = 0; i < q.length; i++) q[i] = (float) r.nextGaussian();
        for (int i = 0; i < k.length; i++) {
            k[i] = (float) r.nextGaussian();
            v[i] = (float) r.nextGaussian();
        }
        Kernels kern = VectorKernels.INSTANCE;
        double best = Double.MAX_VALUE;
        for (int round = 0; round < 6; round++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < calls; i++) kern.attention(q, k, v, 1, rows, t - rows, heads, kvHeads, d, out);
            best = Math.min(best, (System.nanoTime() - t0) / (double) calls);
        }
        System.out.printf("attention: %d keys, %d row(s), %d/%d heads, d %d: %.1f us per call, %.1f ns per (key, head, row)%n",
                t, rows, heads, kvHeads, d, best / 1e3, best / ((double) t * heads * rows));
        long sum = 0;
        long t0 = System.nanoTime();
        for (int i = 0; i < 200_000; i++) sum += Runtime.getRuntime().availableProcessors();
        System.out.printf("Runtime.availableProcessors(): %.2f us per call (%d)%n", (System.nanoTime() - t0) / 1e3 / 200_000, sum);
    }
}
