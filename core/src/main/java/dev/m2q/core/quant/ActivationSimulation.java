package dev.m2q.core.quant;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ActivationQuant;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tensor.DType;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The 8-bit parts of a scheme simulated in the reference forward from the scales a release wrote (ALGORITHMS.md
 * §4): each linear input fake-quantized to FP8 or INT8 — per token with a scale computed from the row (dynamic) or
 * with the written {@code input_scale} (static; linears that share an input, which engines fuse, use the largest of
 * their scales, as vLLM does) — and keys after RoPE and values fake-quantized to FP8 e4m3 with the written
 * {@code k_scale} / {@code v_scale}, per tensor or per KV head. Rounding is to nearest even, saturating ({@link
 * EightBit}).
 *
 * <p>It also counts, for the static scales, how many values they saturate on the text it runs over.
 */
public final class ActivationSimulation implements ActivationQuant {
    private final ModelConfig cfg;
    private final QuantScheme scheme;
    private final Map<String, Float> inputScales;
    private final float[][] kScales;
    private final float[][] vScales;
    private long staticValues;
    private long staticSaturated;
    private long kvValues;
    private long keysSaturated;
    private long valuesSaturated;

    /**
     * @param scheme what to simulate: its activations (null: none) and KV cache (null: none)
     * @param inputScales static input scale by full linear prefix (used only for static activations)
     * @param kScales, vScales per layer: one scale, or one per KV head (used only with a KV cache)
     */
    public ActivationSimulation(
            ModelConfig cfg, QuantScheme scheme, Map<String, Float> inputScales, float[][] kScales, float[][] vScales) {
        this.cfg = cfg;
        this.scheme = scheme;
        this.inputScales = Map.copyOf(inputScales);
        this.kScales = kScales;
        this.vScales = vScales;
    }

    /**
     * The simulation of {@code scheme} (the release's own, or a part of it) with the scales stored in {@code dir}.
     *
     * @throws InputException when a scale the scheme needs is missing, malformed or not a finite positive number
     */
    public static ActivationSimulation read(Path dir, ModelConfig cfg, QuantScheme scheme) {
        Map<String, Float> input = new LinkedHashMap<>();
        float[][] k = new float[cfg.numLayers()][];
        float[][] v = new float[cfg.numLayers()][];
        try (Checkpoint ck = Checkpoint.open(dir)) {
            if (scheme.staticActivations()) {
                for (String prefix : GptqFormat.quantizedLinears(cfg).keySet()) {
                    input.put(prefix, scales(ck, prefix + ".input_scale", new long[] {1})[0]);
                }
            }
            if (scheme.kvCache() != null) {
                long[] shape = CompressedTensorsFormat.kvScaleShape(cfg, scheme.kvCache());
                for (int l = 0; l < cfg.numLayers(); l++) {
                    k[l] = scales(ck, cfg.arch().module(l, "self_attn.k_scale"), shape);
                    v[l] = scales(ck, cfg.arch().module(l, "self_attn.v_scale"), shape);
                }
            }
        }
        return new ActivationSimulation(cfg, scheme, input, k, v);
    }

    private static float[] scales(Checkpoint ck, String name, long[] shape) {
        if (!ck.contains(name)) {
            throw new InputException(name + ": missing; the release's quantization_config declares it");
        }
        TensorView t = ck.tensor(name).requireDtype(DType.F32).requireShape(shape);
        float[] s = t.toFloatArray();
        for (float x : s) {
            if (!(x > 0) || Float.isInfinite(x)) {
                throw new InputException(name + " holds " + x + "; a scale must be finite and > 0");
            }
        }
        return s;
    }

    @Override
    public void linearInput(int layer, List<String> modules, float[] x, int rows, int cols) {
        EightBit type = scheme.activations();
        if (type == null) {
            return;
        }
        if (!scheme.staticActivations()) {
            type.fakeQuantPerToken(x, rows, cols);
            return;
        }
        float s = 0f;
        for (String m : modules) {
            Float ms = inputScales.get(cfg.arch().module(layer, m));
            if (ms == null) {
                throw new IllegalStateException(
                        "no input_scale for " + cfg.arch().module(layer, m));
            }
            s = Math.max(s, ms);
        }
        int n = rows * cols;
        long saturated = 0;
        for (int i = 0; i < n; i++) {
            if (type.saturates(x[i], s)) {
                saturated++;
            }
            x[i] = type.fakeQuant(x[i], s);
        }
        staticValues += n;
        staticSaturated += saturated;
    }

    @Override
    public void keysValues(int layer, float[] k, float[] v, int rows, int kvHeads, int headDim) {
        if (scheme.kvCache() == null) {
            return;
        }
        keysSaturated += kv(k, kScales[layer], rows, kvHeads, headDim);
        valuesSaturated += kv(v, vScales[layer], rows, kvHeads, headDim);
        kvValues += (long) rows * kvHeads * headDim;
    }

    private static long kv(float[] x, float[] scales, int rows, int kvHeads, int headDim) {
        long saturated = 0;
        for (int r = 0; r < rows; r++) {
            for (int h = 0; h < kvHeads; h++) {
                float s = scales.length == 1 ? scales[0] : scales[h];
                int off = (r * kvHeads + h) * headDim;
                for (int i = off; i < off + headDim; i++) {
                    if (EightBit.FP8.saturates(x[i], s)) {
                        saturated++;
                    }
                    x[i] = EightBit.FP8.fakeQuant(x[i], s);
                }
            }
        }
        return saturated;
    }

    /**
     * What the written scales clipped on the values simulated so far: fractions of the static-scaled linear inputs,
     * the keys and the values beyond max · scale; NaN where nothing of that kind was simulated.
     */
    public record Saturation(double staticInputs, double keys, double values) {}

    public Saturation saturation() {
        return new Saturation(
                staticValues == 0 ? Double.NaN : (double) staticSaturated / staticValues,
                kvValues == 0 ? Double.NaN : (double) keysSaturated / kvValues,
                kvValues == 0 ? Double.NaN : (double) valuesSaturated / kvValues);
    }
}
