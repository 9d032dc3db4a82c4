package dev.m2q.core.pipeline;

import com.fasterxml.jackson.databind.annotation.JsonDeserialize;

/**
 * One line of {@code m2q-report.jsonl}: a linear's row ({@link ReportRow}) or a layer's KV-cache row ({@link
 * KvCacheRow}). Both are written and read through one flat layout ({@link ReportWire}), so the file keeps the keys
 * the README and the tools name; {@code Json.read(line, ReportLine.class)} reads a line back strictly.
 */
@JsonDeserialize(using = ReportWire.Reader.class)
public sealed interface ReportLine permits ReportRow, KvCacheRow {
    int layer();

    /** The module's full name ("model.layers.3.mlp.up_proj", "model.layers.3.self_attn"). */
    String module();
}
