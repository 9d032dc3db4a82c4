// Issue 17 item 2: what --clip-search costs on one 32B-shaped decoder layer (Qwen2.5-32B: q/o 5120x5120, k/v
// 1024x5120, gate/up 27648x5120, down 5120x27648; G = 128 or -1), on this machine's threads: RTN of each linear
// with and without the search (Rtn.quantize, rows in parallel), seconds per linear and for the layer's seven, and
// the fraction of groups whose scale the search shrank. GPTQ's search is the same work per group (ClipSearch over the
// group's weights when the loop reaches it), so the same seconds add to a GPTQ layer. Weights are heavy-tailed
// Gaussians (seeded), about 1.2 GB of heap for the largest linear. Run from the repository root after building core:
//   java -Xmx6g --add-modules jdk.incubator.vector -cp core/target/classes tools/bench/ClipCost.java 128 [q_proj,...]
import dev.m2q.core.quant.QuantizedLinear;
import dev.m2q.core.quant.Rtn;
import java.util.SplittableRandom;

public class ClipCost {
    public static void main(String[] a) {
        int g = Integer.parseInt(a[0]);
        int[][] shapes = {{5120, 5120}, {1024, 5120}, {1024, 5120}, {5120, 5120}, {27648, 5120}, {27648, 5120}, {5120, 27648}};
        String[] names = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
        double plainTotal = 0, clipTotal = 0;
        System.out.printf("threads %d, group %d%n", Runtime.getRuntime().availableProcessors(), g);
        java.util.Set<String> only = a.length > 1 ? java.util.Set.of(a[1].split(",")) : null;
        for (int i = 0; i < shapes.length; i++) {
            if (only != null && !only.contains(names[i])) {
                continue;
            }
            int n = shapes[i][0], k = shapes[i][1];
            int gs = g < 0 ? k : g;
            float[] w = new float[n * k];
            SplittableRandom rnd = new SplittableRandom(i);
            for (int j = 0; j < w.length; j++) {
                w[j] = (float) (0.02 * rnd.nextGaussian() * Math.exp(0.5 * rnd.nextGaussian()));
            }
            long t0 = System.nanoTime();
            QuantizedLinear plain = Rtn.quantize(w, n, k, gs, false);
            long t1 = System.nanoTime();
            QuantizedLinear clip = Rtn.quantize(w, n, k, gs, true);
            long t2 = System.nanoTime();
            int shrunk = 0;
            for (int j = 0; j < plain.scales().length; j++) {
                if (clip.scales()[j] != plain.scales()[j]) shrunk++;
            }
            double p = (t1 - t0) / 1e9, c = (t2 - t1) / 1e9;
            plainTotal += p;
            clipTotal += c;
            System.out.printf("%-10s %6d x %-6d  rtn %7.2f s  rtn + clip search %8.2f s  groups shrunk %.1f%%%n",
                    names[i], n, k, p, c, 100.0 * shrunk / plain.scales().length);
        }
        System.out.printf("layer      rtn %.2f s, rtn + clip search %.2f s (the search: %.2f s)%n",
                plainTotal, clipTotal, clipTotal - plainTotal);
    }
}
