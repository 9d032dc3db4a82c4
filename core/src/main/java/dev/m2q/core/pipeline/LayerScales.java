package dev.m2q.core.pipeline;

import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.EightBit;
import dev.m2q.core.quant.QuantScheme;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One layer's calibrated ranges turned into the scales a scheme writes (ALGORITHMS.md §4: FP8 scale = amax / 448,
 * INT8 = amax / 127) and into the rows of {@code m2q-report.jsonl} ({@link ActivationRanges}, {@link KvCacheRow}). Whatever the scheme, every linear's row gets
 * its input's absmax per tensor ({@code act_amax}) and per channel ({@code act_amax_channels}), and each layer gets
 * a {@code self_attn} row with the absmax of keys after RoPE and of values, per tensor and per KV head; the scales
 * are added where the scheme writes them.
 *
 * @param linearRanges what each linear's row gets, by linear (relative name)
 * @param inputScales static input scale by linear (relative name); empty unless the scheme is static
 * @param kScale, vScale the KV-cache scales, one value or one per KV head; null without an FP8 KV cache
 */
record LayerScales(
        Map<String, ActivationRanges> linearRanges,
        Map<String, Float> inputScales,
        float[] kScale,
        float[] vScale,
        KvCacheRow kvRow) {

    static LayerScales of(ModelConfig cfg, int layer, RangeCalibrator.Ranges r, QuantScheme scheme) {
        Map<String, ActivationRanges> ranges = new LinkedHashMap<>();
        Map<String, Float> inputScales = new LinkedHashMap<>();
        for (Map.Entry<String, RangeCalibrator.Input> e : r.inputs().entrySet()) {
            RangeCalibrator.Input in = e.getValue();
            ActivationRanges.StaticScale staticScale = null;
            if (scheme.staticActivations()) {
                float range = in.amax();
                double saturated = 0;
                ActivationRanges.Clip clip = null;
                if (scheme.actClipPercentile() < 100) {
                    var c = in.histogram().clip(scheme.actClipPercentile());
                    range = Math.min(range, c.threshold());
                    saturated = c.fraction();
                    clip = new ActivationRanges.Clip(scheme.actClipPercentile(), range);
                }
                float s = scheme.activations().scale(range);
                inputScales.put(e.getKey(), s);
                staticScale =
                        new ActivationRanges.StaticScale(s, scheme.activations().name(), saturated, clip);
            }
            ranges.put(e.getKey(), new ActivationRanges(in.amax(), compact(in.channels()), staticScale));
        }
        float[] kHeads = r.perHead(r.keyChannels());
        float[] vHeads = r.perHead(r.valueChannels());
        float kAmax = RangeCalibrator.Ranges.max(kHeads);
        float vAmax = RangeCalibrator.Ranges.max(vHeads);
        float[] kScale = null;
        float[] vScale = null;
        KvCacheRow.KvScales kvScales = null;
        if (scheme.kvCache() != null) {
            boolean perHead = scheme.kvCache() == QuantScheme.KvGranularity.HEAD;
            kScale = perHead ? scales(kHeads) : new float[] {EightBit.FP8.scale(kAmax)};
            vScale = perHead ? scales(vHeads) : new float[] {EightBit.FP8.scale(vAmax)};
            kvScales = new KvCacheRow.KvScales(perHead ? "head" : "tensor", floats(kScale), floats(vScale));
        }
        KvCacheRow kv = new KvCacheRow(
                layer, cfg.arch().module(layer, "self_attn"), kAmax, floats(kHeads), vAmax, floats(vHeads), kvScales);
        return new LayerScales(ranges, inputScales, kScale, vScale, kv);
    }

    /**
     * The method's rows for this layer with the calibrated ranges added to each linear's row (a linear without a
     * row gets one), then the layer's {@code self_attn} row.
     */
    List<ReportLine> mergeInto(ModelConfig cfg, int layer, List<ReportRow> methodRows) {
        List<ReportLine> out = new ArrayList<>();
        Map<String, ActivationRanges> pending = new LinkedHashMap<>();
        linearRanges.forEach((rel, a) -> pending.put(cfg.arch().module(layer, rel), a));
        for (ReportRow row : methodRows) {
            ActivationRanges a = pending.remove(row.module());
            out.add(a == null ? row : row.withRanges(a));
        }
        pending.forEach((module, a) -> out.add(ReportRow.rangesOnly(layer, module, a)));
        out.add(kvRow);
        return out;
    }

    private static float[] scales(float[] amax) {
        float[] s = new float[amax.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = EightBit.FP8.scale(amax[i]);
        }
        return s;
    }

    private static List<Float> floats(float[] v) {
        List<Float> l = new ArrayList<>(v.length);
        for (float x : v) {
            l.add(x);
        }
        return l;
    }

    /** Per-channel values as the shortest decimals that read back as the same floats (a long list stays short). */
    private static List<Double> compact(float[] v) {
        List<Double> l = new ArrayList<>(v.length);
        for (float x : v) {
            l.add(Double.valueOf(Float.toString(x)));
        }
        return l;
    }
}
