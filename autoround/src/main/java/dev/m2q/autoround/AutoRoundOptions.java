package dev.m2q.autoround;

import dev.m2q.core.InputException;
import dev.m2q.core.quant.GroupSize;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * SignRound's settings (ALGORITHMS.md §3), resolved and checked.
 *
 * @param iters signed-gradient steps per decoder layer; 0 tunes nothing (RTN with AutoRound's scale rule)
 * @param lr the rounding offsets' learning rate at step 0, decaying linearly to 0 over the steps; 0 only when
 *     iters is 0
 * @param minmaxLr the clip factors' learning rate at step 0, same decay; 0 only when iters is 0
 * @param batchSize calibration sequences per step
 * @param groupSize G, input columns per scale, or -1 ({@link GroupSize#PER_ROW}) for one group per row
 * @param seed seeds each layer's batch sampler ({@link AutoRoundMethod} says how)
 */
public record AutoRoundOptions(int iters, double lr, double minmaxLr, int batchSize, int groupSize, long seed) {
    public AutoRoundOptions {
        if (iters < 0) {
            throw new InputException(
                    "--iters " + iters + " must be ≥ 0 (0 quantizes with AutoRound's scale rule and tunes nothing)");
        }
        if (batchSize < 1) {
            throw new InputException("--batch-size " + batchSize + " must be ≥ 1 (default 8)");
        }
        if (groupSize < 1 && groupSize != GroupSize.PER_ROW) {
            throw new InputException(
                    "--group-size " + groupSize + " must be positive, or -1 for one group per row (default 128)");
        }
        requireRate("--lr", lr, iters);
        requireRate("--minmax-lr", minmaxLr, iters);
    }

    private static void requireRate(String option, double rate, int iters) {
        boolean ok = Double.isFinite(rate) && (iters == 0 ? rate >= 0 : rate > 0);
        if (!ok) {
            throw new InputException(option + " " + rate + " must be a finite number > 0");
        }
    }

    /**
     * The options of {@code recipe} with any explicitly given value in its place (null: not given). Precedence per
     * option: the explicit value, then the recipe's, then the default rule — lr = 1/iters (0 when iters is 0, where
     * nothing is tuned), minmax lr = lr.
     */
    public static AutoRoundOptions resolve(
            Recipe recipe, Integer iters, Double lr, Double minmaxLr, Integer batchSize, int groupSize, long seed) {
        if (lr != null) {
            requireRate("--lr", lr, 1);
        }
        if (minmaxLr != null) {
            requireRate("--minmax-lr", minmaxLr, 1);
        }
        int it = iters != null ? iters : recipe.iters();
        double rate;
        if (lr != null) {
            rate = lr;
        } else if (recipe.lr().isPresent()) {
            rate = recipe.lr().getAsDouble();
        } else {
            rate = it > 0 ? 1.0 / it : 0.0;
        }
        return new AutoRoundOptions(
                it,
                rate,
                minmaxLr != null ? minmaxLr : rate,
                batchSize != null ? batchSize : recipe.batchSize(),
                groupSize,
                seed);
    }

    /** The keys AutoRound writes into {@code quantization_config} for these options (FORMATS.md §3). */
    public Map<String, Object> configKeys(int nsamples, int seqlen) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("iters", iters);
        m.put("nsamples", nsamples);
        m.put("seqlen", seqlen);
        m.put("batch_size", batchSize);
        m.put("lr", lr);
        m.put("minmax_lr", minmaxLr);
        return m;
    }
}
