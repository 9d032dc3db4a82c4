package dev.m2q.core.grad;

import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.DecoderLayer;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Proj;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * The parameters of one decoder layer as tensors, or (same shapes) their gradients. Linear weights [out, in]:
 * q [qDim, hidden], k and v [kvDim, hidden], o [hidden, qDim], gate and up [intermediate, hidden], down
 * [hidden, intermediate]; norm weights [1, hidden]; biases [1, out], or null in a family without them (then
 * their gradients are null too).
 */
public record LayerParams(
        Tensor inputNorm,
        Tensor q,
        Tensor qBias,
        Tensor k,
        Tensor kBias,
        Tensor v,
        Tensor vBias,
        Tensor o,
        Tensor postNorm,
        Tensor gate,
        Tensor up,
        Tensor down) {

    /** The checkpoint names of the components relative to the layer prefix, in component order. */
    public static final List<String> NAMES = List.of(
            "input_layernorm.weight",
            Proj.Q.weight(),
            Proj.Q.bias(),
            Proj.K.weight(),
            Proj.K.bias(),
            Proj.V.weight(),
            Proj.V.bias(),
            Proj.O.weight(),
            "post_attention_layernorm.weight",
            Proj.GATE.weight(),
            Proj.UP.weight(),
            Proj.DOWN.weight());

    /**
     * The fp32 tensors of a layer's weights. Fp32 matrices and the norm and bias arrays are shared, not copied;
     * bf16 and W4 matrices are expanded to fp32 copies.
     */
    public static LayerParams of(DecoderLayer.Weights w) {
        return new LayerParams(
                vector(w.inputNorm()),
                matrix(w.q()),
                vector(w.qBias()),
                matrix(w.k()),
                vector(w.kBias()),
                matrix(w.v()),
                vector(w.vBias()),
                matrix(w.o()),
                vector(w.postNorm()),
                matrix(w.gate()),
                matrix(w.up()),
                matrix(w.down()));
    }

    /** The components in {@link #NAMES} order (absent biases as null). */
    public List<Tensor> tensors() {
        return Arrays.asList(inputNorm, q, qBias, k, kBias, v, vBias, o, postNorm, gate, up, down);
    }

    /** Component {@code name} of {@link #NAMES}, e.g. "mlp.up_proj.weight". */
    public Tensor get(String name) {
        return tensors().get(index(name));
    }

    /** The weight of linear {@code module}, e.g. "mlp.up_proj" (a name of {@code ArchSpec.linears()}). */
    public Tensor linear(String module) {
        return get(module + ".weight");
    }

    /** These parameters with component {@code name} replaced, e.g. by a fake-quantized weight. */
    public LayerParams with(String name, Tensor t) {
        List<Tensor> all = new ArrayList<>(tensors());
        all.set(index(name), t);
        return of(all);
    }

    /** Each present component through f (absent biases stay null): zeros for gradients, precision changes. */
    public LayerParams map(UnaryOperator<Tensor> f) {
        List<Tensor> all = new ArrayList<>(tensors());
        all.replaceAll(t -> t == null ? null : f.apply(t));
        return of(all);
    }

    /** Throws unless every component has the shape {@code cfg} implies (biases: present or not, both fine). */
    public void requireShapes(ModelConfig cfg) {
        int h = cfg.hiddenSize();
        int inter = cfg.intermediateSize();
        int[][] shapes = {
            {1, h}, {cfg.qDim(), h}, {1, cfg.qDim()}, {cfg.kvDim(), h}, {1, cfg.kvDim()}, {cfg.kvDim(), h},
            {1, cfg.kvDim()}, {h, cfg.qDim()}, {1, h}, {inter, h}, {inter, h}, {h, inter}
        };
        List<Tensor> all = tensors();
        for (int i = 0; i < shapes.length; i++) {
            Tensor t = all.get(i);
            boolean optional = NAMES.get(i).endsWith(".bias");
            if (t == null && !optional) {
                throw new IllegalArgumentException("decoder layer parameter " + NAMES.get(i) + " is missing");
            }
            if (t != null) {
                t.requireShape(shapes[i][0], shapes[i][1], NAMES.get(i));
            }
        }
    }

    private static LayerParams of(List<Tensor> t) {
        return new LayerParams(
                t.get(0), t.get(1), t.get(2), t.get(3), t.get(4), t.get(5), t.get(6), t.get(7), t.get(8), t.get(9),
                t.get(10), t.get(11));
    }

    private static int index(String name) {
        int i = NAMES.indexOf(name);
        if (i < 0) {
            throw new IllegalArgumentException(
                    "no parameter \"" + name + "\" in a decoder layer (names: " + NAMES + ")");
        }
        return i;
    }

    private static Tensor matrix(Matrix m) {
        if (m instanceof Matrix.F32 f) {
            return new Tensor.F32(f.data(), f.rows(), f.cols());
        }
        return new Tensor.F32(m.toFloatArray(), m.rows(), m.cols());
    }

    private static Tensor vector(float[] v) {
        return v == null ? null : new Tensor.F32(v, 1, v.length);
    }
}
