package dev.m2q.core.kernels;

/** Plain loops: the reference every other {@link Kernels} implementation is checked against. */
public final class ScalarKernels extends JavaKernels {
    public static final ScalarKernels INSTANCE = new ScalarKernels();

    private ScalarKernels() {}

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        if (w instanceof Matrix.W4 q) {
            matmulW4(x, rows, q, bias, y);
            return;
        }
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

    /** The W4 sequence of {@link Kernels#matmul}, written out as plain loops. */
    private static void matmulW4(float[] x, int rows, Matrix.W4 w, float[] bias, float[] y) {
        W4Groups groups = w.groups();
        float[] sx = groups.groupSums(x, rows, w.cols());
        Parallel.forRange(
                w.rows(), (long) rows * w.cols(), (from, to) -> w4Columns(x, rows, w, groups, sx, bias, y, from, to));
    }

    /**
     * y[t, n] for every token t and n in [n0, n1), by the W4 sequence of {@link Kernels#matmul}; sx from
     * {@link W4Groups#groupSums}. Also the vector path's ragged tail, so the tail is the twin's by construction.
     */
    static void w4Columns(
            float[] x, int rows, Matrix.W4 w, W4Groups groups, float[] sx, float[] bias, float[] y, int n0, int n1) {
        int n = w.rows();
        int k = w.cols();
        int[] members = groups.members();
        int[] start = groups.start();
        int groupCount = groups.groups();
        float[] scales = w.scales();
        int[] codes = new int[k];
        for (int j = n0; j < n1; j++) {
            for (int c = 0; c < k; c++) {
                codes[c] = w.code(j, c);
            }
            for (int t = 0; t < rows; t++) {
                float out = bias == null ? 0f : bias[j];
                for (int g = 0; g < groupCount; g++) {
                    float acc = 0f;
                    for (int i = start[g]; i < start[g + 1]; i++) {
                        int c = members[i];
                        acc = Math.fma((float) codes[c], x[t * k + c], acc);
                    }
                    out = Math.fma(scales[g * n + j], acc - Matrix.W4.ZERO * sx[t * groupCount + g], out);
                }
                y[t * n + j] = out;
            }
        }
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
