// Fixture decode costs for issue 16 item 2, best-of and median over interleaved repetitions (robust to a shared
// machine's load): the target's decode forward (1 token after 60 cached), the tapped verify forward of k + 1 tokens,
// and the EAGLE-3 drafter's propose(k), for k = 1, 3, 5, 7; prints verify/decode and c = propose/k / decode.
// Needs a release with its head in draft/: by default target/tiny-release, the README demo's. From the repository root:
//   java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp cli/target/m2q.jar \
//       tools/bench/FixtureCost.java 200 [RELEASE]    (add -XX:ActiveProcessorCount=1 for one thread)
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.validate.EagleDrafter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

/** Fixture decode costs, interleaved, best-of and median: target decode, verify of k+1, draft propose(k). */
public class FixtureCost {
    public static void main(String[] a) throws Exception {
        int reps = Integer.parseInt(a[0]);
        Kernels kern = VectorKernels.INSTANCE;
        Path release = Path.of(a.length > 1 ? a[1] : "target/tiny-release");
        try (Qwen2Model target = Qwen2Model.load(release, kern)) {
            DraftHead head = DraftHead.read(release.resolve("draft"));
            int[] taps = head.config().taps(target.numLayers());
            SplittableRandom rnd = new SplittableRandom(7);
            int n = 60;
            int[] prompt = new int[n];
            for (int i = 0; i < n; i++) prompt[i] = rnd.nextInt(target.config().vocabSize());
            int[] ks = {1, 3, 5, 7};
            try (KvCache cache = target.newCache(n + 16);
                    DraftModel draft = new DraftModel(head, kern);
                    EagleDrafter drafter = new EagleDrafter(draft, target)) {
                Qwen2Model.Tapped t = target.forwardTapped(prompt, cache, taps);
                drafter.reset(n + 16);
                drafter.append(Arrays.copyOf(t.features(), (n - 1) * 3 * target.config().hiddenSize()), Arrays.copyOfRange(prompt, 1, n), n - 1);
                drafter.append(Arrays.copyOfRange(t.features(), (n - 1) * 3 * target.config().hiddenSize(), n * 3 * target.config().hiddenSize()), new int[] {5}, 1);
                int ops = 1 + ks.length * 2;
                long[][] ts = new long[ops][reps];
                for (int r = -50; r < reps; r++) {
                    for (int o = 0; o < ops; o++) {
                        int op = (o + Math.max(r, 0)) % ops;
                        long t0 = System.nanoTime();
                        if (op == 0) {
                            target.forward(new int[] {prompt[r & 31]}, cache, true);
                            cache.truncate(n);
                        } else if (op <= ks.length) {
                            int k = ks[op - 1];
                            int[] ids = Arrays.copyOf(prompt, k + 1);
                            target.forwardTapped(ids, cache, taps);
                            cache.truncate(n);
                        } else {
                            int k = ks[op - 1 - ks.length];
                            drafter.propose(k, 0, rnd);
                        }
                        long dt = System.nanoTime() - t0;
                        if (r >= 0) ts[op][r] = dt;
                    }
                }
                String[] names = new String[ops];
                names[0] = "target decode (1 token)";
                for (int i = 0; i < ks.length; i++) {
                    names[1 + i] = "verify k=" + ks[i] + " (" + (ks[i] + 1) + " tokens, tapped)";
                    names[1 + ks.length + i] = "draft propose k=" + ks[i];
                }
                double[] best = new double[ops], med = new double[ops];
                for (int o = 0; o < ops; o++) {
                    Arrays.sort(ts[o]);
                    best[o] = ts[o][0] / 1e6;
                    med[o] = ts[o][reps / 2] / 1e6;
                    System.out.printf("%-34s best %.3f ms  median %.3f ms%n", names[o], best[o], med[o]);
                }
                for (int i = 0; i < ks.length; i++) {
                    int k = ks[i];
                    System.out.printf("k=%d: verify/decode %.2f (median %.2f); c = propose/k / decode %.3f (median %.3f)%n", k,
                            best[1 + i] / best[0], med[1 + i] / med[0], best[1 + ks.length + i] / k / best[0], med[1 + ks.length + i] / k / med[0]);
                }
            }
        }
    }
}
