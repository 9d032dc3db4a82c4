package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A decoder layer on random fp32 weights against a naive float64 implementation written here from the
 * definitions (HF Qwen2 semantics), and its batch, cached and kernel variants against each other.
 *
 * <p>Tolerance: the layer computes in fp32 with reductions of length ≤ 96 and one softmax; with O(1) activations
 * the fp32 result carries relative errors of a few 1e-7 per op, compounding to ~1e-6 over the layer. We allow
 * 2e-5 absolute + 2e-5 relative; an indexing or convention error (wrong rotate-half pairing, missing bias,
 * off-by-one mask) moves outputs by O(0.1).
 */
class DecoderLayerTest {
    static final ModelConfig CFG = ModelConfig.parse(Map.of(
            "architectures", List.of("Qwen2ForCausalLM"),
            "hidden_size", 32L,
            "intermediate_size", 96L,
            "num_hidden_layers", 1L,
            "num_attention_heads", 4L,
            "num_key_value_heads", 2L,
            "rms_norm_eps", 1e-6,
            "rope_theta", 10000.0,
            "vocab_size", 50L));

    static DecoderLayer.Weights randomWeights(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int h = CFG.hiddenSize();
        int q = CFG.qDim();
        int kv = CFG.kvDim();
        int in = CFG.intermediateSize();
        return new DecoderLayer.Weights(
                vec(r, h, 1.0, 0.2),
                mat(r, q, h),
                vec(r, q, 0, 0.1),
                mat(r, kv, h),
                vec(r, kv, 0, 0.1),
                mat(r, kv, h),
                vec(r, kv, 0, 0.1),
                mat(r, h, q),
                vec(r, h, 1.0, 0.2),
                mat(r, in, h),
                mat(r, in, h),
                mat(r, h, in));
    }

    static Matrix.F32 mat(SplittableRandom r, int rows, int cols) {
        float[] d = new float[rows * cols];
        double s = 1 / Math.sqrt(cols);
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) (r.nextGaussian() * s);
        }
        return new Matrix.F32(d, rows, cols);
    }

    static float[] vec(SplittableRandom r, int n, double mean, double sd) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (mean + sd * r.nextGaussian());
        }
        return v;
    }

    static float[] input(long seed, int rows) {
        return vec(new SplittableRandom(seed), rows * CFG.hiddenSize(), 0, 1);
    }

    @Test
    void matchesNaiveFloat64Reference() {
        DecoderLayer.Weights w = randomWeights(1);
        int seqLen = 11;
        float[] x = input(2, seqLen);
        float[] got = new DecoderLayer(CFG, 0, w, VectorKernels.INSTANCE).forward(x, 1, seqLen, LayerObserver.NONE);
        double[] want = NaiveLayer.forward(CFG, w, x, seqLen);
        for (int i = 0; i < got.length; i++) {
            assertEquals(want[i], got[i], 2e-5 + 2e-5 * Math.abs(want[i]), "element " + i);
        }
    }

    @Test
    void scalarAndVectorKernelsAgree() {
        DecoderLayer.Weights w = randomWeights(3);
        float[] x = input(4, 2 * 9);
        float[] a = new DecoderLayer(CFG, 0, w, ScalarKernels.INSTANCE).forward(x, 2, 9, LayerObserver.NONE);
        float[] b = new DecoderLayer(CFG, 0, w, VectorKernels.INSTANCE).forward(x, 2, 9, LayerObserver.NONE);
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i], 2e-5 + 2e-5 * Math.abs(a[i]), "element " + i);
        }
    }

    @Test
    void batchedSequencesAreIndependentAndMatchCachedDecoding() {
        DecoderLayer.Weights w = randomWeights(5);
        Kernels k = VectorKernels.INSTANCE;
        DecoderLayer layer = new DecoderLayer(CFG, 0, w, k);
        int seqLen = 8;
        float[] x = input(6, 2 * seqLen);
        float[] batched = layer.forward(x, 2, seqLen, LayerObserver.NONE);
        int h = CFG.hiddenSize();
        for (int s = 0; s < 2; s++) {
            float[] one = Arrays.copyOfRange(x, s * seqLen * h, (s + 1) * seqLen * h);
            float[] alone = layer.forward(one, 1, seqLen, LayerObserver.NONE);
            KvCache cache = new KvCache(CFG, seqLen);
            float[] prefix = layer.forward(Arrays.copyOfRange(one, 0, 5 * h), 5, 0, cache, LayerObserver.NONE);
            cache.advance(5);
            float[] inc = Arrays.copyOf(prefix, seqLen * h);
            for (int t = 5; t < seqLen; t++) {
                float[] step =
                        layer.forward(Arrays.copyOfRange(one, t * h, (t + 1) * h), 1, t, cache, LayerObserver.NONE);
                cache.advance(1);
                System.arraycopy(step, 0, inc, t * h, h);
            }
            for (int i = 0; i < alone.length; i++) {
                // Same kernels and the same operands in the same order: the batch rows must be bit-identical.
                assertEquals(alone[i], batched[s * seqLen * h + i], 0.0, "batch row element " + i);
                // The cached path attends over the same keys; only the fp32 dot lengths' grouping can differ.
                assertEquals(alone[i], inc[i], 1e-5 + 1e-5 * Math.abs(alone[i]), "cached element " + i);
            }
        }
    }

    @Test
    void observerSeesEveryLinearInputAndTheKeys() {
        DecoderLayer layer = new DecoderLayer(CFG, 0, randomWeights(7), VectorKernels.INSTANCE);
        java.util.List<String> seen = new java.util.ArrayList<>();
        int[] kvRows = new int[1];
        layer.forward(input(8, 6), 2, 3, new LayerObserver() {
            @Override
            public void linearInput(String module, float[] x, int rows, int cols) {
                seen.add(module + ":" + rows + "x" + cols);
            }

            @Override
            public void keysValues(float[] k, float[] v, int rows, int kvDim) {
                kvRows[0] = rows;
                assertEquals(CFG.kvDim(), kvDim);
            }
        });
        assertEquals(
                List.of(
                        "self_attn.q_proj:6x32",
                        "self_attn.k_proj:6x32",
                        "self_attn.v_proj:6x32",
                        "self_attn.o_proj:6x32",
                        "mlp.gate_proj:6x32",
                        "mlp.up_proj:6x32",
                        "mlp.down_proj:6x96"),
                seen);
        assertEquals(6, kvRows[0]);
        assertTrue(CFG.arch()
                .linears()
                .containsAll(seen.stream().map(s -> s.split(":")[0]).toList()));
    }

    static Matrix.F32 times(Matrix m, float f) {
        float[] d = m.toFloatArray();
        for (int i = 0; i < d.length; i++) {
            d[i] *= f;
        }
        return new Matrix.F32(d, m.rows(), m.cols());
    }

    /**
     * The hook sees each shared linear input once, then the keys and values, and the layer computes with what the
     * hook leaves: doubling every linear input and then the values is, bit for bit, the layer with every weight
     * doubled and v's weight and bias scaled by 4 and 2 (scaling by a power of two is exact, and each product of
     * the matmul is the same number either way), in the batch and in the cached paths, cache included.
     */
    @Test
    void activationQuantHookFeedsTheLayerWhatItLeaves() {
        DecoderLayer.Weights w = randomWeights(9);
        float[] vBias = w.vBias().clone();
        for (int i = 0; i < vBias.length; i++) {
            vBias[i] *= 2;
        }
        DecoderLayer.Weights doubled = new DecoderLayer.Weights(
                w.inputNorm(),
                times(w.q(), 2),
                w.qBias(),
                times(w.k(), 2),
                w.kBias(),
                times(w.v(), 4),
                vBias,
                times(w.o(), 2),
                w.postNorm(),
                times(w.gate(), 2),
                times(w.up(), 2),
                times(w.down(), 2));
        List<String> calls = new java.util.ArrayList<>();
        ActivationQuant twice = new ActivationQuant() {
            @Override
            public void linearInput(int layer, List<String> modules, float[] x, int rows, int cols) {
                calls.add(layer + " " + modules + " " + rows + "x" + cols);
                for (int i = 0; i < rows * cols; i++) {
                    x[i] *= 2;
                }
            }

            @Override
            public void keysValues(int layer, float[] k, float[] v, int rows, int kvHeads, int headDim) {
                calls.add(layer + " kv " + rows + "x" + kvHeads + "x" + headDim);
                for (int i = 0; i < rows * kvHeads * headDim; i++) {
                    v[i] *= 2;
                }
            }
        };
        Kernels k = VectorKernels.INSTANCE;
        DecoderLayer hooked = new DecoderLayer(CFG, 0, w, k).withActivationQuant(twice);
        DecoderLayer reference = new DecoderLayer(CFG, 0, doubled, k);
        float[] x = input(10, 8);
        float[] a = hooked.forward(x, 2, 4, LayerObserver.NONE);
        float[] b = reference.forward(x, 2, 4, LayerObserver.NONE);
        for (int i = 0; i < a.length; i++) {
            assertEquals(b[i], a[i], 0.0, "element " + i);
        }
        assertEquals(
                List.of(
                        "0 [self_attn.q_proj, self_attn.k_proj, self_attn.v_proj] 8x32",
                        "0 kv 8x2x8",
                        "0 [self_attn.o_proj] 8x32",
                        "0 [mlp.gate_proj, mlp.up_proj] 8x32",
                        "0 [mlp.down_proj] 8x96"),
                calls);
        KvCache ca = new KvCache(CFG, 4);
        KvCache cb = new KvCache(CFG, 4);
        float[] ya =
                hooked.withWeights(w).forward(Arrays.copyOf(x, 4 * CFG.hiddenSize()), 4, 0, ca, LayerObserver.NONE);
        float[] yb = reference.forward(Arrays.copyOf(x, 4 * CFG.hiddenSize()), 4, 0, cb, LayerObserver.NONE);
        for (int i = 0; i < ya.length; i++) {
            assertEquals(yb[i], ya[i], 0.0, "cached element " + i);
        }
        float[] va = dev.m2q.core.kernels.JavaBackend.array(ca.values(0));
        float[] vb = dev.m2q.core.kernels.JavaBackend.array(cb.values(0));
        for (int i = 0; i < 4 * CFG.kvDim(); i++) {
            assertEquals(vb[i], va[i], 0.0, "cached value " + i);
        }
    }
}
