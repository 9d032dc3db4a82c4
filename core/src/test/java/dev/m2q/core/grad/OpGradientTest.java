package dev.m2q.core.grad;

import static dev.m2q.core.grad.GradCheck.check;
import static dev.m2q.core.grad.GradCheck.dot;
import static dev.m2q.core.grad.GradCheck.random;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.model.ModelConfig;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Each op's backward against central finite differences in float64 ({@link GradCheck}: ≤ 1e−6 relative, its
 * reasons there), for every input element and parameter. The scalar loss is Σ c·y with a fixed random c, so the
 * backward gets dy = c.
 */
class OpGradientTest {
    static final ModelConfig CFG = ModelConfig.parse(Map.of(
            "architectures", List.of("Qwen2ForCausalLM"),
            "hidden_size", 16L,
            "intermediate_size", 24L,
            "num_hidden_layers", 1L,
            "num_attention_heads", 4L,
            "num_key_value_heads", 2L,
            "rms_norm_eps", 1e-6,
            "rope_theta", 10000.0,
            "vocab_size", 50L));
    static final int N_SEQ = 2;
    static final int SEQ_LEN = 5;
    static final int ROWS = N_SEQ * SEQ_LEN;
    private static final Kernels K = ScalarKernels.INSTANCE;

    @Test
    void linearWithBias() {
        SplittableRandom r = new SplittableRandom(11);
        Tensor.F64 x = random(r, ROWS, 6, 0, 1);
        Tensor.F64 w = random(r, 5, 6, 0, 0.4);
        Tensor.F64 b = random(r, 1, 5, 0, 0.1);
        Tensor c = random(r, ROWS, 5, 0, 1);
        Tensor dx = x.zerosLike();
        Tensor dw = w.zerosLike();
        Tensor db = b.zerosLike();
        Linear.backward(K, c, x, w, dx, dw, db);
        check("linear dx", x, dx, () -> dot(c, Linear.forward(K, x, w, b)));
        check("linear dW", w, dw, () -> dot(c, Linear.forward(K, x, w, b)));
        check("linear db", b, db, () -> dot(c, Linear.forward(K, x, w, b)));
    }

    @Test
    void rmsNorm() {
        SplittableRandom r = new SplittableRandom(12);
        Tensor.F64 x = random(r, ROWS, 16, 0, 1);
        Tensor.F64 w = random(r, 1, 16, 1, 0.2);
        Tensor c = random(r, ROWS, 16, 0, 1);
        Tensor y = x.zerosLike();
        Tensor invRms = RmsNorm.forward(x, w, CFG.rmsNormEps(), y);
        Tensor dx = x.zerosLike();
        Tensor dw = w.zerosLike();
        RmsNorm.backward(c, x, w, invRms, dx, dw);
        check("RMSNorm dx", x, dx, () -> dot(c, norm(x, w)));
        check("RMSNorm dw", w, dw, () -> dot(c, norm(x, w)));
    }

    private static Tensor norm(Tensor x, Tensor w) {
        Tensor y = x.zerosLike();
        RmsNorm.forward(x, w, CFG.rmsNormEps(), y);
        return y;
    }

    @Test
    void rotaryEmbeddingIsInvertedByItsBackward() {
        SplittableRandom r = new SplittableRandom(13);
        RotaryEmbedding rope = new RotaryEmbedding(CFG);
        int heads = CFG.numHeads();
        Tensor.F64 x = random(r, ROWS, CFG.qDim(), 0, 1);
        Tensor c = random(r, ROWS, CFG.qDim(), 0, 1);
        Tensor dx = c.copy();
        rope.backward(dx, heads, SEQ_LEN);
        check("RoPE dx", x, dx, () -> {
            Tensor y = x.copy();
            rope.forward(y, heads, SEQ_LEN);
            return dot(c, y);
        });
        // A rotation's transpose is its inverse: backward(forward(x)) = x up to fp64 rounding of cos² + sin².
        Tensor back = x.copy();
        rope.forward(back, heads, SEQ_LEN);
        rope.backward(back, heads, SEQ_LEN);
        for (int i = 0; i < x.size(); i++) {
            assertEquals(x.get(i), back.get(i), 1e-6 * (1 + Math.abs(x.get(i))), "element " + i);
        }
    }

    @Test
    void causalGroupedQueryAttention() {
        SplittableRandom r = new SplittableRandom(14);
        CausalAttention attn = new CausalAttention(CFG.numHeads(), CFG.numKvHeads(), CFG.headDim(), K);
        Tensor.F64 q = random(r, ROWS, CFG.qDim(), 0, 1);
        Tensor.F64 k = random(r, ROWS, CFG.kvDim(), 0, 1);
        Tensor.F64 v = random(r, ROWS, CFG.kvDim(), 0, 1);
        Tensor c = random(r, ROWS, CFG.qDim(), 0, 1);
        CausalAttention.Output out = attn.forward(q, k, v, SEQ_LEN);
        Tensor dq = q.zerosLike();
        Tensor dk = k.zerosLike();
        Tensor dv = v.zerosLike();
        attn.backward(c, q, k, v, out, SEQ_LEN, dq, dk, dv);
        check("attention dq", q, dq, () -> dot(c, attn.forward(q, k, v, SEQ_LEN).out()));
        check("attention dk", k, dk, () -> dot(c, attn.forward(q, k, v, SEQ_LEN).out()));
        check("attention dv", v, dv, () -> dot(c, attn.forward(q, k, v, SEQ_LEN).out()));
    }

    @Test
    void swiGlu() {
        SplittableRandom r = new SplittableRandom(15);
        Tensor.F64 g = random(r, ROWS, 24, 0, 2);
        Tensor.F64 u = random(r, ROWS, 24, 0, 1);
        Tensor c = random(r, ROWS, 24, 0, 1);
        Tensor dg = g.zerosLike();
        Tensor du = u.zerosLike();
        SwiGlu.backward(c, g, u, dg, du);
        check("SwiGLU dgate", g, dg, () -> dot(c, swiGlu(g, u)));
        check("SwiGLU dup", u, du, () -> dot(c, swiGlu(g, u)));
        // In place (the layer's use): the same gradients written over g and u.
        Tensor gi = g.copy();
        Tensor ui = u.copy();
        SwiGlu.backward(c, gi, ui, gi, ui);
        for (int i = 0; i < g.size(); i++) {
            assertEquals(dg.get(i), gi.get(i), 0.0, "in-place dgate " + i);
            assertEquals(du.get(i), ui.get(i), 0.0, "in-place dup " + i);
        }
    }

    private static Tensor swiGlu(Tensor g, Tensor u) {
        Tensor m = g.zerosLike();
        SwiGlu.forward(g, u, m);
        return m;
    }

    @Test
    void meanSquaredError() {
        SplittableRandom r = new SplittableRandom(16);
        Tensor.F64 p = random(r, ROWS, 16, 0, 1);
        Tensor.F64 t = random(r, ROWS, 16, 0, 1);
        check("MSE dpred", p, MseLoss.gradient(p, t), () -> MseLoss.value(p, t));
        // Closed form: errors 1, −2, 3 and 0 give (1 + 4 + 9 + 0)/4.
        Tensor a = new Tensor.F64(new double[] {1, -2, 3, 5}, 2, 2);
        Tensor b = new Tensor.F64(new double[] {0, 0, 0, 5}, 2, 2);
        assertEquals(3.5, MseLoss.value(a, b), 0.0);
        assertEquals(-1.0, MseLoss.gradient(a, b).get(1), 0.0, "2·(−2)/4");
        assertEquals(-0.5, MseLoss.gradient(a, b, 8).get(1), 0.0, "a half of a mean over 8 elements");
    }
}
