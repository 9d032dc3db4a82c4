package dev.m2q.eagle.train;

import dev.m2q.core.grad.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW (Loshchilov &amp; Hutter) on fp32 master weights with a global gradient-norm clip, ALGORITHMS §5's
 * optimizer. Per element, in double and rounded once when stored: m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g²,
 * p ← p − lr·(m/(1 − β1^t) / (√(v/(1 − β2^t)) + ε) + λ·p), with t the 1-based update count.
 */
public final class AdamW {
    public static final double BETA1 = 0.9;
    public static final double BETA2 = 0.95;
    public static final double EPS = 1e-8;

    private final double beta1;
    private final double beta2;
    private final double eps;
    private final double weightDecay;
    /** First and second moments by parameter name, each the parameter's shape, fp32. */
    private final Map<String, float[]> m = new LinkedHashMap<>();

    private final Map<String, float[]> v = new LinkedHashMap<>();
    private int t;

    public AdamW(double beta1, double beta2, double eps, double weightDecay) {
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
    }

    /** ALGORITHMS §5's settings: β (0.9, 0.95), ε 1e-8, weight decay 0. */
    public static AdamW eagle3() {
        return new AdamW(BETA1, BETA2, EPS, 0);
    }

    /** Updates done so far. */
    public int updates() {
        return t;
    }

    public Map<String, float[]> firstMoments() {
        return m;
    }

    public Map<String, float[]> secondMoments() {
        return v;
    }

    /** Restores the state a checkpoint saved (moments are copied). */
    public void restore(int updates, Map<String, float[]> first, Map<String, float[]> second) {
        t = updates;
        m.clear();
        v.clear();
        first.forEach((k, a) -> m.put(k, a.clone()));
        second.forEach((k, a) -> v.put(k, a.clone()));
    }

    /** One update of every parameter in {@code params} from {@code grads} (same names and shapes) at {@code lr}. */
    public void step(Map<String, Tensor> params, Map<String, Tensor> grads, double lr) {
        t++;
        double c1 = 1 - Math.pow(beta1, t);
        double c2 = 1 - Math.pow(beta2, t);
        for (var e : params.entrySet()) {
            Tensor p = e.getValue();
            Tensor g = grads.get(e.getKey());
            float[] mi = m.computeIfAbsent(e.getKey(), k -> new float[p.size()]);
            float[] vi = v.computeIfAbsent(e.getKey(), k -> new float[p.size()]);
            for (int i = 0; i < p.size(); i++) {
                double gi = g.get(i);
                double mNew = beta1 * mi[i] + (1 - beta1) * gi;
                double vNew = beta2 * vi[i] + (1 - beta2) * gi * gi;
                mi[i] = (float) mNew;
                vi[i] = (float) vNew;
                double pi = p.get(i);
                p.set(i, pi - lr * ((mi[i] / c1) / (Math.sqrt(vi[i] / c2) + eps) + weightDecay * pi));
            }
        }
    }

    /**
     * Scales every gradient by min(1, maxNorm / ‖g‖) with ‖g‖ the L2 norm over all of them together (accumulated in
     * double); returns ‖g‖ before clipping.
     */
    public static double clipGlobalNorm(Map<String, Tensor> grads, double maxNorm) {
        double sq = 0;
        for (Tensor g : grads.values()) {
            for (int i = 0; i < g.size(); i++) {
                double x = g.get(i);
                sq += x * x;
            }
        }
        double norm = Math.sqrt(sq);
        if (norm > maxNorm) {
            double scale = maxNorm / norm;
            for (Tensor g : grads.values()) {
                for (int i = 0; i < g.size(); i++) {
                    g.set(i, g.get(i) * scale);
                }
            }
        }
        return norm;
    }
}
