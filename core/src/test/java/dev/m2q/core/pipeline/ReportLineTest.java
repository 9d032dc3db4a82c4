package dev.m2q.core.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.pipeline.MethodStats.AutoRoundStats;
import dev.m2q.core.pipeline.MethodStats.GptqStats;
import dev.m2q.core.pipeline.MethodStats.RtnStats;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The typed rows of {@code m2q-report.jsonl}: each kind writes the keys the README and the tools name, in the order
 * the file has always had them, and reads back to the same row and the same bytes; a line whose keys do not fit its
 * kind or method is an error naming where.
 */
class ReportLineTest {
    private static final ActivationRanges STATIC = new ActivationRanges(
            2.5f,
            List.of(0.5, 2.5),
            new ActivationRanges.StaticScale(0.005f, "FP8", 0.001, new ActivationRanges.Clip(99.9, 2.25f)));

    @Test
    void eachKindWritesItsKeysInTheFilesOrder() {
        assertEquals(
                "{\"layer\":0,\"module\":\"m.q\",\"method\":\"gptq\",\"loss\":1.5,\"damp\":0.01,"
                        + "\"fallbacks\":[\"raised damp\"],\"time_s\":0.25,\"act_amax\":2.5,\"act_amax_channels\":[0.5,2.5],"
                        + "\"act_clip_percentile\":99.9,\"act_clip_amax\":2.25,\"input_scale\":0.005,"
                        + "\"input_scale_type\":\"FP8\",\"act_saturation\":0.001}",
                Json.write(new ReportRow(0, "m.q", 1.5, 0.25, new GptqStats(0.01, List.of("raised damp"), Double.NaN))
                        .withRanges(STATIC)));
        assertEquals(
                "{\"layer\":1,\"module\":\"m.k\",\"method\":\"rtn\",\"weight_mse\":0.125,\"time_s\":0.5}",
                Json.write(new ReportRow(1, "m.k", 0.125, 0.5, new RtnStats())));
        assertEquals(
                "{\"layer\":2,\"module\":\"m.v\",\"method\":\"autoround\",\"loss\":0.5,\"loss_iter0\":0.75,\"iters\":0,"
                        + "\"best_iter\":0,\"codes_changed\":0.0,\"tune_s\":0.0,\"time_s\":1.0}",
                Json.write(new ReportRow(
                        2, "m.v", 0.5, 1.0, new AutoRoundStats(0.75, 0, 0, Double.NaN, Double.NaN, 0, 0))),
                "without steps there are no batch losses to write");
        assertEquals(
                "{\"layer\":3,\"module\":\"m.self_attn\",\"kind\":\"kv_cache\",\"k_amax\":4.0,\"k_amax_heads\":[4.0],"
                        + "\"v_amax\":1.0,\"v_amax_heads\":[1.0],\"kv_granularity\":\"tensor\",\"k_scale\":[0.008928572],"
                        + "\"v_scale\":[0.002232143]}",
                Json.write(new KvCacheRow(
                        3,
                        "m.self_attn",
                        4f,
                        List.of(4f),
                        1f,
                        List.of(1f),
                        new KvCacheRow.KvScales("tensor", List.of(4f / 448), List.of(1f / 448)))));
    }

    @Test
    void everyKindReadsBackToTheSameRowAndBytesNonFiniteFiguresIncluded() {
        List<ReportLine> rows = List.of(
                new ReportRow(0, "m.q", Double.NaN, 0.25, new GptqStats(0.01, List.of(), Double.NaN))
                        .withRanges(STATIC),
                new ReportRow(0, "m.k", 1.25, 0.5, new GptqStats(0.01, List.of(), 1.5)),
                new ReportRow(1, "m.k", 0.125, 0.5, new RtnStats())
                        .withRanges(new ActivationRanges(Float.POSITIVE_INFINITY, List.of(1.0), null)),
                new ReportRow(2, "m.v", 0.5, 1.0, new AutoRoundStats(0.75, 10, 3, 0.9, 0.4, 0.125, 0.75)),
                ReportRow.rangesOnly(2, "m.o", new ActivationRanges(1f, List.of(1.0), null)),
                new KvCacheRow(3, "m.self_attn", 4f, List.of(4f, 2f), 1f, List.of(1f, 0.5f), null));
        for (ReportLine row : rows) {
            String line = Json.write(row);
            ReportLine back = Json.read(line, ReportLine.class);
            assertEquals(line, Json.write(back));
            if (!line.contains("null")) {
                assertEquals(row, back, line);
            }
        }
        assertTrue(
                Json.write(rows.get(1)).contains("\"fallbacks\":[],\"sampled_loss\":1.5,\"time_s\""),
                "the exact loss, when asked for, follows the fallbacks");
        ReportRow nan = (ReportRow) Json.read(Json.write(rows.getFirst()), ReportLine.class);
        assertTrue(Double.isNaN(nan.loss()), "a loss written as null reads back as NaN");
    }

    @Test
    void aLineWhoseKeysDoNotFitItsKindIsAnErrorNamingWhere() {
        String rtn = "{\"layer\":1,\"module\":\"m.k\",\"method\":\"rtn\",\"weight_mse\":0.125,\"time_s\":0.5";
        refused(rtn + ",\"damp\":0.01}", "a rtn row has the keys");
        refused(rtn.replace(",\"time_s\":0.5", "") + "}", "a rtn row has the keys");
        refused(rtn.replace("rtn", "awq") + "}", "unknown method \"awq\"");
        refused(rtn + ",\"kind\":\"kv\"}", "unknown row kind \"kv\"");
        refused("{\"module\":\"m.k\"}", "missing \"layer\"");
        refused(rtn + ",\"extra\":1}", "extra");
        String gptq = "{\"layer\":0,\"module\":\"m.q\",\"method\":\"gptq\",\"loss\":1.5,\"damp\":0.01,\"time_s\":0.25";
        refused(gptq + "}", "missing \"fallbacks\"");
        refused(gptq + ",\"fallbacks\":[null]}", "\"fallbacks\" holds null");
        refused(rtn + ",\"act_amax\":1.0}", "missing \"act_amax_channels\"");
        refused(
                "{\"layer\":0,\"module\":\"m.s\",\"kind\":\"kv_cache\",\"k_amax\":1.0,\"v_amax\":1.0,"
                        + "\"v_amax_heads\":[1.0]}",
                "missing \"k_amax_heads\"");
        refused(rtn.replace("0.125", "\"low\"") + "}", "line 1, column");
    }

    private static void refused(String line, String expected) {
        JsonException e = assertThrows(JsonException.class, () -> Json.read(line, ReportLine.class), line);
        assertTrue(e.getMessage().contains(expected), line + " → " + e.getMessage());
        assertTrue(e.getMessage().contains("line 1, column"), e.getMessage());
    }
}
