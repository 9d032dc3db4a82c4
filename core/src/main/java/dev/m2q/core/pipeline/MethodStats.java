package dev.m2q.core.pipeline;

import java.util.List;

/** What a method reports about one linear besides its loss and time: one record per method. */
public sealed interface MethodStats {
    /** The method's name, as the row's {@code method} key says it. */
    String method();

    /**
     * GPTQ's numbers.
     *
     * @param damp the damping that factorized H (the requested one unless a fallback raised it)
     * @param fallbacks automatic recoveries, one sentence each (empty when none)
     * @param sampledLoss the exact proxy loss with the undamped H on a sample of rows, when asked for
     *     ({@code --exact-loss-rows}); NaN (and not written) otherwise. The row's loss is the loop's own, with the
     *     damped H.
     */
    record GptqStats(double damp, List<String> fallbacks, double sampledLoss) implements MethodStats {
        public GptqStats {
            fallbacks = List.copyOf(fallbacks);
        }

        @Override
        public String method() {
            return "gptq";
        }
    }

    /**
     * AutoRound's numbers (the layer's, repeated on each of its linears' rows but {@code codesChanged}).
     *
     * @param lossIter0 the released layer's block MSE at iteration 0 (RTN with AutoRound's scale rule)
     * @param iters SignRound steps run
     * @param bestIter the step whose parameters were kept
     * @param batchLossIter0, batchLossBest SignRound's step losses on their own batches; NaN (and not written) when
     *     {@code iters} is 0
     * @param codesChanged the fraction of this linear's codes that differ from iteration 0's
     * @param tuneS seconds in the SignRound loop
     */
    record AutoRoundStats(
            double lossIter0,
            int iters,
            int bestIter,
            double batchLossIter0,
            double batchLossBest,
            double codesChanged,
            double tuneS)
            implements MethodStats {
        @Override
        public String method() {
            return "autoround";
        }
    }

    /** Round-to-nearest has nothing to add: its row's loss is the mean squared weight error ({@code weight_mse}). */
    record RtnStats() implements MethodStats {
        @Override
        public String method() {
            return "rtn";
        }
    }
}
