package dev.m2q.core.kernels;

/** Plain loops: the reference every other {@link Kernels} implementation is checked against. */
public final class ScalarKernels implements Kernels {
    public static final ScalarKernels INSTANCE = new ScalarKernels();

    private ScalarKernels() {}

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        int n = w.rows();
        int k = w.cols();
        Parallel.forRange(n, (long) rows * k, (from, to) -> {
            float[] wr = new float[k];
            for (int j = from; j < to; j++) {
                w.row(j, wr);
                float b = bias == null ? 0f : bias[j];
                for (int t = 0; t < rows; t++) {
                    y[t * n + j] = dot(x, t * k, wr, 0, k) + b;
                }
            }
        });
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s = 0f;
        for (int i = 0; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    @Override
    public void syrkUpper(float[] x, int rows, int k, float[] c) {
        Parallel.forRange(k, (long) rows * k / 2, (from, to) -> {
            for (int i = from; i < to; i++) {
                for (int j = i; j < k; j++) {
                    float s = 0f;
                    for (int t = 0; t < rows; t++) {
                        s = Math.fma(x[t * k + i], x[t * k + j], s);
                    }
                    c[i * k + j] += s;
                }
            }
        });
    }

    @Override
    public void gemmAcc(
            int m,
            int n,
            int depth,
            float[] a,
            int aOff,
            int aRow,
            int aCol,
            float[] b,
            int bOff,
            int ldb,
            float[] c,
            int cOff,
            int ldc) {
        Parallel.forRange(m, (long) n * depth, (from, to) -> {
            for (int i = from; i < to; i++) {
                for (int j = 0; j < n; j++) {
                    float s = c[cOff + i * ldc + j];
                    for (int p = 0; p < depth; p++) {
                        s = Math.fma(a[aOff + i * aRow + p * aCol], b[bOff + p * ldb + j], s);
                    }
                    c[cOff + i * ldc + j] = s;
                }
            }
        });
    }
}
