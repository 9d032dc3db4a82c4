package dev.m2q.core.grad;

import static dev.m2q.core.grad.GradCheck.check;
import static dev.m2q.core.grad.GradCheck.random;
import static dev.m2q.core.grad.OpGradientTest.CFG;
import static dev.m2q.core.grad.OpGradientTest.N_SEQ;
import static dev.m2q.core.grad.OpGradientTest.ROWS;
import static dev.m2q.core.grad.OpGradientTest.SEQ_LEN;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.LayerObserver;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The composed layer: its backward against float64 finite differences of an MSE loss for the input and every
 * parameter, its fp32 pass against its fp64 pass, and its training forward against the production
 * {@link DecoderLayer#forward}.
 */
class DecoderLayerGradTest {
    private static final Kernels K = ScalarKernels.INSTANCE;

    /** Random parameters of the fixture shapes, fp32-representable: W ~ N(0, 1/in), norms 1 ± 0.2, biases ± 0.1. */
    static LayerParams randomParams(SplittableRandom r, boolean biases) {
        int h = CFG.hiddenSize();
        int q = CFG.qDim();
        int kv = CFG.kvDim();
        int in = CFG.intermediateSize();
        return new LayerParams(
                random(r, 1, h, 1, 0.2),
                random(r, q, h, 0, 1 / Math.sqrt(h)),
                biases ? random(r, 1, q, 0, 0.1) : null,
                random(r, kv, h, 0, 1 / Math.sqrt(h)),
                biases ? random(r, 1, kv, 0, 0.1) : null,
                random(r, kv, h, 0, 1 / Math.sqrt(h)),
                biases ? random(r, 1, kv, 0, 0.1) : null,
                random(r, h, q, 0, 1 / Math.sqrt(q)),
                random(r, 1, h, 1, 0.2),
                random(r, in, h, 0, 1 / Math.sqrt(h)),
                random(r, in, h, 0, 1 / Math.sqrt(h)),
                random(r, h, in, 0, 1 / Math.sqrt(in)));
    }

    private static double loss(DecoderLayerGrad layer, LayerParams p, Tensor x, Tensor target) {
        return MseLoss.value(layer.forward(p, x, N_SEQ, SEQ_LEN).output(), target);
    }

    /** ∂L/∂x, with the parameter gradients added into a fresh zero LayerParams. */
    private static Gradients gradients(DecoderLayerGrad layer, LayerParams p, Tensor x, Tensor target) {
        DecoderLayerGrad.Trace t = layer.forward(p, x, N_SEQ, SEQ_LEN);
        LayerParams grads = p.map(Tensor::zerosLike);
        Tensor dx = layer.backward(p, t, MseLoss.gradient(t.output(), target), grads);
        return new Gradients(dx, grads);
    }

    private record Gradients(Tensor dx, LayerParams params) {}

    @Test
    void wholeLayerMatchesFiniteDifferencesForTheInputAndEveryParameter() {
        SplittableRandom r = new SplittableRandom(21);
        LayerParams p = randomParams(r, true);
        Tensor.F64 x = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        Tensor target = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        DecoderLayerGrad layer = new DecoderLayerGrad(CFG, K);
        Gradients g = gradients(layer, p, x, target);
        check("layer dx", x, g.dx(), () -> loss(layer, p, x, target));
        for (String name : LayerParams.NAMES) {
            check("layer d " + name, (Tensor.F64) p.get(name), g.params().get(name), () -> loss(layer, p, x, target));
        }
    }

    @Test
    void layerWithoutBiasesHasNoBiasGradients() {
        SplittableRandom r = new SplittableRandom(22);
        LayerParams p = randomParams(r, false);
        Tensor.F64 x = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        Tensor target = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        DecoderLayerGrad layer = new DecoderLayerGrad(CFG, K);
        Gradients g = gradients(layer, p, x, target);
        assertNull(g.params().qBias());
        check("bias-free layer dx", x, g.dx(), () -> loss(layer, p, x, target));
        check("bias-free layer dWq", (Tensor.F64) p.q(), g.params().q(), () -> loss(layer, p, x, target));
    }

    /**
     * The fp32 pass (the production path: the Kernels' fp32 products, fp32 storage) against the fp64 pass on the
     * same fp32-representable operands, with both kernel implementations. Tolerance 1e−5 norm-relative and 1e−5 of
     * each tensor's largest gradient per element: fp32 rounding (6e−8) compounds over ~20 ops with dot lengths
     * ≤ 24 and the cancellations of the norm and softmax backward (dS = P·(dP − D)); we measure ≤ 6e−7, so the
     * bound has a 15× margin. A product indexed wrongly on the fp32 side alone errs by O(1).
     */
    @Test
    void fp32PassMatchesTheFp64Pass() {
        SplittableRandom r = new SplittableRandom(23);
        LayerParams p = randomParams(r, true);
        Tensor x = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        Tensor target = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        Gradients want = gradients(new DecoderLayerGrad(CFG, K), p, x, target);
        for (Kernels kernels : List.of(ScalarKernels.INSTANCE, VectorKernels.INSTANCE)) {
            DecoderLayerGrad layer = new DecoderLayerGrad(CFG, kernels);
            Gradients got = gradients(layer, p.map(Tensor::toF32), x.toF32(), target.toF32());
            assertTrue(got.dx() instanceof Tensor.F32, "the fp32 pass stays fp32");
            assertClose(kernels.name() + " dx", want.dx(), got.dx());
            for (String name : LayerParams.NAMES) {
                assertClose(
                        kernels.name() + " d " + name,
                        want.params().get(name),
                        got.params().get(name));
            }
        }
    }

    private static void assertClose(String what, Tensor want, Tensor got) {
        double max = 0;
        double diff2 = 0;
        double ref2 = 0;
        for (int i = 0; i < want.size(); i++) {
            max = Math.max(max, Math.abs(want.get(i)));
            diff2 += (got.get(i) - want.get(i)) * (got.get(i) - want.get(i));
            ref2 += want.get(i) * want.get(i);
        }
        assertTrue(Math.sqrt(diff2 / ref2) <= 1e-5, what + ": norm-relative " + Math.sqrt(diff2 / ref2));
        for (int i = 0; i < want.size(); i++) {
            assertEquals(want.get(i), got.get(i), 1e-5 * max, what + " element " + i);
        }
    }

    /**
     * The training forward against {@link DecoderLayer#forward}, both fp32, same kernels: the linears run the same
     * kernel calls; RMSNorm, RoPE, softmax and SwiGLU round once from double instead of after each fp32 step,
     * a few ulps per op; we measure ≤ 7e−7. Tolerance 1e−5 absolute + 1e−5 relative on O(1) outputs; a convention error (rotate-half
     * pairing, mask, bias, residual) moves them by O(0.1).
     */
    @Test
    void trainingForwardEqualsTheProductionForward() {
        SplittableRandom r = new SplittableRandom(24);
        LayerParams p = randomParams(r, true).map(Tensor::toF32);
        int seqLen = 9;
        Tensor.F32 x = random(r, 3 * seqLen, CFG.hiddenSize(), 0, 1).toF32();
        DecoderLayer.Weights w = new DecoderLayer.Weights(
                data(p.inputNorm()),
                matrix(p.q()),
                data(p.qBias()),
                matrix(p.k()),
                data(p.kBias()),
                matrix(p.v()),
                data(p.vBias()),
                matrix(p.o()),
                data(p.postNorm()),
                matrix(p.gate()),
                matrix(p.up()),
                matrix(p.down()));
        Kernels kernels = VectorKernels.INSTANCE;
        float[] want = new DecoderLayer(CFG, 0, w, kernels).forward(x.data(), 3, seqLen, LayerObserver.NONE);
        Tensor got = new DecoderLayerGrad(CFG, kernels)
                .forward(LayerParams.of(w), x, 3, seqLen)
                .output();
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got.get(i), 1e-5 + 1e-5 * Math.abs(want[i]), "output element " + i);
        }
    }

    private static float[] data(Tensor t) {
        return t == null ? null : ((Tensor.F32) t).data();
    }

    private static Matrix matrix(Tensor t) {
        return new Matrix.F32(data(t), t.rows(), t.cols());
    }

    /**
     * Gradients accumulate: a batch run as two micro-batches of one sequence each, the MSE gradient scaled by the
     * whole batch's element count, adds up to the one-batch gradients (fp64; only summation order differs, so
     * 1e−12 relative).
     */
    @Test
    void microBatchesAccumulateToTheBatchGradient() {
        SplittableRandom r = new SplittableRandom(25);
        LayerParams p = randomParams(r, true);
        Tensor x = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        Tensor target = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        DecoderLayerGrad layer = new DecoderLayerGrad(CFG, K);
        Gradients whole = gradients(layer, p, x, target);
        LayerParams acc = p.map(Tensor::zerosLike);
        int half = ROWS / 2 * CFG.hiddenSize();
        for (int s = 0; s < 2; s++) {
            Tensor xs = slice(x, s * half, half);
            DecoderLayerGrad.Trace t = layer.forward(p, xs, 1, SEQ_LEN);
            Tensor dOut = MseLoss.gradient(t.output(), slice(target, s * half, half), x.size());
            Tensor dx = layer.backward(p, t, dOut, acc);
            for (int i = 0; i < half; i++) {
                assertEquals(whole.dx().get(s * half + i), dx.get(i), 1e-12, "dx element " + (s * half + i));
            }
        }
        for (String name : LayerParams.NAMES) {
            Tensor want = whole.params().get(name);
            for (int i = 0; i < want.size(); i++) {
                assertEquals(want.get(i), acc.get(name).get(i), 1e-12 * (1 + Math.abs(want.get(i))), name + " " + i);
            }
        }
    }

    private static Tensor slice(Tensor t, int from, int n) {
        Tensor s = t.zeros(n / t.cols(), t.cols());
        for (int i = 0; i < n; i++) {
            s.set(i, t.get(from + i));
        }
        return s;
    }

    @Test
    void aTraceIsConsumedByItsBackward() {
        SplittableRandom r = new SplittableRandom(26);
        LayerParams p = randomParams(r, true);
        Tensor x = random(r, ROWS, CFG.hiddenSize(), 0, 1);
        DecoderLayerGrad layer = new DecoderLayerGrad(CFG, K);
        DecoderLayerGrad.Trace t = layer.forward(p, x, N_SEQ, SEQ_LEN);
        Tensor dOut = t.output().copy();
        layer.backward(p, t, dOut, p.map(Tensor::zerosLike));
        assertThrows(IllegalStateException.class, () -> layer.backward(p, t, dOut, p.map(Tensor::zerosLike)));
    }
}
