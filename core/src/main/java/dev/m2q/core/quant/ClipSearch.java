package dev.m2q.core.quant;

/**
 * The clipping search of {@code --clip-search} (issue 17): instead of RTN's scale from the group's absmax, try
 * shrinking the range and keep the scale whose round-to-nearest codes leave the least Σ|w − ŵ|^{@link #NORM} over
 * the group. This is what the GPTQ reference's quantizer does with {@code mse=True} (norm 2.4, a grid of shrink
 * factors), here over {@link #STEPS} + 1 factors f_i = 1 − {@link #SHRINK}·i/{@link #STEPS}, i = 0..{@link #STEPS},
 * from the full range down to 0.8 of it.
 *
 * <p>Exact and deterministic: each candidate's scale is {@link Rtn#scale}(f_i·absmax), fp16-rounded as the file
 * stores it, and its codes are {@link Rtn#code}'s, so the error measured is the error the release has; each error
 * is a double sum of {@code Math.pow(|w − ŵ|, 2.4)} over the group in index order; a candidate wins only with a
 * strictly smaller error, so ties keep the larger factor (f = 1 first: a group the search cannot improve keeps RTN's
 * scale). Consecutive factors whose scales round to the same fp16 value give the same codes and are measured once.
 *
 * <p>This is all of {@code --clip-search} for RTN. For GPTQ it is one candidate rule among several (the gptq
 * module's ScaleRule and GptqLoop.clipSearch): the weight-space error ignores GPTQ's error feedback (a clipped
 * outlier's error is pushed onto the row's later columns), which on the fixture made the search raise GPTQ's
 * per-row perplexity, so GPTQ judges each output row's scale rule by its own loop loss instead.
 */
public final class ClipSearch {
    /** The exponent of the error: 2.4, the GPTQ reference quantizer's {@code norm}. */
    public static final double NORM = 2.4;
    /** Grid steps between the full range and the smallest factor. */
    public static final int STEPS = 100;
    /** How far the range may shrink: the smallest factor is 1 − SHRINK = 0.8. */
    public static final double SHRINK = 0.2;

    private ClipSearch() {}

    /** Factor i of the grid, as the float the absmax is multiplied by. */
    public static float factor(int i) {
        return (float) (1.0 - SHRINK * i / STEPS);
    }

    /**
     * The best scale for the {@code count} weights {@code w[off], w[off + stride], …}, whose largest |w| is {@code
     * absmax} (finite, as {@link Rtn#scale} requires).
     */
    public static float scale(float[] w, int off, int stride, int count, float absmax) {
        return scale(w, off, stride, count, absmax, Bits.FOUR);
    }

    /**
     * {@link #scale(float[], int, int, int, float)} at {@code bits}: each candidate is {@link Rtn#scale(float,
     * Bits)} of the shrunk absmax and its codes span that width's range ([0, 255] around 128 at 8 bits).
     */
    public static float scale(float[] w, int off, int stride, int count, float absmax, Bits bits) {
        float best = Rtn.scale(absmax, bits);
        if (absmax == 0f) {
            return best; // every factor gives the all-zero group's [−1, 1] scale
        }
        double bestErr = error(w, off, stride, count, best, bits);
        float last = best;
        for (int i = 1; i <= STEPS; i++) {
            float s = Rtn.scale(absmax * factor(i), bits);
            if (s == last) {
                continue;
            }
            last = s;
            double err = error(w, off, stride, count, s, bits);
            if (err < bestErr) {
                bestErr = err;
                best = s;
            }
        }
        return best;
    }

    /** Σ |w − ŵ|^2.4 in index order, ŵ the RTN dequantization of w with {@code scale}. */
    public static double error(float[] w, int off, int stride, int count, float scale) {
        return error(w, off, stride, count, scale, Bits.FOUR);
    }

    /** {@link #error(float[], int, int, int, float)} with the codes and dequantization of {@code bits}. */
    public static double error(float[] w, int off, int stride, int count, float scale, Bits bits) {
        double sum = 0;
        for (int j = 0, at = off; j < count; j++, at += stride) {
            float d = w[at] - Rtn.dequant(Rtn.code(w[at], scale, bits), scale, bits);
            sum += Math.pow(Math.abs(d), NORM);
        }
        return sum;
    }
}
