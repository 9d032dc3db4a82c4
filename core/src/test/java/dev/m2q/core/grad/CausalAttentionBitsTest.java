package dev.m2q.core.grad;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link CausalAttention} takes each row's dot products with its visible keys in one {@link Kernels#dots} call and
 * sums its output and dq with {@link Kernels#axpys}. That must not change a bit of the output, the log-sum-exp or any
 * gradient: the reference here is the loop it replaced, one {@link Products#dot} and {@link Products#axpy} per (query,
 * key) pair, over fp32 tensors on both kernel sets.
 */
class CausalAttentionBitsTest {
    private static Tensor.F32 random(SplittableRandom rnd, int rows, int cols) {
        float[] d = new float[rows * cols];
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) rnd.nextGaussian();
        }
        return new Tensor.F32(d, rows, cols);
    }

    @ParameterizedTest
    @CsvSource({"4, 2, 64, 37, 2", "4, 1, 16, 70, 1", "6, 2, 72, 9, 3"})
    void sameBitsAsOneProductAtATime(int heads, int kvHeads, int d, int seqLen, int nSeq) {
        int rows = seqLen * nSeq;
        for (Kernels kernels : new Kernels[] {VectorKernels.INSTANCE, ScalarKernels.INSTANCE}) {
            SplittableRandom rnd = new SplittableRandom(heads * 31L + d + seqLen);
            Tensor.F32 q = random(rnd, rows, heads * d);
            Tensor.F32 k = random(rnd, rows, kvHeads * d);
            Tensor.F32 v = random(rnd, rows, kvHeads * d);
            Tensor.F32 dOut = random(rnd, rows, heads * d);
            CausalAttention attention = new CausalAttention(heads, kvHeads, d, kernels);
            CausalAttention.Output out = attention.forward(q, k, v, seqLen);
            CausalAttention.Output want = forward(kernels, heads, kvHeads, d, q, k, v, seqLen);
            assertArrayEquals(f32(want.out()), f32(out.out()), kernels.name() + ": output");
            assertArrayEquals(f32(want.logSumExp()), f32(out.logSumExp()), kernels.name() + ": log-sum-exp");

            Tensor dq = q.zerosLike();
            Tensor dk = k.zerosLike();
            Tensor dv = v.zerosLike();
            Tensor dqRef = q.zerosLike();
            Tensor dkRef = k.zerosLike();
            Tensor dvRef = v.zerosLike();
            attention.backward(dOut, q, k, v, out, seqLen, dq, dk, dv);
            backward(kernels, heads, kvHeads, d, dOut, q, k, v, want, seqLen, dqRef, dkRef, dvRef);
            assertArrayEquals(f32(dqRef), f32(dq), kernels.name() + ": dq");
            assertArrayEquals(f32(dkRef), f32(dk), kernels.name() + ": dk");
            assertArrayEquals(f32(dvRef), f32(dv), kernels.name() + ": dv");
        }
    }

    private static float[] f32(Tensor t) {
        return ((Tensor.F32) t).data();
    }

    /** The forward loop {@link CausalAttention} ran before, statement for statement. */
    private static CausalAttention.Output forward(
            Kernels kernels, int heads, int kvHeads, int d, Tensor q, Tensor k, Tensor v, int seqLen) {
        int rows = q.rows();
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(d);
        Tensor out = q.zeros(rows, qDim);
        Tensor lse = q.zeros(rows, heads);
        double[] scores = new double[seqLen];
        for (int row = 0; row < rows; row++) {
            for (int h = 0; h < heads; h++) {
                int first = row - row % seqLen;
                int qOff = row * qDim + h * d;
                int kvOff = (h / group) * d;
                double max = Double.NEGATIVE_INFINITY;
                for (int s = first; s <= row; s++) {
                    double sc = scale * Products.dot(kernels, q, qOff, k, s * kvDim + kvOff, d);
                    scores[s - first] = sc;
                    max = Math.max(max, sc);
                }
                double sum = 0;
                for (int s = first; s <= row; s++) {
                    scores[s - first] = Math.exp(scores[s - first] - max);
                    sum += scores[s - first];
                }
                for (int s = first; s <= row; s++) {
                    Products.axpy(kernels, scores[s - first] / sum, v, s * kvDim + kvOff, out, qOff, d);
                }
                lse.set(row * heads + h, max + Math.log(sum));
            }
        }
        return new CausalAttention.Output(out, lse);
    }

    /** The backward loop {@link CausalAttention} ran before, statement for statement. */
    private static void backward(
            Kernels kernels,
            int heads,
            int kvHeads,
            int d,
            Tensor dOut,
            Tensor q,
            Tensor k,
            Tensor v,
            CausalAttention.Output saved,
            int seqLen,
            Tensor dq,
            Tensor dk,
            Tensor dv) {
        int rows = q.rows();
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(d);
        for (int item = 0; item < rows / seqLen * kvHeads; item++) {
            int first = (item / kvHeads) * seqLen;
            int kvOff = (item % kvHeads) * d;
            for (int h = (item % kvHeads) * group; h < (item % kvHeads + 1) * group; h++) {
                for (int row = first; row < first + seqLen; row++) {
                    int qOff = row * qDim + h * d;
                    double lse = saved.logSumExp().get(row * heads + h);
                    double dSum = Products.dot(kernels, dOut, qOff, saved.out(), qOff, d);
                    for (int s = first; s <= row; s++) {
                        int kOff = s * kvDim + kvOff;
                        double p = Math.exp(scale * Products.dot(kernels, q, qOff, k, kOff, d) - lse);
                        double dp = Products.dot(kernels, dOut, qOff, v, kOff, d);
                        double ds = p * (dp - dSum);
                        Products.axpy(kernels, scale * ds, k, kOff, dq, qOff, d);
                        Products.axpy(kernels, scale * ds, q, qOff, dk, kOff, d);
                        Products.axpy(kernels, p, dOut, qOff, dv, kOff, d);
                    }
                }
            }
        }
    }
}
