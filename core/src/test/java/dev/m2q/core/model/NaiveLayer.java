package dev.m2q.core.model;

/**
 * A deliberately plain float64 Qwen2 decoder layer for tests, written from the definitions: RMSNorm, q/k/v with
 * bias, rotate-half RoPE with θ_i = p·theta^(−2i/d), causal GQA softmax attention, o, SwiGLU MLP, residuals.
 */
final class NaiveLayer {
    private NaiveLayer() {}

    static double[] forward(ModelConfig c, DecoderLayer.Weights w, float[] xf, int T) {
        int H = c.hiddenSize();
        int nh = c.numHeads();
        int nkv = c.numKvHeads();
        int d = c.headDim();
        double[][] x = new double[T][H];
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < H; i++) {
                x[t][i] = xf[t * H + i];
            }
        }
        double[][] h = norm(x, w.inputNorm(), c.rmsNormEps());
        double[][] q = lin(h, w.q(), w.qBias());
        double[][] k = lin(h, w.k(), w.kBias());
        double[][] v = lin(h, w.v(), w.vBias());
        for (int t = 0; t < T; t++) {
            rope(q[t], nh, d, t, c.ropeTheta());
            rope(k[t], nkv, d, t, c.ropeTheta());
        }
        double[][] a = new double[T][nh * d];
        for (int t = 0; t < T; t++) {
            for (int hh = 0; hh < nh; hh++) {
                int g = hh / (nh / nkv);
                double[] s = new double[t + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= t; j++) {
                    double dot = 0;
                    for (int i = 0; i < d; i++) {
                        dot += q[t][hh * d + i] * k[j][g * d + i];
                    }
                    s[j] = dot / Math.sqrt(d);
                    max = Math.max(max, s[j]);
                }
                double z = 0;
                for (int j = 0; j <= t; j++) {
                    s[j] = Math.exp(s[j] - max);
                    z += s[j];
                }
                for (int j = 0; j <= t; j++) {
                    for (int i = 0; i < d; i++) {
                        a[t][hh * d + i] += s[j] / z * v[j][g * d + i];
                    }
                }
            }
        }
        double[][] o = lin(a, w.o(), null);
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < H; i++) {
                x[t][i] += o[t][i];
            }
        }
        double[][] h2 = norm(x, w.postNorm(), c.rmsNormEps());
        double[][] gate = lin(h2, w.gate(), null);
        double[][] up = lin(h2, w.up(), null);
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < gate[t].length; i++) {
                double gi = gate[t][i];
                gate[t][i] = gi / (1 + Math.exp(-gi)) * up[t][i];
            }
        }
        double[][] dn = lin(gate, w.down(), null);
        double[] out = new double[T * H];
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < H; i++) {
                out[t * H + i] = x[t][i] + dn[t][i];
            }
        }
        return out;
    }

    static double[][] norm(double[][] x, float[] w, double eps) {
        double[][] o = new double[x.length][x[0].length];
        for (int t = 0; t < x.length; t++) {
            double ss = 0;
            for (double v : x[t]) {
                ss += v * v;
            }
            double inv = 1 / Math.sqrt(ss / x[t].length + eps);
            for (int i = 0; i < x[t].length; i++) {
                o[t][i] = x[t][i] * inv * w[i];
            }
        }
        return o;
    }

    static double[][] lin(double[][] x, dev.m2q.core.kernels.Matrix m, float[] b) {
        double[][] y = new double[x.length][m.rows()];
        for (int t = 0; t < x.length; t++) {
            for (int j = 0; j < m.rows(); j++) {
                double s = b == null ? 0 : b[j];
                for (int i = 0; i < m.cols(); i++) {
                    s += x[t][i] * m.get(j, i);
                }
                y[t][j] = s;
            }
        }
        return y;
    }

    static void rope(double[] v, int heads, int d, int pos, double theta) {
        int half = d / 2;
        for (int hh = 0; hh < heads; hh++) {
            int o = hh * d;
            for (int i = 0; i < half; i++) {
                double ang = pos * Math.pow(theta, -2.0 * i / d);
                double a = v[o + i];
                double b = v[o + i + half];
                v[o + i] = a * Math.cos(ang) - b * Math.sin(ang);
                v[o + i + half] = b * Math.cos(ang) + a * Math.sin(ang);
            }
        }
    }
}
