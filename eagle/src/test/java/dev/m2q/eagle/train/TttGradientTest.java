package dev.m2q.eagle.train;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The training-time test's backward against central finite differences of its own loss in float64, for every
 * element of every draft parameter, on a ragged batch (9 and 5 tokens) unrolled 3 and 7 steps; with 7 steps the
 * 9-token sequence still has a labelled row at step 7, the 5-token one only padding there.
 *
 * <p>Step h = 1e−6·max(1, |θ|): the truncation error (h²/6)·|L'''| is ~1e−13, and the cancellation error of
 * L(θ + h) − L(θ − h) is about (rounding of L ≈ 1e−15, a sum of a few hundred terms)/h ≈ 1e−9 absolute. Pass:
 * ‖g − g_fd‖₂/‖g_fd‖₂ ≤ 1e−6 per tensor and, per element, |g − g_fd| ≤ 1e−6·(|g_fd| + ‖g_fd‖∞), the floor
 * keeping elements far below the tensor's largest (whose difference is dominated by that absolute error)
 * checkable. A wrong formula (a missing path through the chain, a sign, a transposed index, a wrong position)
 * errs by O(1) relative and fails both.
 */
class TttGradientTest {
    private static final double STEP = 1e-6;
    private static final double TOLERANCE = 1e-6;

    @ParameterizedTest
    @ValueSource(ints = {3, 7})
    void everyParameterMatchesFiniteDifferences(int steps) {
        DraftConfig cfg = TttFixtures.tinyConfig();
        TttObjective ttt = new TttObjective(cfg, TttFixtures.tinyVocab(), steps, ScalarKernels.INSTANCE);
        SplittableRandom r = new SplittableRandom(41 + steps);
        List<TrainingSequence> batch = List.of(
                TttFixtures.randomSequence(r, 9, cfg.hiddenSize(), TttFixtures.tinyVocab()),
                TttFixtures.randomSequence(r, 5, cfg.hiddenSize(), TttFixtures.tinyVocab()));
        Map<String, Tensor> params = TttFixtures.randomParams(cfg, 43 + steps, 3);
        Map<String, Tensor> grads = TttFixtures.zerosLike(params);
        ttt.lossAndGradients(params, batch, grads);
        // FC, the 2H-wide q/k/v input side and both norms feeding it, and lm_head first, then the rest.
        for (String name : List.of(
                DraftHead.FC,
                DraftHead.Q,
                DraftHead.K,
                DraftHead.V,
                DraftHead.INPUT_NORM,
                DraftHead.HIDDEN_NORM,
                DraftHead.LM_HEAD,
                DraftHead.O,
                DraftHead.POST_NORM,
                DraftHead.GATE,
                DraftHead.UP,
                DraftHead.DOWN,
                DraftHead.NORM)) {
            check(name + " (S = " + steps + ")", (Tensor.F64) params.get(name), grads.get(name), () -> ttt.evaluate(
                            params, batch)
                    .loss());
        }
    }

    /**
     * The fp32 pass (the kernels' products) against the fp64 one checked above, from the same fp32-exact
     * parameters and inputs: per tensor ‖g32 − g64‖₂/‖g64‖₂ ≤ 1e−4. fp32 products carry ~1e−7 relative rounding
     * per accumulation step; over 7 unrolled layer passes, soft-max and norm derivatives that amplify it by at
     * most ~10² here, that is ~1e−5 (measured below 1e−5); a dispatch that mis-indexes or drops a term in the
     * fp32 path only errs by O(1).
     */
    @Test
    void fp32GradientsMatchFp64() {
        DraftConfig cfg = TttFixtures.tinyConfig();
        SplittableRandom r = new SplittableRandom(51);
        List<TrainingSequence> batch = List.of(
                TttFixtures.randomSequence(r, 9, cfg.hiddenSize(), TttFixtures.tinyVocab()),
                TttFixtures.randomSequence(r, 5, cfg.hiddenSize(), TttFixtures.tinyVocab()));
        Map<String, Tensor> p64 = TttFixtures.randomParams(cfg, 52, 3);
        Map<String, Tensor> p32 = TttFixtures.toF32(p64);
        Map<String, Tensor> g64 = TttFixtures.zerosLike(p64);
        Map<String, Tensor> g32 = TttFixtures.zerosLike(p32);
        new TttObjective(cfg, TttFixtures.tinyVocab(), 7, ScalarKernels.INSTANCE).lossAndGradients(p64, batch, g64);
        new TttObjective(cfg, TttFixtures.tinyVocab(), 7, Kernels.byName("vector")).lossAndGradients(p32, batch, g32);
        for (String name : p64.keySet()) {
            double diff2 = 0;
            double ref2 = 0;
            for (int i = 0; i < g64.get(name).size(); i++) {
                double d = g32.get(name).get(i) - g64.get(name).get(i);
                diff2 += d * d;
                ref2 += g64.get(name).get(i) * g64.get(name).get(i);
            }
            assertTrue(ref2 > 0, name + ": zero gradient proves nothing");
            double rel = Math.sqrt(diff2 / ref2);
            assertTrue(rel <= 1e-4, name + ": fp32 vs fp64 gradient ‖Δ‖/‖g‖ = " + rel);
        }
    }

    private static void check(String what, Tensor.F64 x, Tensor analytic, DoubleSupplier loss) {
        double[] d = x.data();
        double[] fd = new double[d.length];
        for (int i = 0; i < d.length; i++) {
            double x0 = d[i];
            double h = STEP * Math.max(1, Math.abs(x0));
            d[i] = x0 + h;
            double plus = loss.getAsDouble();
            d[i] = x0 - h;
            double minus = loss.getAsDouble();
            fd[i] = (plus - minus) / ((x0 + h) - (x0 - h));
            d[i] = x0;
        }
        double diff2 = 0;
        double ref2 = 0;
        double refMax = 0;
        for (int i = 0; i < fd.length; i++) {
            diff2 += (analytic.get(i) - fd[i]) * (analytic.get(i) - fd[i]);
            ref2 += fd[i] * fd[i];
            refMax = Math.max(refMax, Math.abs(fd[i]));
        }
        assertTrue(refMax > 0, what + ": the loss does not depend on it, so the check would prove nothing");
        double normRel = Math.sqrt(diff2 / ref2);
        assertTrue(normRel <= TOLERANCE, what + ": ‖g − g_fd‖/‖g_fd‖ = " + normRel);
        for (int i = 0; i < fd.length; i++) {
            double err = Math.abs(analytic.get(i) - fd[i]);
            int el = i;
            assertTrue(
                    err <= TOLERANCE * (Math.abs(fd[i]) + refMax),
                    () -> what + "[" + el + "]: analytic " + analytic.get(el) + ", finite difference " + fd[el]);
        }
    }
}
