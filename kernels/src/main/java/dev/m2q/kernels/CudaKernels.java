package dev.m2q.kernels;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import java.util.Objects;

/**
 * PLACEHOLDER, replaced by the cuda-kernels branch: holds the context so that the provider compiles, and runs every
 * operation on {@code cpu}. Its name says so, so that no log or manifest calls this CUDA.
 */
public final class CudaKernels implements Kernels {
    private final CudaContext ctx;
    private final Kernels cpu;

    public CudaKernels(CudaContext ctx, Kernels cpu) {
        this.ctx = Objects.requireNonNull(ctx);
        this.cpu = Objects.requireNonNull(cpu);
    }

    @Override
    public String name() {
        return "cuda-placeholder(" + cpu.name() + " on the CPU)";
    }

    @Override
    public void matmul(float[] x, int rows, Matrix w, float[] bias, float[] y) {
        cpu.matmul(x, rows, w, bias, y);
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return cpu.dot(a, aOff, b, bOff, n);
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        cpu.axpy(alpha, x, xOff, y, yOff, n);
    }

    @Override
    public void syrkUpper(float[] x, int rows, int k, float[] c) {
        cpu.syrkUpper(x, rows, k, c);
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
        cpu.gemmAcc(m, n, depth, a, aOff, aRow, aCol, b, bOff, ldb, c, cOff, ldc);
    }

    @Override
    public void rmsNorm(float[] x, int rows, int dim, float[] weight, float eps, float[] out) {
        cpu.rmsNorm(x, rows, dim, weight, eps, out);
    }

    @Override
    public void rope(float[] x, int rows, int heads, int headDim, float[] invFreq, int[] positions) {
        cpu.rope(x, rows, heads, headDim, invFreq, positions);
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
        cpu.attention(q, k, v, nSeq, seqLen, startPos, heads, kvHeads, headDim, out);
    }

    @Override
    public void swiglu(float[] gate, float[] up, int n) {
        cpu.swiglu(gate, up, n);
    }

    @Override
    public void absMaxColumns(float[] x, int xOff, int rows, int cols, float[] out, int outOff) {
        cpu.absMaxColumns(x, xOff, rows, cols, out, outOff);
    }

    @Override
    public boolean choleskyInverse(float[] a, float[] diag, float shift, int k, boolean fp64) {
        return cpu.choleskyInverse(a, diag, shift, k, fp64);
    }

    @Override
    public void gptqColumns(
            float[] wt,
            int k,
            int n,
            float[] u,
            int groupSize,
            int blockSize,
            int[] perm,
            boolean staticGroups,
            float[] scales,
            int[] codes,
            int[] gIdx) {
        cpu.gptqColumns(wt, k, n, u, groupSize, blockSize, perm, staticGroups, scales, codes, gIdx);
    }
}
