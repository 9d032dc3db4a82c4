package dev.m2q.core.pipeline;

import com.fasterxml.jackson.annotation.JsonValue;

/**
 * A linear's row of {@code m2q-report.jsonl}: what its method reported, and what calibration measured at its input.
 *
 * @param method the method's name; null (with {@code stats}) for a linear its method gave no row
 * @param loss the method's loss: GPTQ's proxy loss, AutoRound's block MSE of the released layer, RTN's mean squared
 *     weight error (written as {@code weight_mse}: no Hessian weighs it); NaN without a method row
 * @param timeS seconds the method spent ({@code time_s}); NaN without a method row
 * @param stats the method's own numbers; null without a method row
 * @param ranges the input's calibrated ranges; null until the pipeline adds them ({@link #withRanges})
 */
public record ReportRow(
        int layer, String module, String method, double loss, double timeS, MethodStats stats, ActivationRanges ranges)
        implements ReportLine {
    public ReportRow {
        if ((method == null) != (stats == null)
                || (stats != null && !stats.method().equals(method))) {
            throw new IllegalArgumentException(
                    "row of " + module + ": method " + method + " does not match its stats " + stats);
        }
    }

    /** A method's row, before calibration adds the input's ranges. */
    public ReportRow(int layer, String module, double loss, double timeS, MethodStats stats) {
        this(layer, module, stats.method(), loss, timeS, stats, null);
    }

    /** The row of a linear its method gave none: calibration's ranges only. */
    static ReportRow rangesOnly(int layer, String module, ActivationRanges ranges) {
        return new ReportRow(layer, module, null, Double.NaN, Double.NaN, null, ranges);
    }

    public ReportRow withRanges(ActivationRanges r) {
        return new ReportRow(layer, module, method, loss, timeS, stats, r);
    }

    @JsonValue
    ReportWire wire() {
        return ReportWire.of(this);
    }
}
