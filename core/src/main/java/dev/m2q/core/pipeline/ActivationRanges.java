package dev.m2q.core.pipeline;

import java.util.List;

/**
 * What calibration measured at one linear's input, for its report row (ALGORITHMS.md §4).
 *
 * @param amax the input's absmax over every calibration token ({@code act_amax})
 * @param channels its absmax per input channel, each the shortest decimal that reads back as the same float
 *     ({@code act_amax_channels})
 * @param staticScale the static input scale the scheme writes; null when activations are not static
 */
public record ActivationRanges(float amax, List<Double> channels, StaticScale staticScale) {
    public ActivationRanges {
        channels = List.copyOf(channels);
    }

    /**
     * A static input scale.
     *
     * @param scale the scale written as {@code input_scale}
     * @param type the 8-bit type it scales to ({@code input_scale_type}: FP8, INT8)
     * @param saturation the fraction of calibration values beyond the scaled range ({@code act_saturation}; 0
     *     without clipping)
     * @param clip the percentile clipping that set the range; null when the range is the absmax
     */
    public record StaticScale(float scale, String type, double saturation, Clip clip) {}

    /**
     * @param percentile the percentile of |x| taken as the range ({@code act_clip_percentile})
     * @param amax the range it gave, at most the absmax ({@code act_clip_amax})
     */
    public record Clip(double percentile, float amax) {}
}
