package dev.m2q.gptq;

import java.util.SplittableRandom;

/** Seeded test data: heavy-tailed weights and Hessians from correlated activations with outlier channels. */
final class Fixtures {
    private Fixtures() {}

    /** W [n, k]: Gaussian times a log-normal factor (heavy tails, like real LLM weights), scale ~0.02. */
    static float[] heavyTailedWeights(SplittableRandom rnd, int n, int k) {
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (0.02 * rnd.nextGaussian() * Math.exp(0.75 * rnd.nextGaussian()));
        }
        return w;
    }

    /**
     * X [rows, k]: each row mixes a few shared latent factors (so input channels are correlated) plus noise, and
     * a handful of channels carry 10–30× the variance (the activation outliers GPTQ must respect).
     */
    static float[] correlatedActivations(SplittableRandom rnd, int rows, int k) {
        int factors = 4;
        double[][] mix = new double[factors][k];
        for (double[] m : mix) {
            for (int c = 0; c < k; c++) {
                m[c] = rnd.nextGaussian();
            }
        }
        double[] channelScale = new double[k];
        for (int c = 0; c < k; c++) {
            channelScale[c] = rnd.nextInt(16) == 0 ? 10 + 20 * rnd.nextDouble() : 1;
        }
        float[] x = new float[rows * k];
        for (int t = 0; t < rows; t++) {
            double[] z = new double[factors];
            for (int f = 0; f < factors; f++) {
                z[f] = rnd.nextGaussian();
            }
            for (int c = 0; c < k; c++) {
                double v = 0.5 * rnd.nextGaussian();
                for (int f = 0; f < factors; f++) {
                    v += z[f] * mix[f][c];
                }
                x[t * k + c] = (float) (v * channelScale[c]);
            }
        }
        return x;
    }

    /** H = (2/T)·XᵀX in double, rounded to fp32 at the end: the reference for the accumulator. */
    static double[] naiveHessian(float[] x, int rows, int k) {
        double[] h = new double[k * k];
        for (int t = 0; t < rows; t++) {
            for (int i = 0; i < k; i++) {
                double xi = x[t * k + i];
                for (int j = 0; j < k; j++) {
                    h[i * k + j] += xi * x[t * k + j];
                }
            }
        }
        for (int i = 0; i < h.length; i++) {
            h[i] *= 2.0 / rows;
        }
        return h;
    }

    static float[] hessian(SplittableRandom rnd, int rows, int k) {
        HessianAccumulator acc = new HessianAccumulator(k);
        acc.add(correlatedActivations(rnd, rows, k), rows);
        return acc.hessian();
    }

    static float[] identity(int k) {
        float[] h = new float[k * k];
        for (int i = 0; i < k; i++) {
            h[i * k + i] = 1f;
        }
        return h;
    }
}
