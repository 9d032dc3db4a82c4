package dev.m2q.core.grad;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Proj;

/**
 * A Qwen2 decoder layer's training forward and its hand-written backward, in the op order of
 * {@link DecoderLayer}: x → RMSNorm → q, k, v (+ bias) → RoPE on q, k → causal GQA → o → + x = x₂ → RMSNorm →
 * gate, up → silu(gate)·up → down → + x₂. Rows are nSeq sequences of seqLen tokens, positions 0.. in each (the
 * calibration batch); activations [rows, features] row-major.
 *
 * <p><b>One implementation, two precisions.</b> Every op is written once over {@link Tensor}: element
 * arithmetic in double, rounded once on store; the products (all the linears, the attention dots and axpys)
 * through {@link Products}, i.e. the fp32 {@link Kernels} for {@link Tensor.F32} and plain loops for
 * {@link Tensor.F64}. The same code is therefore checked against central finite differences in fp64 and run in
 * fp32, and the only precision-specific code is the product dispatch, which a test covers by comparing the
 * fp32 pass with the fp64 one. Double element arithmetic costs nothing that matters: the linears are > 95 % of
 * the work at the 32B shapes.
 *
 * <p><b>Memory.</b> The forward keeps, per token: q after RoPE (qDim), k after RoPE and v (2·kvDim), the
 * attention output (qDim) and its log-sum-exp (heads), x₂ (hidden), gate and up (2·intermediate), two inverse
 * RMS values and the output (hidden); it references x without copying. The attention probabilities and both
 * norm outputs are recomputed in the backward, which turns the saved gate and up into their own gradients and
 * allocates one [rows, intermediate] and five [rows, hidden]-sized buffers at most. At the 32B shapes (hidden
 * 5120, qDim 5120, kvDim 1024, 40 heads, intermediate 27648) that is 77.9 K values kept per token, 5.1 GB in
 * fp32 for 8 × 2048 tokens, and a peak of 126 K per token in the backward counting x and dOut (8.3 GB). All of
 * it is linear in the rows: micro-batches, whose parameter gradients accumulate, cut it proportionally.
 */
public final class DecoderLayerGrad {
    private final ModelConfig cfg;
    private final Kernels kernels;
    private final RotaryEmbedding rope;
    private final CausalAttention attention;

    /**
     * What one training forward keeps for its backward, and its output. Single use: the backward consumes it
     * (it overwrites the saved MLP activations with their gradients).
     */
    public static final class Trace {
        private Tensor x; // [rows, hidden], the caller's input, not copied
        private int seqLen;
        private Tensor invRms1; // [rows, 1]
        private Tensor q; // [rows, qDim], after RoPE
        private Tensor k; // [rows, kvDim], after RoPE
        private Tensor v; // [rows, kvDim]
        private CausalAttention.Output attn; // out [rows, qDim], log-sum-exp [rows, heads]
        private Tensor x2; // [rows, hidden], x + o(attn)
        private Tensor invRms2; // [rows, 1]
        private Tensor gate; // [rows, intermediate], before the activation; null once consumed
        private Tensor up; // [rows, intermediate]
        private Tensor output; // [rows, hidden]

        private Trace() {}

        /** The layer output [rows, hidden]. */
        public Tensor output() {
            return output;
        }
    }

    public DecoderLayerGrad(ModelConfig cfg, Kernels kernels) {
        this.cfg = cfg;
        this.kernels = kernels;
        this.rope = new RotaryEmbedding(cfg);
        this.attention = new CausalAttention(cfg.numHeads(), cfg.numKvHeads(), cfg.headDim(), kernels);
    }

    /**
     * Runs the layer on x [nSeq·seqLen, hidden] (x's precision throughout; p must have it too) and keeps what
     * {@link #backward} needs. x must stay unchanged until then.
     */
    public Trace forward(LayerParams p, Tensor x, int nSeq, int seqLen) {
        p.requireShapes(cfg);
        int rows = nSeq * seqLen;
        x.requireShape(rows, cfg.hiddenSize(), "layer input [nSeq·seqLen, hidden]");
        Trace t = new Trace();
        t.x = x;
        t.seqLen = seqLen;
        Tensor n = x.zerosLike();
        t.invRms1 = RmsNorm.forward(x, p.inputNorm(), cfg.rmsNormEps(), n);
        t.q = Linear.forward(kernels, n, p.q(), p.qBias());
        t.k = Linear.forward(kernels, n, p.k(), p.kBias());
        t.v = Linear.forward(kernels, n, p.v(), p.vBias());
        rope.forward(t.q, cfg.numHeads(), seqLen);
        rope.forward(t.k, cfg.numKvHeads(), seqLen);
        t.attn = attention.forward(t.q, t.k, t.v, seqLen);
        t.x2 = Linear.forward(kernels, t.attn.out(), p.o(), null);
        addInto(t.x2, x);
        t.invRms2 = RmsNorm.forward(t.x2, p.postNorm(), cfg.rmsNormEps(), n);
        t.gate = Linear.forward(kernels, n, p.gate(), null);
        t.up = Linear.forward(kernels, n, p.up(), null);
        Tensor m = t.gate.zerosLike();
        SwiGlu.forward(t.gate, t.up, m);
        t.output = Linear.forward(kernels, m, p.down(), null);
        addInto(t.output, t.x2);
        return t;
    }

    /**
     * Given dOut = ∂L/∂output [rows, hidden], adds ∂L/∂(every parameter) into {@code grads} (same layout as p,
     * zeroed by the caller or holding earlier micro-batches' sums) and returns ∂L/∂x, a new [rows, hidden].
     * p must be the parameters the forward ran with.
     */
    public Tensor backward(LayerParams p, Trace t, Tensor dOut, LayerParams grads) {
        if (t.gate == null) {
            throw new IllegalStateException("this trace was already consumed by a backward pass");
        }
        grads.requireShapes(cfg);
        for (String bias : new String[] {Proj.Q.bias(), Proj.K.bias(), Proj.V.bias()}) {
            if ((p.get(bias) == null) != (grads.get(bias) == null)) {
                throw new IllegalArgumentException("gradients for " + bias + " must be present exactly when it is");
            }
        }
        dOut.requireShape(t.x.rows(), cfg.hiddenSize(), "dOut");
        Tensor n = t.x.zerosLike();
        Tensor dn = t.x.zerosLike();
        mlpBackward(p, t, dOut, grads, n, dn);
        Tensor dx = dOut.copy();
        RmsNorm.backward(dn, t.x2, p.postNorm(), t.invRms2, dx, grads.postNorm());
        dn.clear();
        attentionBackward(p, t, dx, grads, n, dn);
        RmsNorm.backward(dn, t.x, p.inputNorm(), t.invRms1, dx, grads.inputNorm());
        return dx;
    }

    /**
     * out = x₂ + down(silu(gate)·up) with gate, up = n₂·W: adds the gate, up and down weight gradients and
     * dn [rows, hidden] += ∂L/∂n₂; n receives n₂, recomputed. The silu(gate)·up buffer is the one
     * [rows, intermediate] allocation of the backward, then holds ∂L/∂(silu(gate)·up); the saved gate and up
     * become their own gradients.
     */
    private void mlpBackward(LayerParams p, Trace t, Tensor dOut, LayerParams grads, Tensor n, Tensor dn) {
        Tensor m = t.gate.zerosLike();
        SwiGlu.forward(t.gate, t.up, m);
        Linear.backward(kernels, dOut, m, p.down(), null, grads.down(), null);
        m.clear();
        Products.addProduct(kernels, dOut, p.down(), m);
        Tensor dGate = t.gate;
        Tensor dUp = t.up;
        t.gate = null;
        t.up = null;
        SwiGlu.backward(m, dGate, dUp, dGate, dUp);
        RmsNorm.apply(t.x2, p.postNorm(), t.invRms2, n);
        Linear.backward(kernels, dGate, n, p.gate(), dn, grads.gate(), null);
        Linear.backward(kernels, dUp, n, p.up(), dn, grads.up(), null);
    }

    /**
     * x₂ = x + o(attn(rope(q(n₁)), rope(k(n₁)), v(n₁))), given dx2 = ∂L/∂x₂: adds the o, q, k, v weight and bias
     * gradients and dn [rows, hidden] += ∂L/∂n₁; n receives n₁, recomputed.
     */
    private void attentionBackward(LayerParams p, Trace t, Tensor dx2, LayerParams grads, Tensor n, Tensor dn) {
        Tensor dAttn = t.x.zeros(t.x.rows(), cfg.qDim());
        Linear.backward(kernels, dx2, t.attn.out(), p.o(), dAttn, grads.o(), null);
        Tensor dq = t.q.zerosLike();
        Tensor dk = t.k.zerosLike();
        Tensor dv = t.v.zerosLike();
        attention.backward(dAttn, t.q, t.k, t.v, t.attn, t.seqLen, dq, dk, dv);
        rope.backward(dq, cfg.numHeads(), t.seqLen);
        rope.backward(dk, cfg.numKvHeads(), t.seqLen);
        RmsNorm.apply(t.x, p.inputNorm(), t.invRms1, n);
        Linear.backward(kernels, dq, n, p.q(), dn, grads.q(), grads.qBias());
        Linear.backward(kernels, dk, n, p.k(), dn, grads.k(), grads.kBias());
        Linear.backward(kernels, dv, n, p.v(), dn, grads.v(), grads.vBias());
    }

    private static void addInto(Tensor acc, Tensor x) {
        for (int i = 0; i < acc.size(); i++) {
            acc.add(i, x.get(i));
        }
    }
}
