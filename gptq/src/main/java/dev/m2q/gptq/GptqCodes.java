package dev.m2q.gptq;

/**
 * What GPTQ's column loop produces, the parts of a {@link dev.m2q.core.quant.QuantizedLinear} and the loop's own
 * loss.
 *
 * @param codes [K, N] row-major, row c for original input channel c, each in [0, 15]
 * @param scales [K/G, N] fp32 (for static groups, the problem's {@link GptqProblem#staticScales} array itself)
 * @param gIdx [K]: the group of each original input channel
 * @param errSquares Σ over positions and output columns of Err1² (the error scaled by 1/U[i, i]), which equals
 *     tr((W − Q)·H_damped·(W − Q)ᵀ) for the damped H whose factor the loop ran on (W with its dead columns zeroed).
 *     Every implementation sums it the same way ({@link #total}), so the value is the same bits.
 */
public record GptqCodes(int[] codes, float[] scales, int[] gIdx, double errSquares) {
    /**
     * The sum of per-column sums, each column's folded in position order as {@code fma((double) err, err, sum)}
     * from 0: added here over the columns in order.
     */
    public static double total(double[] perColumn) {
        double t = 0;
        for (double v : perColumn) {
            t += v;
        }
        return t;
    }
}
