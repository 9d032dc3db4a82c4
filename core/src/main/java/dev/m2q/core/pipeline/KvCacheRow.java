package dev.m2q.core.pipeline;

import com.fasterxml.jackson.annotation.JsonValue;
import java.util.List;

/**
 * A layer's {@code self_attn} row of {@code m2q-report.jsonl} ({@code "kind": "kv_cache"}): the absmax of keys after
 * RoPE and of values, per tensor and per KV head, and the FP8 KV-cache scales when the scheme has them.
 *
 * @param scales null without an FP8 KV cache
 */
public record KvCacheRow(
        int layer,
        String module,
        float kAmax,
        List<Float> kAmaxHeads,
        float vAmax,
        List<Float> vAmaxHeads,
        KvScales scales)
        implements ReportLine {
    public static final String KIND = "kv_cache";

    public KvCacheRow {
        kAmaxHeads = List.copyOf(kAmaxHeads);
        vAmaxHeads = List.copyOf(vAmaxHeads);
    }

    /**
     * @param granularity "tensor" (one scale each) or "head" (one per KV head)
     * @param k, v the scales, amax / 448
     */
    public record KvScales(String granularity, List<Float> k, List<Float> v) {
        public KvScales {
            k = List.copyOf(k);
            v = List.copyOf(v);
        }
    }

    @JsonValue
    ReportWire wire() {
        return ReportWire.of(this);
    }
}
