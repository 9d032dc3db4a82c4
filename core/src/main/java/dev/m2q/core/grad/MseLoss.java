package dev.m2q.core.grad;

/**
 * Mean squared error L = Σ (p − t)² / n over all n elements of prediction p and target t (same shape), the block
 * loss of SignRound; ∂L/∂p = 2(p − t)/n.
 */
public final class MseLoss {
    private MseLoss() {}

    /** The mean of (p − t)², summed in double. */
    public static double value(Tensor pred, Tensor target) {
        target.requireShape(pred.rows(), pred.cols(), "MSE target");
        double s = 0;
        for (int i = 0; i < pred.size(); i++) {
            double e = pred.get(i) - target.get(i);
            s += e * e;
        }
        return s / pred.size();
    }

    /** ∂L/∂p for the mean over this batch alone: a new tensor 2(p − t)/pred.size(). */
    public static Tensor gradient(Tensor pred, Tensor target) {
        return gradient(pred, target, pred.size());
    }

    /**
     * ∂L/∂p when the mean runs over {@code count} elements in all, of which this prediction holds some: a batch
     * split into micro-batches passes the whole batch's element count, so the summed gradients are those of one
     * mean over the batch.
     */
    public static Tensor gradient(Tensor pred, Tensor target, long count) {
        target.requireShape(pred.rows(), pred.cols(), "MSE target");
        if (count < pred.size()) {
            throw new IllegalArgumentException(
                    "MSE over " + count + " elements cannot include this batch's " + pred.size());
        }
        Tensor g = pred.zerosLike();
        for (int i = 0; i < pred.size(); i++) {
            g.set(i, 2 * (pred.get(i) - target.get(i)) / count);
        }
        return g;
    }
}
