package dev.m2q.eagle.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.m2q.core.grad.Products;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link ChainAttention} takes each row's dot products with its prefix in one {@link Kernels#dots} call. That must
 * not change a bit of the output, the log-sum-exp or any gradient: the reference here is the loop it replaced, one
 * {@link Products#dot} and the updates per (query, key) pair, over fp32 tensors on both kernel sets.
 */
class ChainAttentionBitsTest {
    private static Tensor.F32 random(SplittableRandom rnd, int rows, int cols) {
        float[] d = new float[rows * cols];
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) rnd.nextGaussian();
        }
        return new Tensor.F32(d, rows, cols);
    }

    @ParameterizedTest
    @CsvSource({"4, 2, 64, 3", "4, 1, 16, 1", "6, 2, 72, 4"})
    void sameBitsAsOneDotProductAtATime(int heads, int kvHeads, int d, int steps) {
        int[] seqStart = {0, 21, 21, 58}; // an empty sequence, and 37 rows: more than two blocks of 16 keys
        int rows = seqStart[seqStart.length - 1];
        for (Kernels kernels : new Kernels[] {VectorKernels.INSTANCE, ScalarKernels.INSTANCE}) {
            SplittableRandom rnd = new SplittableRandom(heads * 31L + d + steps);
            Tensor.F32 q = random(rnd, rows, heads * d);
            List<Tensor> keys = new ArrayList<>();
            List<Tensor> values = new ArrayList<>();
            for (int j = 0; j < steps; j++) {
                keys.add(random(rnd, rows, kvHeads * d));
                values.add(random(rnd, rows, kvHeads * d));
            }
            Tensor.F32 dOut = random(rnd, rows, heads * d);
            ChainAttention attention = new ChainAttention(heads, kvHeads, d, kernels);
            ChainAttention.Output out = attention.forward(q, keys, values, seqStart);
            Reference ref = new Reference(heads, kvHeads, d, kernels);
            ChainAttention.Output want = ref.forward(q, keys, values, seqStart);
            assertArrayEquals(f32(want.out()), f32(out.out()), kernels.name() + ": output");
            assertArrayEquals(f32(want.logSumExp()), f32(out.logSumExp()), kernels.name() + ": log-sum-exp");

            Tensor dq = q.zerosLike();
            Tensor dqRef = q.zerosLike();
            List<Tensor> dk = new ArrayList<>();
            List<Tensor> dv = new ArrayList<>();
            List<Tensor> dkRef = new ArrayList<>();
            List<Tensor> dvRef = new ArrayList<>();
            for (int j = 0; j < steps; j++) {
                dk.add(keys.get(j).zerosLike());
                dv.add(values.get(j).zerosLike());
                dkRef.add(keys.get(j).zerosLike());
                dvRef.add(values.get(j).zerosLike());
            }
            attention.backward(dOut, q, keys, values, out, seqStart, dq, dk, dv);
            ref.backward(dOut, q, keys, values, want, seqStart, dqRef, dkRef, dvRef);
            assertArrayEquals(f32(dqRef), f32(dq), kernels.name() + ": dq");
            for (int j = 0; j < steps; j++) {
                assertArrayEquals(f32(dkRef.get(j)), f32(dk.get(j)), kernels.name() + ": dk of step " + (j + 1));
                assertArrayEquals(f32(dvRef.get(j)), f32(dv.get(j)), kernels.name() + ": dv of step " + (j + 1));
            }
        }
    }

    private static float[] f32(Tensor t) {
        return ((Tensor.F32) t).data();
    }

    /** The loop {@link ChainAttention} ran before, statement for statement. */
    private record Reference(int heads, int kvHeads, int d, Kernels kernels) {
        ChainAttention.Output forward(Tensor q, List<Tensor> keys, List<Tensor> values, int[] seqStart) {
            int rows = q.rows();
            int qDim = heads * d;
            int kvDim = kvHeads * d;
            int group = heads / kvHeads;
            int steps = keys.size();
            double scale = 1 / Math.sqrt(d);
            Tensor out = q.zeros(rows, qDim);
            Tensor lse = q.zeros(rows, heads);
            for (int b = 0; b + 1 < seqStart.length; b++) {
                int f = seqStart[b];
                for (int row = f; row < seqStart[b + 1]; row++) {
                    for (int h = 0; h < heads; h++) {
                        int prefix = row - f + 1;
                        double[] scores = new double[prefix + steps - 1];
                        int qOff = row * qDim + h * d;
                        int kvOff = (h / group) * d;
                        double max = Double.NEGATIVE_INFINITY;
                        for (int s = 0; s < prefix; s++) {
                            scores[s] = scale * Products.dot(kernels, q, qOff, keys.get(0), (f + s) * kvDim + kvOff, d);
                            max = Math.max(max, scores[s]);
                        }
                        for (int j = 1; j < steps; j++) {
                            double sc = scale * Products.dot(kernels, q, qOff, keys.get(j), row * kvDim + kvOff, d);
                            scores[prefix + j - 1] = sc;
                            max = Math.max(max, sc);
                        }
                        double sum = 0;
                        for (int s = 0; s < prefix + steps - 1; s++) {
                            scores[s] = Math.exp(scores[s] - max);
                            sum += scores[s];
                        }
                        for (int s = 0; s < prefix; s++) {
                            Products.axpy(
                                    kernels, scores[s] / sum, values.get(0), (f + s) * kvDim + kvOff, out, qOff, d);
                        }
                        for (int j = 1; j < steps; j++) {
                            Products.axpy(
                                    kernels,
                                    scores[prefix + j - 1] / sum,
                                    values.get(j),
                                    row * kvDim + kvOff,
                                    out,
                                    qOff,
                                    d);
                        }
                        lse.set(row * heads + h, max + Math.log(sum));
                    }
                }
            }
            return new ChainAttention.Output(out, lse);
        }

        void backward(
                Tensor dOut,
                Tensor q,
                List<Tensor> keys,
                List<Tensor> values,
                ChainAttention.Output saved,
                int[] seqStart,
                Tensor dq,
                List<Tensor> dKeys,
                List<Tensor> dValues) {
            int qDim = heads * d;
            int kvDim = kvHeads * d;
            int group = heads / kvHeads;
            int steps = keys.size();
            double scale = 1 / Math.sqrt(d);
            for (int b = 0; b + 1 < seqStart.length; b++) {
                int f = seqStart[b];
                int end = seqStart[b + 1];
                for (int kv = 0; kv < kvHeads; kv++) {
                    int kvOff = kv * d;
                    for (int h = kv * group; h < (kv + 1) * group; h++) {
                        for (int row = f; row < end; row++) {
                            int qOff = row * qDim + h * d;
                            double lse = saved.logSumExp().get(row * heads + h);
                            double dSum = Products.dot(kernels, dOut, qOff, saved.out(), qOff, d);
                            for (int s = f; s <= row; s++) {
                                key(
                                        qOff,
                                        s * kvDim + kvOff,
                                        lse,
                                        dSum,
                                        scale,
                                        dOut,
                                        q,
                                        keys.get(0),
                                        values.get(0),
                                        dq,
                                        dKeys.get(0),
                                        dValues.get(0));
                            }
                            for (int j = 1; j < steps; j++) {
                                key(
                                        qOff,
                                        row * kvDim + kvOff,
                                        lse,
                                        dSum,
                                        scale,
                                        dOut,
                                        q,
                                        keys.get(j),
                                        values.get(j),
                                        dq,
                                        dKeys.get(j),
                                        dValues.get(j));
                            }
                        }
                    }
                }
            }
        }

        private void key(
                int qOff,
                int kOff,
                double lse,
                double dSum,
                double scale,
                Tensor dOut,
                Tensor q,
                Tensor k,
                Tensor v,
                Tensor dq,
                Tensor dk,
                Tensor dv) {
            double p = Math.exp(scale * Products.dot(kernels, q, qOff, k, kOff, d) - lse);
            double dp = Products.dot(kernels, dOut, qOff, v, kOff, d);
            double ds = p * (dp - dSum);
            Products.axpy(kernels, scale * ds, k, kOff, dq, qOff, d);
            Products.axpy(kernels, scale * ds, q, qOff, dk, kOff, d);
            Products.axpy(kernels, p, dOut, qOff, dv, kOff, d);
        }
    }
}
