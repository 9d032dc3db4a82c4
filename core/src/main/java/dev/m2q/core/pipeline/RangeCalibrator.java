package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The activation ranges of one decoder layer over every calibration token (ALGORITHMS.md §4), observed while the
 * layer pass propagates the calibration set through the quantized layer, so there is no second pass over the
 * model and the ranges are those of the 4-bit model the engines run: per linear input the absolute maximum per
 * channel (hence per tensor), and per layer the absolute maximum of the keys after RoPE and of the values per
 * channel (hence per KV head and per tensor). The reductions run on the job's kernels ({@link
 * Kernels#absMaxColumns}, on the device under {@code --device cuda}); only percentile clipping counts a histogram
 * of every value, on the CPU.
 *
 * <p>Linears that share an input (the ArchSpec's groups: q/k/v, gate/up) are measured once, on the group's first.
 */
final class RangeCalibrator implements LayerObserver {
    private final ModelConfig cfg;
    private final int layer;
    private final Kernels kernels;
    private final boolean histograms;
    private final Map<String, String> leadOf = new HashMap<>();
    private final Map<String, float[]> channels = new LinkedHashMap<>();
    private final Map<String, AbsHistogram> counts = new HashMap<>();
    private final float[] keys;
    private final float[] values;

    /** @param histograms also count |x| of every linear input, for a percentile clip */
    RangeCalibrator(ModelConfig cfg, int layer, Kernels kernels, boolean histograms) {
        this.cfg = cfg;
        this.layer = layer;
        this.kernels = kernels;
        this.histograms = histograms;
        for (List<String> group : cfg.arch().sequentialGroups()) {
            for (String m : group) {
                leadOf.put(m, group.getFirst());
            }
        }
        this.keys = new float[cfg.kvDim()];
        this.values = new float[cfg.kvDim()];
    }

    @Override
    public void linearInput(String module, float[] x, int rows, int cols) {
        if (!module.equals(leadOf.get(module))) {
            return;
        }
        float[] c = channels.computeIfAbsent(module, m -> new float[cols]);
        kernels.absMaxColumns(x, 0, rows, cols, c, 0);
        if (histograms) {
            counts.computeIfAbsent(module, m -> new AbsHistogram()).add(x, rows * cols);
        }
    }

    @Override
    public void keysValues(float[] k, float[] v, int rows, int kvDim) {
        kernels.absMaxColumns(k, 0, rows, kvDim, keys, 0);
        kernels.absMaxColumns(v, 0, rows, kvDim, values, 0);
    }

    /**
     * One linear input's range.
     *
     * @param channels absmax per input channel [cols]
     * @param amax their maximum: the per-tensor absmax
     * @param histogram every |x|, or null without clipping
     */
    record Input(float[] channels, float amax, AbsHistogram histogram) {}

    /**
     * The layer's ranges.
     *
     * @param inputs by linear (relative name, every linear of the layer; linears sharing an input share the
     *     record)
     * @param keyChannels, valueChannels absmax per channel [kvHeads·headDim] of keys after RoPE and of values
     */
    record Ranges(Map<String, Input> inputs, float[] keyChannels, float[] valueChannels, int headDim) {
        /** Absmax per KV head of {@code channels}. */
        float[] perHead(float[] channels) {
            float[] h = new float[channels.length / headDim];
            for (int c = 0; c < channels.length; c++) {
                h[c / headDim] = Math.max(h[c / headDim], channels[c]);
            }
            return h;
        }

        static float max(float[] v) {
            float m = 0f;
            for (float x : v) {
                m = Math.max(m, x);
            }
            return m;
        }
    }

    /**
     * What the pass saw. A NaN or infinite activation is refused, naming the layer and module: no scale can
     * represent it, and it means the weights or the calibration data are broken.
     */
    Ranges ranges() {
        Map<String, Input> inputs = new LinkedHashMap<>();
        for (String module : cfg.arch().linears()) {
            String lead = leadOf.get(module);
            float[] c = channels.get(lead);
            if (c == null) {
                throw new IllegalStateException("layer " + layer + ": the pass never showed the input of " + lead);
            }
            inputs.put(module, new Input(c, finite(Ranges.max(c), "the input of " + module), counts.get(lead)));
        }
        finite(Ranges.max(keys), "its keys");
        finite(Ranges.max(values), "its values");
        return new Ranges(inputs, keys, values, cfg.headDim());
    }

    private float finite(float amax, String what) {
        if (!Float.isFinite(amax)) {
            throw new InputException(cfg.arch().layerPrefix() + layer + ": the calibration pass produced " + amax
                    + " in " + what + " (absmax over the calibration tokens); no 8-bit scale can hold it: check the"
                    + " source weights and the calibration text");
        }
        return amax;
    }
}
