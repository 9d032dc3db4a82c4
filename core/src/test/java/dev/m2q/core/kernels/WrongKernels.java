package dev.m2q.core.kernels;

/**
 * A deliberately wrong backend for the self-check's tests: {@link ScalarKernels} everywhere except one operation,
 * which {@link Fault} changes after (or instead of) the scalar result.
 */
final class WrongKernels extends ForwardingKernels {
    /** What goes wrong. */
    enum Fault {
        DOT_RELATIVE_1E_3,
        AXPY_WRITES_PAST_N,
        SYRK_ONE_ULP,
        GEMM_ONE_ULP,
        MATMUL_F32_RELATIVE_1E_3,
        MATMUL_W4_ONE_ULP,
        MATMUL_DROPS_NAN,
        MATMUL_THROWS,
        RMSNORM_16_ULPS,
        ROPE_1E_4,
        ATTENTION_WRONG_KV_HEAD,
        SWIGLU_NAN,
        ABSMAX_DROPS_NAN
    }

    private final Fault fault;
    private final WrongBackend.Fault backendFault;

    WrongKernels(Fault fault) {
        super(ScalarKernels.INSTANCE);
        this.fault = fault;
        this.backendFault = null;
    }

    /** The scalar kernels, right, whose {@link #backend()} has {@code backendFault}. */
    WrongKernels(WrongBackend.Fault backendFault) {
        super(ScalarKernels.INSTANCE);
        this.fault = null;
        this.backendFault = backendFault;
    }

    /** With a backend fault, a {@link WrongBackend}; else the Java backend over these (wrong) kernels. */
    @Override
    public Backend backend() {
        return backendFault == null ? new JavaBackend(this) : new WrongBackend(backendFault);
    }

    @Override
    public String name() {
        return "wrong-" + (fault == null ? backendFault : fault);
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        if (fault == Fault.MATMUL_THROWS) {
            throw new IllegalStateException("no kernel image for this device");
        }
        super.matmul(x, rows, w, bias, y);
        int last = rows * w.rows() - 1;
        if (fault == null) {
            return;
        }
        switch (fault) {
            case MATMUL_F32_RELATIVE_1E_3 -> {
                if (w instanceof Matrix.F32) {
                    y[last] *= 1.001f;
                }
            }
            case MATMUL_W4_ONE_ULP -> {
                if (w instanceof Matrix.W4) {
                    y[last] = Math.nextUp(y[last]);
                }
            }
            case MATMUL_DROPS_NAN -> {
                for (int i = 0; i <= last; i++) {
                    if (Float.isNaN(y[i])) {
                        y[i] = 0f;
                    }
                }
            }
            default -> {}
        }
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s = super.dot(a, aOff, b, bOff, n);
        return fault == Fault.DOT_RELATIVE_1E_3 ? s * 1.001f : s;
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        super.axpy(alpha, x, xOff, y, yOff, n);
        if (fault == Fault.AXPY_WRITES_PAST_N && yOff + n < y.length) {
            y[yOff + n] += alpha;
        }
    }

    @Override
    public void syrkUpper(float[] x, int rows, int k, float[] c) {
        super.syrkUpper(x, rows, k, c);
        if (fault == Fault.SYRK_ONE_ULP) {
            c[k - 1] = Math.nextUp(c[k - 1]);
        }
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
        super.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
        if (fault == Fault.GEMM_ONE_ULP) {
            c[cOff + ldc + 1] = Math.nextDown(c[cOff + ldc + 1]);
        }
    }

    @Override
    public void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        super.rmsNorm(x, rows, dim, weight, eps, out);
        if (fault == Fault.RMSNORM_16_ULPS) {
            out[dim + 1] += 16 * Math.ulp(out[dim + 1]);
        }
    }

    @Override
    public void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        super.rope(x, rows, heads, headDim, invFreq, positions);
        if (fault == Fault.ROPE_1E_4) {
            x[headDim + 1] += 1e-4f;
        }
    }

    @Override
    public void attention(
            float[] q,
            float[] k,
            float[] v,
            int nSeq,
            int seqLen,
            int startPos,
            int heads,
            int kvHeads,
            int headDim,
            float[] out) {
        if (fault == Fault.ATTENTION_WRONG_KV_HEAD && kvHeads > 1) {
            // Every query head reads kv head 0: as if the grouping were ignored.
            int total = startPos + seqLen;
            float[] k0 = k.clone();
            float[] v0 = v.clone();
            for (int r = 0; r < nSeq * total; r++) {
                for (int h = 1; h < kvHeads; h++) {
                    System.arraycopy(k, r * kvHeads * headDim, k0, (r * kvHeads + h) * headDim, headDim);
                    System.arraycopy(v, r * kvHeads * headDim, v0, (r * kvHeads + h) * headDim, headDim);
                }
            }
            super.attention(q, k0, v0, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
            return;
        }
        super.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
    }

    @Override
    public void swiglu(float[] gate, float[] up, int n) {
        super.swiglu(gate, up, n);
        if (fault == Fault.SWIGLU_NAN) {
            gate[n / 2] = Float.NaN;
        }
    }

    @Override
    public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        if (fault != Fault.ABSMAX_DROPS_NAN) {
            super.absMaxColumns(x, xOff, rows, cols, out, outOff);
            return;
        }
        for (int c = 0; c < cols; c++) {
            float m = out[outOff + c];
            for (int r = 0; r < rows; r++) {
                float a = Math.abs(x[xOff + r * cols + c]);
                if (a > m) { // fmaxf's rule: a NaN never wins
                    m = a;
                }
            }
            out[outOff + c] = m;
        }
    }
}
