package dev.m2q.eagle.train;

/**
 * What one pass of the training objective measured over a batch.
 *
 * @param loss the weighted total Σ_i 0.8^(i−1)·loss_i that the gradients are of
 * @param stepLoss loss_i per training-time-test step i = 1..S (index i − 1)
 * @param correct per step, the rows where the draft's top-1 (mapped to a target id) equals the target's argmax
 * @param counted per step, the rows whose predicted token exists and is an assistant token (top-1's denominator)
 */
public record StepStats(double loss, double[] stepLoss, long[] correct, long[] counted) {
    /** Top-1 agreement at step i (1-based), NaN when no row counted. */
    public double top1(int step) {
        return counted[step - 1] == 0 ? Double.NaN : (double) correct[step - 1] / counted[step - 1];
    }

    public int steps() {
        return stepLoss.length;
    }
}
