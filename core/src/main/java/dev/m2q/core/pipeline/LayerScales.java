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
 * INT8 = amax / 127) and into the fields of {@code m2q-report.jsonl}. Whatever the scheme, every linear's row gets
 * its input's absmax per tensor ({@code act_amax}) and per channel ({@code act_amax_channels}), and each layer gets
 * a {@code self_attn} row with the absmax of keys after RoPE and of values, per tensor and per KV head; the scales
 * are added where the scheme writes them.
 *
 * @param inputScales static input scale by linear (relative name); empty unless the scheme is static
 * @param kScale, vScale the KV-cache scales, one value or one per KV head; null without an FP8 KV cache
 */
record LayerScales(
        Map<String, Map<String, Object>> linearFields,
        Map<String, Float> inputScales,
        float[] kScale,
        float[] vScale,
        Map<String, Object> kvRow) {

    static LayerScales of(ModelConfig cfg, int layer, RangeCalibrator.Ranges r, QuantScheme scheme) {
        Map<String, Map<String, Object>> fields = new LinkedHashMap<>();
        Map<String, Float> inputScales = new LinkedHashMap<>();
        for (Map.Entry<String, RangeCalibrator.Input> e : r.inputs().entrySet()) {
            RangeCalibrator.Input in = e.getValue();
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("act_amax", in.amax());
            f.put("act_amax_channels", compact(in.channels()));
            if (scheme.staticActivations()) {
                float range = in.amax();
                double saturated = 0;
                if (scheme.actClipPercentile() < 100) {
                    var clip = in.histogram().clip(scheme.actClipPercentile());
                    range = Math.min(range, clip.threshold());
                    saturated = clip.fraction();
                    f.put("act_clip_percentile", scheme.actClipPercentile());
                    f.put("act_clip_amax", range);
                }
                float s = scheme.activations().scale(range);
                inputScales.put(e.getKey(), s);
                f.put("input_scale", s);
                f.put("input_scale_type", scheme.activations().name());
                f.put("act_saturation", saturated);
            }
            fields.put(e.getKey(), f);
        }
        float[] kHeads = r.perHead(r.keyChannels());
        float[] vHeads = r.perHead(r.valueChannels());
        float kAmax = RangeCalibrator.Ranges.max(kHeads);
        float vAmax = RangeCalibrator.Ranges.max(vHeads);
        Map<String, Object> kv = new LinkedHashMap<>();
        kv.put("layer", layer);
        kv.put("module", cfg.arch().module(layer, "self_attn"));
        kv.put("kind", "kv_cache");
        kv.put("k_amax", kAmax);
        kv.put("k_amax_heads", floats(kHeads));
        kv.put("v_amax", vAmax);
        kv.put("v_amax_heads", floats(vHeads));
        float[] kScale = null;
        float[] vScale = null;
        if (scheme.kvCache() != null) {
            boolean perHead = scheme.kvCache() == QuantScheme.KvGranularity.HEAD;
            kScale = perHead ? scales(kHeads) : new float[] {EightBit.FP8.scale(kAmax)};
            vScale = perHead ? scales(vHeads) : new float[] {EightBit.FP8.scale(vAmax)};
            kv.put("kv_granularity", perHead ? "head" : "tensor");
            kv.put("k_scale", floats(kScale));
            kv.put("v_scale", floats(vScale));
        }
        return new LayerScales(fields, inputScales, kScale, vScale, kv);
    }

    /**
     * The method's rows for this layer with the calibration fields added to each linear's row (a linear without a
     * row gets one), then the layer's {@code self_attn} row. The method's rows are not modified.
     */
    List<Map<String, Object>> mergeInto(ModelConfig cfg, int layer, List<Map<String, Object>> methodRows) {
        List<Map<String, Object>> out = new ArrayList<>();
        Map<String, Map<String, Object>> pending = new LinkedHashMap<>();
        linearFields.forEach((rel, f) -> pending.put(cfg.arch().module(layer, rel), f));
        for (Map<String, Object> row : methodRows) {
            Map<String, Object> merged = new LinkedHashMap<>(row);
            Map<String, Object> f = pending.remove(String.valueOf(row.get("module")));
            if (f != null) {
                merged.putAll(f);
            }
            out.add(merged);
        }
        pending.forEach((module, f) -> {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("layer", layer);
            row.put("module", module);
            row.putAll(f);
            out.add(row);
        });
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
