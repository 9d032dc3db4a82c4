package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.model.ModelConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The cost model on the fixture: the shapes its formulas promise (work linear in what the code loops over, the
 * extra passes each method adds, the phases validate will run) rather than its figures, which are estimates.
 * Relative tolerance 1e-12: the works are sums of products of integers below 2^53 in doubles.
 */
class StageCostTest {
    private static final Path F = CliTest.FIXTURE;
    private static final Path PROMPTS = F.resolveSibling("eagle").resolve("train-prompts.txt");
    private static final Path EVAL = F.resolveSibling("eagle").resolve("eval-prompts.txt");
    private static final ModelConfig CFG = ModelConfig.load(F);

    private static StageCost cost() {
        return new StageCost(CFG, F);
    }

    private static List<String> args(String... a) {
        return new ArrayList<>(List.of(a));
    }

    private static double quantize(StageCost c, String... extra) {
        List<String> a = args("--model", F.toString(), "--out", "/tmp/q");
        a.addAll(List.of(extra));
        return c.phases(ReleaseCommand.Stage.QUANTIZE, a).get(ReleaseProgress.LAYER);
    }

    private static double train(StageCost c, int steps) {
        return c.phases(
                        ReleaseCommand.Stage.EAGLE_TRAIN,
                        args(
                                "--target",
                                F.toString(),
                                "--data",
                                "/tmp/d.jsonl",
                                "--out",
                                "/tmp/h",
                                "--steps",
                                "" + steps,
                                "--eval-every",
                                "0"))
                .get("step");
    }

    @Test
    void quantizeCountsOnePassOfTheCalibrationTokensPerLayerAndWhatEachMethodAdds() {
        StageCost c = cost();
        double rtn = quantize(c, "--method", "rtn", "--nsamples", "4", "--seqlen", "64");
        assertEquals(4.0 * 64 * CFG.numLayers(), rtn, 0);
        double gptq = quantize(c, "--nsamples", "4", "--seqlen", "64");
        double gptq2 = quantize(c, "--nsamples", "8", "--seqlen", "64");
        // GPTQ: two passes of the tokens (Hessians, outputs), the Hessians' rank-k updates (K(K+1)/2 per token for
        // the inputs of q/k/v, o, gate/up and down, over the layer's multiply-adds), and solves that do not depend
        // on the tokens.
        long h = CFG.hiddenSize();
        long i = CFG.intermediateSize();
        double layerMacs = (double) h * (CFG.qDim() + 2L * CFG.kvDim()) + (double) CFG.qDim() * h + 3.0 * h * i;
        double syrk = (h * (h + 1) + CFG.qDim() * (CFG.qDim() + 1) / 2.0 + i * (i + 1) / 2.0) / layerMacs;
        assertEquals((2 + syrk) * 4.0 * 64 * CFG.numLayers(), gptq2 - gptq, 1e-12 * gptq2);
        assertTrue(gptq - 2 * rtn > 0, "the solves add work");
        double ar = quantize(
                c, "--method", "autoround", "--nsamples", "4", "--seqlen", "64", "--iters", "10", "--batch-size", "2");
        // AutoRound: three passes plus, per iteration, a batch forward and backward (three forwards' work).
        assertEquals((3 * 4.0 * 64 + 3.0 * 10 * 2 * 64) * CFG.numLayers(), ar, 1e-12 * ar);
    }

    @Test
    void eagleTrainIsLinearInStepsAndNeedsTheDataStageFirst() {
        StageCost c = cost();
        assertTrue(Double.isNaN(train(c, 10)), "without the data stage's prompts the sequence length is unknown");
        Map<String, Double> data = c.phases(
                ReleaseCommand.Stage.EAGLE_DATA,
                args("--target", F.toString(), "--out", "/tmp/d.jsonl", "--prompts", PROMPTS.toString()));
        assertTrue(data.get("prompt") > 0, data.toString());
        double w10 = train(c, 10);
        double w20 = train(c, 20);
        double w30 = train(c, 30);
        assertTrue(w10 > 0);
        assertEquals(w20 - w10, w30 - w20, 1e-12 * w30);
    }

    @Test
    void validateHasThePhasesItWillRunInOrder() {
        StageCost c = cost();
        List<String> a = args(
                "--reference",
                F.toString(),
                "--candidate",
                "/tmp/q",
                "--text",
                F.resolve("heldout.txt").toString(),
                "--max-tokens",
                "256",
                "--decode-tokens",
                "4");
        Map<String, Double> plain = c.phases(ReleaseCommand.Stage.VALIDATE, a);
        assertEquals(List.of("window", "decode model"), List.copyOf(plain.keySet()));
        List<String> withRtn = new ArrayList<>(a);
        withRtn.addAll(List.of("--baseline", "rtn"));
        // The RTN baseline is a third model in every window.
        assertEquals(
                1.5 * plain.get("window"),
                c.phases(ReleaseCommand.Stage.VALIDATE, withRtn).get("window"),
                1e-12 * plain.get("window"));
        List<String> spec = new ArrayList<>(a);
        spec.addAll(List.of("--draft", "/tmp/q/draft", "--prompts", EVAL.toString(), "--k", "1,3"));
        assertEquals(
                List.of("window", "decode model", "speculative run"),
                List.copyOf(c.phases(ReleaseCommand.Stage.VALIDATE, spec).keySet()));
    }

    @Test
    void anInputItCannotReadLeavesTheStageUnsized() {
        Map<String, Double> m = cost().phases(
                        ReleaseCommand.Stage.EAGLE_DATA,
                        args(
                                "--target",
                                F.toString(),
                                "--out",
                                "/tmp/d.jsonl",
                                "--prompts",
                                "/nonexistent/prompts.txt"));
        assertTrue(Double.isNaN(m.values().iterator().next()), m.toString());
    }
}
