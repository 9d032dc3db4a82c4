// The fixture's speculative loop in one process (issue 16): per pass over the 16 evaluation prompts, the plain
// decoding's ms per token and the speculative rounds' target (verify) and draft ms per round, and the speedup, each
// prompt decoded plainly and then speculatively in turn. From the repository root, after a build:
//   java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp cli/target/m2q.jar \
//       tools/bench/SpecLoop.java RELEASE HEAD K SECONDS both|plain|spec [w4]
//   e.g. target/tiny-release target/tiny-release/draft 3 20 both   (fp32 engine, as validate; w4: the W4A16 kernel)
// 128 new tokens per prompt, T = 0.
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.Tokenizer;
import dev.m2q.validate.EagleDrafter;
import dev.m2q.validate.SpecDecode;
import dev.m2q.validate.SpecBench;
import java.nio.file.Path;
import java.util.*;

public class SpecLoop {
    public static void main(String[] a) throws Exception {
        Path release = Path.of(a[0]);
        Path headDir = Path.of(a[1]);
        int k = Integer.parseInt(a[2]);
        double secs = Double.parseDouble(a[3]);
        var kern = VectorKernels.INSTANCE;
        var cfg = dev.m2q.core.model.ModelConfig.load(release);
        List<int[]> prompts = dev.m2q.core.tokenizer.PromptFile.encode(Path.of("fixtures/eagle/eval-prompts.txt"),
            Tokenizer.load(release.resolve("tokenizer.json")), dev.m2q.core.tokenizer.ChatTemplate.load(release));
        int[] eos = SpecBench.eosIds(release);
        try (Qwen2Model target = Qwen2Model.load(release, kern, new Qwen2Model.LoadOptions(a.length > 5 && a[5].equals("w4"), null))) {
            DraftHead head = DraftHead.read(headDir);
            int[] taps = head.config().taps(target.numLayers());
            try (DraftModel draft = new DraftModel(head, kern); EagleDrafter drafter = new EagleDrafter(draft, target)) {
                SpecDecode spec = new SpecDecode(target, taps, drafter);
                long end = System.nanoTime() + (long) (secs * 1e9);
                int pass = 0;
                while (System.nanoTime() < end) {
                    long plainN = 0, specT = 0, specD = 0, plainTok = 0, specTok = 0, rounds = 0, emitted = 0;
                    for (int i = 0; i < prompts.size(); i++) {
                        var s = new SpecDecode.Settings(k, 0, 128, eos);
                        if (!a[4].equals("spec")) {
                            var p = spec.plain(prompts.get(i), s, new SplittableRandom(i));
                            plainN += p.decodeNanos(); plainTok += p.tokens().length - 1;
                        }
                        if (!a[4].equals("plain")) {
                            var r = spec.generate(prompts.get(i), s, new SplittableRandom(i));
                            specT += r.targetNanos(); specD += r.draftNanos(); specTok += r.tokens().length - 1;
                            rounds += r.rounds(); emitted += r.roundTokens();
                        }
                    }
                    System.out.printf("pass %d: plain %.3f ms/tok; spec rounds %d tau %.3f target %.3f ms/round draft %.3f ms/round; speedup %.3f%n",
                        pass++, plainN / 1e6 / Math.max(1, plainTok), rounds, emitted / (double) Math.max(1, rounds),
                        specT / 1e6 / Math.max(1, rounds), specD / 1e6 / Math.max(1, rounds),
                        (plainN / (double) Math.max(1, plainTok)) / ((specT + specD) / (double) Math.max(1, specTok)));
                }
            }
        }
    }
}
