package dev.m2q.core.model;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import java.util.List;

/**
 * One decoder layer of the Qwen2/Llama family, the unit the quantizers work on:
 * x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x)))) then + down(silu(gate(n2(·))) · up(n2(·))).
 * Weights stay bf16 (usually zero-copy views of the mapped checkpoint); activations and accumulation are fp32,
 * unless an {@link ActivationQuant} simulates lower-precision activations and KV cache.
 */
public final class DecoderLayer {
    /** The linears that share each input, in the order the forward computes them. */
    public static final List<String> QKV = List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj");

    public static final List<String> O = List.of("self_attn.o_proj");
    public static final List<String> GATE_UP = List.of("mlp.gate_proj", "mlp.up_proj");
    public static final List<String> DOWN = List.of("mlp.down_proj");

    /**
     * A layer's parameters. Norm weights [hidden]; q [qDim, hidden], k and v [kvDim, hidden], o [hidden, qDim],
     * gate and up [intermediate, hidden], down [hidden, intermediate]; biases [out] or null.
     */
    public record Weights(
            float[] inputNorm,
            Matrix q,
            float[] qBias,
            Matrix k,
            float[] kBias,
            Matrix v,
            float[] vBias,
            Matrix o,
            float[] postNorm,
            Matrix gate,
            Matrix up,
            Matrix down) {

        /** The same weights with linear {@code module} (e.g. "mlp.up_proj") replaced. */
        public Weights with(String module, Matrix m) {
            return switch (module) {
                case "self_attn.q_proj" ->
                    new Weights(inputNorm, m, qBias, k, kBias, v, vBias, o, postNorm, gate, up, down);
                case "self_attn.k_proj" ->
                    new Weights(inputNorm, q, qBias, m, kBias, v, vBias, o, postNorm, gate, up, down);
                case "self_attn.v_proj" ->
                    new Weights(inputNorm, q, qBias, k, kBias, m, vBias, o, postNorm, gate, up, down);
                case "self_attn.o_proj" ->
                    new Weights(inputNorm, q, qBias, k, kBias, v, vBias, m, postNorm, gate, up, down);
                case "mlp.gate_proj" -> new Weights(inputNorm, q, qBias, k, kBias, v, vBias, o, postNorm, m, up, down);
                case "mlp.up_proj" -> new Weights(inputNorm, q, qBias, k, kBias, v, vBias, o, postNorm, gate, m, down);
                case "mlp.down_proj" -> new Weights(inputNorm, q, qBias, k, kBias, v, vBias, o, postNorm, gate, up, m);
                default -> throw new IllegalArgumentException("no linear \"" + module + "\" in a decoder layer");
            };
        }

        /** Linear {@code module} by its name relative to the layer. */
        public Matrix linear(String module) {
            return switch (module) {
                case "self_attn.q_proj" -> q;
                case "self_attn.k_proj" -> k;
                case "self_attn.v_proj" -> v;
                case "self_attn.o_proj" -> o;
                case "mlp.gate_proj" -> gate;
                case "mlp.up_proj" -> up;
                case "mlp.down_proj" -> down;
                default -> throw new IllegalArgumentException("no linear \"" + module + "\" in a decoder layer");
            };
        }
    }

    private final ModelConfig cfg;
    private final int index;
    private final Weights w;
    private final Kernels kernels;
    private final Rope rope;
    private final ActivationQuant activationQuant;

    public DecoderLayer(ModelConfig cfg, int index, Weights w, Kernels kernels) {
        this(cfg, index, w, kernels, ActivationQuant.NONE);
    }

    private DecoderLayer(ModelConfig cfg, int index, Weights w, Kernels kernels, ActivationQuant activationQuant) {
        this.cfg = cfg;
        this.index = index;
        this.w = w;
        this.kernels = kernels;
        this.rope = Rope.of(cfg);
        this.activationQuant = activationQuant;
    }

    public int index() {
        return index;
    }

    public Weights weights() {
        return w;
    }

    /** This layer with other weights (for example quantized ones), same index and kernels. */
    public DecoderLayer withWeights(Weights other) {
        return new DecoderLayer(cfg, index, other, kernels, activationQuant);
    }

    /** This layer (same weights, shared) running its linear inputs and keys/values through {@code aq}. */
    public DecoderLayer withActivationQuant(ActivationQuant aq) {
        return new DecoderLayer(cfg, index, w, kernels, aq);
    }

    /**
     * Runs the layer on {@code nSeq} independent sequences of {@code seqLen} tokens each, the calibration
     * batch shape: x [nSeq·seqLen, hidden] fp32 row-major, positions 0..seqLen−1 in every sequence. Returns a
     * new array of the same shape (or null when {@code obs} said {@link LayerObserver#enough()}); x is not
     * modified.
     */
    public float[] forward(float[] x, int nSeq, int seqLen, LayerObserver obs) {
        return forward(x, nSeq, seqLen, 0, null, obs);
    }

    /**
     * Runs the layer on one sequence's next {@code seqLen} tokens at positions startPos.., attending to the
     * {@code startPos} tokens already in {@code cache} (which it extends; the model advances the cache length
     * after the last layer). x [seqLen, hidden].
     */
    public float[] forward(float[] x, int seqLen, int startPos, KvCache cache, LayerObserver obs) {
        return forward(x, 1, seqLen, startPos, cache, obs);
    }

    private float[] forward(float[] x, int nSeq, int seqLen, int startPos, KvCache cache, LayerObserver obs) {
        int hidden = cfg.hiddenSize();
        int rows = nSeq * seqLen;
        if (x.length != (long) rows * hidden) {
            throw new IllegalArgumentException(
                    "layer input has " + x.length + " values, expected [" + rows + ", " + hidden + "]");
        }
        int qDim = cfg.qDim();
        int kvDim = cfg.kvDim();
        int heads = cfg.numHeads();
        int kvHeads = cfg.numKvHeads();
        int headDim = cfg.headDim();

        float[] h = new float[rows * hidden];
        kernels.rmsNorm(x, rows, hidden, w.inputNorm(), (float) cfg.rmsNormEps(), h);
        activationQuant.linearInput(index, QKV, h, rows, hidden);
        obs.linearInput("self_attn.q_proj", h, rows, hidden);
        obs.linearInput("self_attn.k_proj", h, rows, hidden);
        obs.linearInput("self_attn.v_proj", h, rows, hidden);
        if (obs.enough()) {
            return null;
        }
        float[] q = new float[rows * qDim];
        float[] k = new float[rows * kvDim];
        float[] v = new float[rows * kvDim];
        kernels.matmul(h, rows, w.q(), w.qBias(), q);
        kernels.matmul(h, rows, w.k(), w.kBias(), k);
        kernels.matmul(h, rows, w.v(), w.vBias(), v);
        int[] positions = new int[rows];
        for (int r = 0; r < rows; r++) {
            positions[r] = startPos + r % seqLen;
        }
        rope.apply(kernels, q, rows, heads, positions);
        rope.apply(kernels, k, rows, kvHeads, positions);
        activationQuant.keysValues(index, k, v, rows, kvHeads, headDim);
        obs.keysValues(k, v, rows, kvDim);

        float[] attn = new float[rows * qDim];
        if (cache != null) {
            if (startPos + seqLen > cache.capacity()) {
                throw new IllegalArgumentException(
                        "KV cache of " + cache.capacity() + " tokens cannot hold " + (startPos + seqLen));
            }
            System.arraycopy(k, 0, cache.keys(index), startPos * kvDim, seqLen * kvDim);
            System.arraycopy(v, 0, cache.values(index), startPos * kvDim, seqLen * kvDim);
            kernels.attention(
                    q, cache.keys(index), cache.values(index), 1, seqLen, startPos, heads, kvHeads, headDim, attn);
        } else {
            kernels.attention(q, k, v, nSeq, seqLen, 0, heads, kvHeads, headDim, attn);
        }

        activationQuant.linearInput(index, O, attn, rows, qDim);
        obs.linearInput("self_attn.o_proj", attn, rows, qDim);
        if (obs.enough()) {
            return null;
        }
        float[] o = new float[rows * hidden];
        kernels.matmul(attn, rows, w.o(), null, o);
        float[] x2 = new float[rows * hidden];
        for (int i = 0; i < x2.length; i++) {
            x2[i] = x[i] + o[i];
        }

        int inter = cfg.intermediateSize();
        kernels.rmsNorm(x2, rows, hidden, w.postNorm(), (float) cfg.rmsNormEps(), h);
        activationQuant.linearInput(index, GATE_UP, h, rows, hidden);
        obs.linearInput("mlp.gate_proj", h, rows, hidden);
        obs.linearInput("mlp.up_proj", h, rows, hidden);
        if (obs.enough()) {
            return null;
        }
        float[] g = new float[rows * inter];
        float[] u = new float[rows * inter];
        kernels.matmul(h, rows, w.gate(), null, g);
        kernels.matmul(h, rows, w.up(), null, u);
        kernels.swiglu(g, u, g.length);
        activationQuant.linearInput(index, DOWN, g, rows, inter);
        obs.linearInput("mlp.down_proj", g, rows, inter);
        if (obs.enough()) {
            return null;
        }
        kernels.matmul(g, rows, w.down(), null, o);
        for (int i = 0; i < x2.length; i++) {
            x2[i] += o[i];
        }
        return x2;
    }
}
