package dev.m2q.eagle.train;

import dev.m2q.core.grad.AttentionBackward;
import dev.m2q.core.grad.Products;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;
import java.util.List;

/**
 * The training-time test's attention (ALGORITHMS §5): grouped-query softmax attention in which the query of step
 * i at row t sees step 1's keys and values at rows s ≤ t of its sequence and its own chain's, those of steps
 * 2..i at row t. That is exactly what speculative decoding's draft attends to when it extends the prefix 0..t by
 * i − 1 draft tokens, so the trained head meets the mask it runs under.
 *
 * <p>Rows are the batch's sequences back to back: sequence b owns rows seqStart[b] .. seqStart[b + 1] − 1, its
 * positions t = 0, 1, ... . q, out [rows, heads·d]; keys and values hold one [rows, kvHeads·d] tensor per step
 * 1..i (index j − 1); query head h reads kv head h / (heads / kvHeads); scale 1/√d.
 *
 * <p>As in {@link dev.m2q.core.grad.CausalAttention}, the probabilities are never stored: the forward keeps the
 * log-sum-exp L [rows, heads] and the backward recomputes P = exp(S − L). With dP = dout·v and D = dout·out,
 * dS = P·(dP − D); dq = Σ dS·k/√d, dk += dS·q/√d, dv += P·dout over every key the query saw.
 */
public final class ChainAttention {
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final Kernels kernels;

    /** The output [rows, heads·d] and the log-sum-exp [rows, heads] the backward needs. */
    public record Output(Tensor out, Tensor logSumExp) {}

    public ChainAttention(int heads, int kvHeads, int headDim, Kernels kernels) {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0 || headDim <= 0) {
            throw new IllegalArgumentException(
                    heads + " query heads cannot share " + kvHeads + " kv heads of dimension " + headDim);
        }
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kernels = kernels;
    }

    /** Step i = keys.size()'s attention output and log-sum-exp. */
    public Output forward(Tensor q, List<Tensor> keys, List<Tensor> values, int[] seqStart) {
        int rows = checkShapes(q, keys, values, seqStart);
        int d = headDim;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int group = heads / kvHeads;
        int steps = keys.size();
        double scale = 1 / Math.sqrt(d);
        int[] first = firstRows(seqStart);
        Tensor out = q.zeros(rows, qDim);
        Tensor lse = q.zeros(rows, heads);
        Tensor k1 = keys.get(0);
        Tensor v1 = values.get(0);
        Parallel.forRange(rows * heads, (long) (rows / Math.max(1, seqStart.length - 1) + steps) * d, (from, to) -> {
            double[] scores = new double[0];
            int[] offsets = new int[0];
            for (int item = from; item < to; item++) {
                int row = item / heads;
                int h = item % heads;
                int f = first[row];
                int prefix = row - f + 1;
                if (scores.length < prefix + steps - 1) {
                    scores = new double[prefix + steps - 1];
                    offsets = new int[prefix];
                }
                int qOff = row * qDim + h * d;
                int kvOff = (h / group) * d;
                for (int s = 0; s < prefix; s++) {
                    offsets[s] = (f + s) * kvDim + kvOff;
                }
                // the prefix's dot products in one call (each with dot's bits), then scaled as one at a time
                Products.dots(kernels, q, qOff, k1, offsets, prefix, d, scores);
                double max = Double.NEGATIVE_INFINITY;
                for (int s = 0; s < prefix; s++) {
                    scores[s] = scale * scores[s];
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
                    scores[s] = scores[s] / sum;
                }
                Products.axpys(kernels, scores, v1, offsets, prefix, out, qOff, d);
                for (int j = 1; j < steps; j++) {
                    Products.axpy(
                            kernels, scores[prefix + j - 1] / sum, values.get(j), row * kvDim + kvOff, out, qOff, d);
                }
                lse.set(row * heads + h, max + Math.log(sum));
            }
        });
        return new Output(out, lse);
    }

    /**
     * Adds dq [rows, heads·d] and, for every step j ≤ i, dKeys[j − 1], dValues[j − 1] [rows, kvHeads·d], given
     * dOut = ∂L/∂out and the forward's q, keys, values and output.
     */
    public void backward(
            Tensor dOut,
            Tensor q,
            List<Tensor> keys,
            List<Tensor> values,
            Output saved,
            int[] seqStart,
            Tensor dq,
            List<Tensor> dKeys,
            List<Tensor> dValues) {
        int rows = checkShapes(q, keys, values, seqStart);
        int d = headDim;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int group = heads / kvHeads;
        int steps = keys.size();
        double scale = 1 / Math.sqrt(d);
        dOut.requireShape(rows, qDim, "chain attention dOut");
        saved.out().requireShape(rows, qDim, "chain attention output");
        saved.logSumExp().requireShape(rows, heads, "chain attention log-sum-exp");
        dq.requireShape(rows, qDim, "dq");
        if (dKeys.size() < steps || dValues.size() < steps) {
            throw new IllegalArgumentException("chain attention backward of step " + steps + " needs " + steps
                    + " key and value gradients, got " + dKeys.size() + " and " + dValues.size());
        }
        for (int j = 0; j < steps; j++) {
            dKeys.get(j).requireShape(rows, kvDim, "dk of step " + (j + 1));
            dValues.get(j).requireShape(rows, kvDim, "dv of step " + (j + 1));
        }
        int nSeq = seqStart.length - 1;
        Tensor k1 = keys.get(0);
        Tensor v1 = values.get(0);
        Tensor dk1 = dKeys.get(0);
        Tensor dv1 = dValues.get(0);
        long work = (long) group * (rows / Math.max(1, nSeq)) * (rows / Math.max(1, nSeq) + steps) * d;
        // One task per (sequence, kv head): it alone writes that kv head's dk, dv rows and its query heads' dq.
        Parallel.forRange(nSeq * kvHeads, work, (from, to) -> {
            for (int item = from; item < to; item++) {
                int f = seqStart[item / kvHeads];
                int end = seqStart[item / kvHeads + 1];
                int kv = item % kvHeads;
                int kvOff = kv * d;
                // the sequence's key and value rows of this kv head: a row's prefix is offsets[0, row − f]
                int[] offsets = new int[end - f];
                for (int s = f; s < end; s++) {
                    offsets[s - f] = s * kvDim + kvOff;
                }
                int[] chainKey = new int[1];
                AttentionBackward rowBackward = new AttentionBackward();
                for (int h = kv * group; h < (kv + 1) * group; h++) {
                    for (int row = f; row < end; row++) {
                        int qOff = row * qDim + h * d;
                        double lse = saved.logSumExp().get(row * heads + h);
                        double dSum = Products.dot(kernels, dOut, qOff, saved.out(), qOff, d);
                        rowBackward.row(
                                kernels,
                                q,
                                dOut,
                                qOff,
                                k1,
                                v1,
                                offsets,
                                row - f + 1,
                                d,
                                scale,
                                lse,
                                dSum,
                                dq,
                                dk1,
                                dv1);
                        // steps 2..i: the row's own chain key of each step
                        chainKey[0] = row * kvDim + kvOff;
                        for (int j = 1; j < steps; j++) {
                            rowBackward.row(
                                    kernels,
                                    q,
                                    dOut,
                                    qOff,
                                    keys.get(j),
                                    values.get(j),
                                    chainKey,
                                    1,
                                    d,
                                    scale,
                                    lse,
                                    dSum,
                                    dq,
                                    dKeys.get(j),
                                    dValues.get(j));
                        }
                    }
                }
            }
        });
    }

    /** For each row, the first row of its sequence. */
    private static int[] firstRows(int[] seqStart) {
        int[] first = new int[seqStart[seqStart.length - 1]];
        for (int b = 0; b + 1 < seqStart.length; b++) {
            for (int r = seqStart[b]; r < seqStart[b + 1]; r++) {
                first[r] = seqStart[b];
            }
        }
        return first;
    }

    private int checkShapes(Tensor q, List<Tensor> keys, List<Tensor> values, int[] seqStart) {
        int rows = q.rows();
        if (seqStart.length < 1 || seqStart[0] != 0 || seqStart[seqStart.length - 1] != rows) {
            throw new IllegalArgumentException("sequence starts must run from 0 to the " + rows + " rows");
        }
        for (int b = 0; b + 1 < seqStart.length; b++) {
            if (seqStart[b + 1] < seqStart[b]) {
                throw new IllegalArgumentException("sequence starts must not decrease");
            }
        }
        if (keys.isEmpty() || keys.size() != values.size()) {
            throw new IllegalArgumentException("chain attention needs keys and values of steps 1..i, got " + keys.size()
                    + " and " + values.size());
        }
        q.requireShape(rows, heads * headDim, "q");
        for (int j = 0; j < keys.size(); j++) {
            keys.get(j).requireShape(rows, kvHeads * headDim, "k of step " + (j + 1));
            values.get(j).requireShape(rows, kvHeads * headDim, "v of step " + (j + 1));
        }
        return rows;
    }
}
