package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The activation ranges of one decoder layer over every calibration token (ALGORITHMS.md §4), observed while the
 * layer pass propagates the calibration set through the quantized layer (or, where the pipeline shows it every pass
 * of the layer, in the last pass that showed each tensor, whose weights up to it are the quantized ones: {@link
 * #newPass}), so there is no second pass over the model and the ranges are those of the 4-bit model the engines run: per linear input the absolute maximum per
 * channel (hence per tensor), and per layer the absolute maximum of the keys after RoPE and of the values per
 * channel (hence per KV head and per tensor). The running maxima live on the pass's {@link Backend} and the
 * reductions run there ({@link Backend#absMaxColumns}, the twin of {@link Kernels#absMaxColumns}; on the device under
 * {@code --device cuda}); only the per-channel maxima cross, once, in {@link #ranges()}. Percentile clipping counts
 * a histogram of every value, on the CPU: only then are the linear inputs read out.
 *
 * <p>Linears that share an input (the ArchSpec's groups: q/k/v, gate/up) are measured once, on the group's first.
 */
final class RangeCalibrator implements LayerObserver, AutoCloseable {
    private final ModelConfig cfg;
    private final int layer;
    private final Backend backend;
    private final boolean histograms;
    private final Map<String, String> leadOf = new HashMap<>();
    private final Map<String, Buf> channels = new LinkedHashMap<>();
    private final Map<String, AbsHistogram> counts = new HashMap<>();
    private Buf keys;
    private Buf values;
    /** What an earlier pass measured, to be measured again from its first showing in this pass ({@link #newPass}). */
    private final Set<String> stale = new HashSet<>();

    private boolean keysStale;

    /**
     * @param backend the backend the pass runs on (the layer context's), where the maxima are kept
     * @param histograms also count |x| of every linear input, for a percentile clip
     */
    RangeCalibrator(ModelConfig cfg, int layer, Backend backend, boolean histograms) {
        this.cfg = cfg;
        this.layer = layer;
        this.backend = backend;
        this.histograms = histograms;
        for (List<String> group : cfg.arch().sequentialGroups()) {
            for (String m : group) {
                leadOf.put(m, group.getFirst());
            }
        }
    }

    /**
     * A new pass over the calibration set begins: each input, and the keys and values, are measured again from
     * their first showing in it, so the ranges are those of the last pass that showed each (the layer context shows
     * this observer every pass of the layer: {@link LayerContext#observeEveryPass}).
     */
    void newPass() {
        stale.addAll(channels.keySet());
        keysStale = keys != null;
    }

    @Override
    public void linearInput(String module, Backend b, Buf x, int rows, int cols) {
        if (!module.equals(leadOf.get(module))) {
            return;
        }
        if (stale.remove(module)) {
            channels.remove(module).close();
            counts.remove(module);
        }
        Buf c = channels.computeIfAbsent(module, m -> backend.alloc(cols));
        backend.absMaxColumns(x, rows, cols, c);
        if (histograms) {
            AbsHistogram h = counts.computeIfAbsent(module, m -> new AbsHistogram());
            backend.inspect(x, a -> h.add(a, rows * cols));
        }
    }

    @Override
    public void keysValues(Backend b, Buf k, Buf v, int rows, int kvDim) {
        if (keysStale) {
            keys.close();
            values.close();
            keys = null;
            keysStale = false;
        }
        if (keys == null) {
            keys = backend.alloc(kvDim);
            values = backend.alloc(kvDim);
        }
        backend.absMaxColumns(k, rows, kvDim, keys);
        backend.absMaxColumns(v, rows, kvDim, values);
    }

    /** Frees the maxima on the backend (after {@link #ranges()}, or instead of it). */
    @Override
    public void close() {
        channels.values().forEach(Buf::close);
        if (keys != null) {
            keys.close();
            values.close();
        }
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
     * What the pass saw, read off the backend (the statistics' one crossing) and freed there; call once. A NaN or
     * infinite activation is refused, naming the layer and module: no scale can represent it, and it means the
     * weights or the calibration data are broken.
     */
    Ranges ranges() {
        Map<String, float[]> host = new HashMap<>();
        for (Map.Entry<String, Buf> e : channels.entrySet()) {
            host.put(e.getKey(), backend.take(e.getValue()));
        }
        if (keys == null) {
            throw new IllegalStateException("layer " + layer + ": the pass never showed its keys and values");
        }
        float[] k = backend.take(keys);
        float[] v = backend.take(values);
        Map<String, Input> inputs = new LinkedHashMap<>();
        Map<String, Input> byLead = new HashMap<>();
        for (String module : cfg.arch().linears()) {
            String lead = leadOf.get(module);
            float[] c = host.get(lead);
            if (c == null) {
                throw new IllegalStateException("layer " + layer + ": the pass never showed the input of " + lead);
            }
            Input in = byLead.get(lead);
            if (in == null) {
                in = new Input(c, Ranges.max(c), counts.get(lead));
                byLead.put(lead, in);
            }
            finite(in.amax(), "the input of " + module);
            inputs.put(module, in);
        }
        finite(Ranges.max(k), "its keys");
        finite(Ranges.max(v), "its values");
        return new Ranges(inputs, k, v, cfg.headDim());
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
