package dev.m2q.core.kernels;

/**
 * What the two Java kernels share: the operations written once in {@link JavaOps}, which leave their
 * vector-sized steps ({@link #dot}, {@link #axpy}) and the products to the subclass, so {@link ScalarKernels}
 * and {@link VectorKernels} differ only there.
 */
abstract sealed class JavaKernels implements Kernels permits ScalarKernels, VectorKernels {

    @Override
    public final void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        JavaOps.rmsNorm(x, rows, dim, weight, eps, out);
    }

    @Override
    public final void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        JavaOps.rope(x, rows, heads, headDim, invFreq, positions);
    }

    @Override
    public final void attention(
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
        JavaOps.attention(this, q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
    }

    @Override
    public final void swiglu(float[] gate, float[] up, int n) {
        JavaOps.swiglu(gate, up, n);
    }

    @Override
    public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        JavaOps.absMaxColumns(x, xOff, rows, cols, out, outOff);
    }
}
