package dev.m2q.core.pipeline;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.deser.std.StdDeserializer;
import dev.m2q.core.json.Json;
import dev.m2q.core.pipeline.ActivationRanges.Clip;
import dev.m2q.core.pipeline.ActivationRanges.StaticScale;
import dev.m2q.core.pipeline.KvCacheRow.KvScales;
import dev.m2q.core.pipeline.MethodStats.AutoRoundStats;
import dev.m2q.core.pipeline.MethodStats.GptqStats;
import dev.m2q.core.pipeline.MethodStats.RtnStats;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;

/**
 * The flat layout of an {@code m2q-report.jsonl} line: every key any row has, in the order they are written, absent
 * (null here) where a row has no such key. A non-finite figure is written as null and read back as NaN, as
 * everywhere in {@link Json}. Reading back is strict: the typed row rebuilt from a line must write that line's keys
 * exactly ({@link Reader}).
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
record ReportWire(
        Integer layer,
        String module,
        String method,
        String kind,
        Double loss,
        @JsonProperty("weight_mse") Double weightMse,
        Double damp,
        List<String> fallbacks,
        @JsonProperty("sampled_loss") Double sampledLoss,
        @JsonProperty("loss_iter0") Double lossIter0,
        Integer iters,
        @JsonProperty("best_iter") Integer bestIter,
        @JsonProperty("batch_loss_iter0") Double batchLossIter0,
        @JsonProperty("batch_loss_best") Double batchLossBest,
        @JsonProperty("codes_changed") Double codesChanged,
        @JsonProperty("tune_s") Double tuneS,
        @JsonProperty("time_s") Double timeS,
        @JsonProperty("act_amax") Float actAmax,
        @JsonProperty("act_amax_channels") List<Double> actAmaxChannels,
        @JsonProperty("act_clip_percentile") Double actClipPercentile,
        @JsonProperty("act_clip_amax") Float actClipAmax,
        @JsonProperty("input_scale") Float inputScale,
        @JsonProperty("input_scale_type") String inputScaleType,
        @JsonProperty("act_saturation") Double actSaturation,
        @JsonProperty("k_amax") Float kAmax,
        @JsonProperty("k_amax_heads") List<Float> kAmaxHeads,
        @JsonProperty("v_amax") Float vAmax,
        @JsonProperty("v_amax_heads") List<Float> vAmaxHeads,
        @JsonProperty("kv_granularity") String kvGranularity,
        @JsonProperty("k_scale") List<Float> kScale,
        @JsonProperty("v_scale") List<Float> vScale) {

    static ReportWire of(ReportRow r) {
        MethodStats s = r.stats();
        GptqStats g = s instanceof GptqStats x ? x : null;
        AutoRoundStats a = s instanceof AutoRoundStats x ? x : null;
        boolean rtn = s instanceof RtnStats;
        boolean batches = a != null && a.iters() > 0;
        ActivationRanges in = r.ranges();
        StaticScale st = in == null ? null : in.staticScale();
        Clip clip = st == null ? null : st.clip();
        return new ReportWire(
                r.layer(),
                r.module(),
                r.method(),
                null,
                s == null || rtn ? null : r.loss(),
                rtn ? r.loss() : null,
                g == null ? null : g.damp(),
                g == null ? null : g.fallbacks(),
                g == null || Double.isNaN(g.sampledLoss()) ? null : g.sampledLoss(),
                a == null ? null : a.lossIter0(),
                a == null ? null : a.iters(),
                a == null ? null : a.bestIter(),
                batches ? a.batchLossIter0() : null,
                batches ? a.batchLossBest() : null,
                a == null ? null : a.codesChanged(),
                a == null ? null : a.tuneS(),
                s == null ? null : r.timeS(),
                in == null ? null : in.amax(),
                in == null ? null : in.channels(),
                clip == null ? null : clip.percentile(),
                clip == null ? null : clip.amax(),
                st == null ? null : st.scale(),
                st == null ? null : st.type(),
                st == null ? null : st.saturation(),
                null,
                null,
                null,
                null,
                null,
                null,
                null);
    }

    static ReportWire of(KvCacheRow r) {
        KvScales s = r.scales();
        return new ReportWire(
                r.layer(),
                r.module(),
                null,
                KvCacheRow.KIND,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                r.kAmax(),
                r.kAmaxHeads(),
                r.vAmax(),
                r.vAmaxHeads(),
                s == null ? null : s.granularity(),
                s == null ? null : s.k(),
                s == null ? null : s.v());
    }

    /** The typed line this layout holds; throws IllegalArgumentException naming what does not fit. */
    ReportLine typed() {
        require(layer, "layer");
        require(module, "module");
        ReportLine line;
        if (kind != null) {
            if (!kind.equals(KvCacheRow.KIND)) {
                throw new IllegalArgumentException("unknown row kind \"" + kind + "\"");
            }
            require(kAmaxHeads, "k_amax_heads");
            require(vAmaxHeads, "v_amax_heads");
            KvScales scales = kvGranularity == null
                    ? null
                    : new KvScales(kvGranularity, require(kScale, "k_scale"), require(vScale, "v_scale"));
            line = new KvCacheRow(layer, module, f(kAmax), kAmaxHeads, f(vAmax), vAmaxHeads, scales);
        } else {
            ActivationRanges ranges = null;
            if (actAmax != null || actAmaxChannels != null) {
                StaticScale st = null;
                if (inputScale != null || inputScaleType != null) {
                    Clip clip = actClipPercentile == null && actClipAmax == null
                            ? null
                            : new Clip(d(actClipPercentile), f(actClipAmax));
                    st = new StaticScale(f(inputScale), inputScaleType, d(actSaturation), clip);
                }
                ranges = new ActivationRanges(f(actAmax), require(actAmaxChannels, "act_amax_channels"), st);
            }
            if (method == null) {
                line = ReportRow.rangesOnly(layer, module, ranges);
            } else {
                MethodStats stats =
                        switch (method) {
                            case "gptq" ->
                                new GptqStats(
                                        d(damp),
                                        require(fallbacks, "fallbacks"),
                                        sampledLoss == null ? Double.NaN : sampledLoss);
                            case "autoround" ->
                                new AutoRoundStats(
                                        d(lossIter0),
                                        i(iters, "iters"),
                                        i(bestIter, "best_iter"),
                                        d(batchLossIter0),
                                        d(batchLossBest),
                                        d(codesChanged),
                                        d(tuneS));
                            case "rtn" -> new RtnStats();
                            default -> throw new IllegalArgumentException("unknown method \"" + method + "\"");
                        };
                double l = stats instanceof RtnStats ? d(weightMse) : d(loss);
                line = new ReportRow(layer, module, method, l, d(timeS), stats, ranges);
            }
        }
        return line;
    }

    private static <T> T require(T v, String key) {
        if (v == null) {
            throw new IllegalArgumentException("missing \"" + key + "\"");
        }
        if (v instanceof List<?> l && l.contains(null)) {
            throw new IllegalArgumentException("\"" + key + "\" holds null");
        }
        return v;
    }

    private static int i(Integer v, String key) {
        require(v, key);
        return v;
    }

    /** A figure that may be absent or null: NaN then (the writer's non-finite; the rebuilt line says which). */
    private static double d(Double v) {
        return v == null ? Double.NaN : v;
    }

    private static float f(Float v) {
        return v == null ? Float.NaN : v;
    }

    /**
     * Reads a line as its typed row, strictly: the row rebuilt from it must have exactly the line's keys (a key
     * that does not belong to the row's kind or method, or a missing one, is an error at the line's position).
     */
    static final class Reader extends StdDeserializer<ReportLine> {
        private static final ObjectReader WIRE = Json.mapper()
                .readerFor(ReportWire.class)
                .without(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES);

        Reader() {
            super(ReportLine.class);
        }

        @Override
        public ReportLine deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            JsonNode read = ctxt.readTree(p);
            ReportLine line;
            try {
                line = WIRE.<ReportWire>readValue(read).typed();
            } catch (JacksonException e) {
                throw JsonMappingException.from(p, "not an m2q-report.jsonl row: " + e.getOriginalMessage());
            } catch (IllegalArgumentException e) {
                throw JsonMappingException.from(p, "not an m2q-report.jsonl row: " + e.getMessage());
            }
            List<String> keys = new ArrayList<>();
            read.fieldNames().forEachRemaining(keys::add);
            List<String> expected = new ArrayList<>();
            Json.mapper().valueToTree(line).fieldNames().forEachRemaining(expected::add);
            if (!new HashSet<>(keys).equals(new HashSet<>(expected))) {
                throw JsonMappingException.from(
                        p,
                        "not an m2q-report.jsonl row: a " + what(line) + " has the keys " + expected + ", this line "
                                + keys);
            }
            return line;
        }

        private static String what(ReportLine line) {
            return switch (line) {
                case ReportRow r when r.method() == null -> "row without a method";
                case ReportRow r -> r.method() + " row";
                case KvCacheRow k -> KvCacheRow.KIND + " row";
            };
        }
    }
}
