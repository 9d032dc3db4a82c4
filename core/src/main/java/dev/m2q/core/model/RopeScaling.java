package dev.m2q.core.model;

import dev.m2q.core.InputException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A {@code config.json}'s {@code rope_scaling} (or transformers v5's {@code rope_parameters}), as Hugging Face's
 * {@code modeling_rope_utils} reads it: the rule that turns the default inverse frequencies into the scaled ones, and
 * the attention factor that multiplies cos and sin. Only the types whose frequencies do not depend on the sequence
 * length are implemented; "dynamic", "longrope" and the rest are refused by name rather than run as something else.
 */
public sealed interface RopeScaling {
    /** No scaling: {@code rope_scaling} null, absent or of type "default". */
    RopeScaling NONE = new Default();

    /** The type as {@code config.json} names it. */
    String type();

    /** cos and sin are multiplied by this (YaRN's mscale); 1 for every other type. */
    default double attentionFactor() {
        return 1.0;
    }

    /**
     * The scaled inverse frequency of pair {@code i} of a rotary dimension {@code dim}, given its default one
     * {@code base} = 1 / theta^(2i/dim).
     */
    double scale(double base, int i, int dim, double theta);

    /** The object to write back into a {@code config.json} (null for no scaling). */
    Map<String, Object> toJson();

    record Default() implements RopeScaling {
        @Override
        public String type() {
            return "default";
        }

        @Override
        public double scale(double base, int i, int dim, double theta) {
            return base;
        }

        @Override
        public Map<String, Object> toJson() {
            return null;
        }
    }

    /** Position interpolation: every frequency divided by {@code factor}. */
    record Linear(double factor) implements RopeScaling {
        public Linear {
            positive("factor", factor);
        }

        @Override
        public String type() {
            return "linear";
        }

        @Override
        public double scale(double base, int i, int dim, double theta) {
            return base / factor;
        }

        @Override
        public Map<String, Object> toJson() {
            return json("linear", "factor", factor);
        }
    }

    /**
     * Llama 3.1's rule: wavelengths 2π/f shorter than original/high_freq_factor are kept, longer than
     * original/low_freq_factor divided by {@code factor}, and those between interpolated with the smooth factor
     * s = (original/λ − low)/(high − low): f·((1 − s)/factor + s).
     */
    record Llama3(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions)
            implements RopeScaling {
        public Llama3 {
            positive("factor", factor);
            if (!(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor)) {
                throw new InputException("config.json: rope_scaling (llama3) needs 0 < low_freq_factor <"
                        + " high_freq_factor, got " + lowFreqFactor + " and " + highFreqFactor);
            }
            if (originalMaxPositions <= 0) {
                throw new InputException("config.json: rope_scaling.original_max_position_embeddings must be"
                        + " positive, got " + originalMaxPositions);
            }
        }

        @Override
        public String type() {
            return "llama3";
        }

        @Override
        public double scale(double base, int i, int dim, double theta) {
            double wavelength = 2 * Math.PI / base;
            if (wavelength < originalMaxPositions / highFreqFactor) {
                return base;
            }
            if (wavelength > originalMaxPositions / lowFreqFactor) {
                return base / factor;
            }
            double smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
            return (1 - smooth) * base / factor + smooth * base;
        }

        @Override
        public Map<String, Object> toJson() {
            Map<String, Object> m = json("llama3", "factor", factor);
            m.put("low_freq_factor", lowFreqFactor);
            m.put("high_freq_factor", highFreqFactor);
            m.put("original_max_position_embeddings", (long) originalMaxPositions);
            return m;
        }
    }

    /**
     * YaRN (arXiv 2309.00071) as transformers computes it: pairs that turn more than {@code betaFast} times over the
     * original context keep their frequency, those turning fewer than {@code betaSlow} times are divided by
     * {@code factor}, with a linear ramp over the pair index between the two (its ends floored and ceiled when
     * {@code truncate}); cos and sin are multiplied by {@code attentionFactor} (default 0.1·ln(factor) + 1, or the
     * ratio of the mscale / mscale_all_dim forms).
     */
    record Yarn(
            double factor,
            int originalMaxPositions,
            double betaFast,
            double betaSlow,
            double attentionFactor,
            boolean truncate)
            implements RopeScaling {
        public Yarn {
            positive("factor", factor);
            if (originalMaxPositions <= 0) {
                throw new InputException("config.json: rope_scaling.original_max_position_embeddings must be"
                        + " positive, got " + originalMaxPositions);
            }
            if (!(betaSlow > 0) || !(betaFast > betaSlow)) {
                throw new InputException("config.json: rope_scaling (yarn) needs 0 < beta_slow < beta_fast, got "
                        + betaSlow + " and " + betaFast);
            }
            if (!(attentionFactor > 0) || Double.isInfinite(attentionFactor)) {
                throw new InputException(
                        "config.json: rope_scaling.attention_factor must be positive, got " + attentionFactor);
            }
        }

        @Override
        public String type() {
            return "yarn";
        }

        @Override
        public double scale(double base, int i, int dim, double theta) {
            double low = correctionDim(betaFast, dim, theta);
            double high = correctionDim(betaSlow, dim, theta);
            if (truncate) {
                low = Math.floor(low);
                high = Math.ceil(high);
            }
            low = Math.max(low, 0);
            high = Math.min(high, dim - 1);
            if (low == high) {
                high += 0.001; // transformers' guard against a zero-width ramp
            }
            double ramp = Math.clamp((i - low) / (high - low), 0.0, 1.0);
            double keep = 1 - ramp; // the share of the original (extrapolated) frequency
            return base / factor * (1 - keep) + base * keep;
        }

        /** The pair index whose wavelength fits {@code rotations} turns into the original context. */
        private double correctionDim(double rotations, int dim, double theta) {
            return dim * Math.log(originalMaxPositions / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
        }

        @Override
        public Map<String, Object> toJson() {
            Map<String, Object> m = json("yarn", "factor", factor);
            m.put("original_max_position_embeddings", (long) originalMaxPositions);
            m.put("beta_fast", betaFast);
            m.put("beta_slow", betaSlow);
            m.put("attention_factor", attentionFactor);
            m.put("truncate", truncate);
            return m;
        }
    }

    /**
     * Reads a {@code rope_scaling} value (null, or an object with "rope_type" or its legacy name "type").
     * {@code maxPositions} is the config's max_position_embeddings, YaRN's original context when the object names
     * none. Keys a type does not read are ignored, as transformers ignores them (it only warns).
     */
    static RopeScaling parse(Object raw, int maxPositions) {
        if (raw == null) {
            return NONE;
        }
        if (!(raw instanceof Map<?, ?> m)) {
            throw new InputException("config.json: rope_scaling must be an object or null, got " + raw);
        }
        Object typeValue = m.containsKey("rope_type") ? m.get("rope_type") : m.get("type");
        if (m.containsKey("rope_type")
                && m.containsKey("type")
                && !m.get("type").equals(typeValue)) {
            throw new InputException(
                    "config.json: rope_scaling names two types, rope_type " + typeValue + " and type " + m.get("type"));
        }
        if (!(typeValue instanceof String type)) {
            throw new InputException("config.json: rope_scaling has no \"rope_type\" (or \"type\") string: " + raw);
        }
        return switch (type) {
            case "default" -> NONE;
            case "linear" -> new Linear(number(m, "factor", null));
            case "llama3" ->
                new Llama3(
                        number(m, "factor", null),
                        number(m, "low_freq_factor", null),
                        number(m, "high_freq_factor", null),
                        integer(m, "original_max_position_embeddings", null));
            case "yarn" -> yarn(m, maxPositions);
            default ->
                throw new InputException("config.json: rope_scaling type \"" + type + "\" is not supported"
                        + " (supported: null, \"default\", \"linear\", \"llama3\", \"yarn\"; \"dynamic\" and"
                        + " \"longrope\" depend on the sequence length and are not implemented)");
        };
    }

    private static Yarn yarn(Map<?, ?> m, int maxPositions) {
        double factor = number(m, "factor", null);
        int original = integer(m, "original_max_position_embeddings", maxPositions);
        double attention;
        if (m.get("attention_factor") != null) {
            attention = number(m, "attention_factor", null);
        } else {
            double mscale = number(m, "mscale", 0.0);
            double mscaleAllDim = number(m, "mscale_all_dim", 0.0);
            // transformers: "if mscale and mscale_all_dim" (both nonzero) takes their ratio
            attention = mscale != 0 && mscaleAllDim != 0
                    ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAllDim)
                    : yarnMscale(factor, 1.0);
        }
        Object truncate = m.get("truncate");
        if (truncate != null && !(truncate instanceof Boolean)) {
            throw new InputException("config.json: rope_scaling.truncate must be true or false, got " + truncate);
        }
        return new Yarn(
                factor,
                original,
                // transformers: "beta_fast or 32", so 0 also means the default
                number(m, "beta_fast", 0.0) == 0 ? 32.0 : number(m, "beta_fast", null),
                number(m, "beta_slow", 0.0) == 0 ? 1.0 : number(m, "beta_slow", null),
                attention,
                !Boolean.FALSE.equals(truncate));
    }

    /** YaRN's 0.1·mscale·ln(factor) + 1 (1 for a factor ≤ 1). */
    private static double yarnMscale(double factor, double mscale) {
        return factor <= 1 ? 1.0 : 0.1 * mscale * Math.log(factor) + 1.0;
    }

    private static double number(Map<?, ?> m, String key, Double dflt) {
        Object v = m.get(key);
        if (v == null) {
            if (dflt != null) {
                return dflt;
            }
            throw new InputException("config.json: rope_scaling." + key + " is missing");
        }
        if (!(v instanceof Number n) || !Double.isFinite(n.doubleValue())) {
            throw new InputException("config.json: rope_scaling." + key + " must be a number, got " + v);
        }
        return n.doubleValue();
    }

    private static int integer(Map<?, ?> m, String key, Integer dflt) {
        Object v = m.get(key);
        if (v == null && dflt != null) {
            return dflt;
        }
        double d = number(m, key, null);
        if (d != Math.rint(d) || d > Integer.MAX_VALUE || d < Integer.MIN_VALUE) {
            throw new InputException("config.json: rope_scaling." + key + " must be an integer, got " + v);
        }
        return (int) d;
    }

    private static void positive(String key, double v) {
        if (!(v > 0) || Double.isInfinite(v)) {
            throw new InputException("config.json: rope_scaling." + key + " must be a positive number, got " + v);
        }
    }

    private static Map<String, Object> json(String type, String key, double value) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("rope_type", type);
        m.put(key, value);
        return m;
    }
}
