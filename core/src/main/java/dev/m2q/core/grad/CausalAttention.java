package dev.m2q.core.grad;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Parallel;

/**
 * Causal grouped-query softmax attention over nSeq independent sequences of seqLen rows: q, out
 * [nSeq·seqLen, heads·d], k, v [nSeq·seqLen, kvHeads·d]; query head h reads kv head h / (heads / kvHeads). Per
 * sequence, head and query row t: S_s = q_t·k_s/√d for s ≤ t, P = softmax(S), out_t = Σ_s P_s·v_s.
 *
 * <p>The probabilities [heads, seqLen, seqLen] per sequence are never stored (5 GB per layer for 8 × 2048 tokens
 * at 40 heads): the forward keeps the log-sum-exp L_t = log Σ_s exp S_s [rows, heads], and the backward
 * recomputes P_s = exp(S_s − L_t), as FlashAttention does. With dP_s = dout_t·v_s and D_t = Σ_s P_s·dP_s =
 * dout_t·out_t, the score gradient is dS_s = P_s·(dP_s − D_t), and dq_t = Σ_s dS_s·k_s/√d, dk_s += dS_s·q_t/√d,
 * dv_s += P_s·dout_t. The kv gradients sum over the query heads that share a kv head.
 */
public final class CausalAttention {
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final Kernels kernels;

    /** What the backward needs from the forward besides q, k, v: the output and L [rows, heads]. */
    public record Output(Tensor out, Tensor logSumExp) {}

    public CausalAttention(int heads, int kvHeads, int headDim, Kernels kernels) {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0 || headDim <= 0) {
            throw new IllegalArgumentException(
                    heads + " query heads cannot share " + kvHeads + " kv heads of dimension " + headDim);
        }
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kernels = kernels;
    }

    /** The attention output [rows, heads·d] (new, q's precision) and L. */
    public Output forward(Tensor q, Tensor k, Tensor v, int seqLen) {
        checkShapes(q, k, v, seqLen);
        int rows = q.rows();
        int d = headDim;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(d);
        Tensor out = q.zeros(rows, qDim);
        Tensor lse = q.zeros(rows, heads);
        Parallel.forRange(rows * heads, (long) seqLen * d, (from, to) -> {
            double[] scores = new double[seqLen];
            int[] offsets = new int[seqLen];
            for (int item = from; item < to; item++) {
                int row = item / heads;
                int h = item % heads;
                int first = row - row % seqLen;
                int visible = row - first + 1;
                int qOff = row * qDim + h * d;
                int kvOff = (h / group) * d;
                for (int s = 0; s < visible; s++) {
                    offsets[s] = (first + s) * kvDim + kvOff;
                }
                // the visible keys' dot products in one call and the output as one weighted sum (Kernels.dots and
                // Kernels.axpys), each with the bits of one dot or axpy at a time
                Products.dots(kernels, q, qOff, k, offsets, visible, d, scores);
                double max = Double.NEGATIVE_INFINITY;
                for (int s = 0; s < visible; s++) {
                    scores[s] = scale * scores[s];
                    max = Math.max(max, scores[s]);
                }
                double sum = 0;
                for (int s = 0; s < visible; s++) {
                    scores[s] = Math.exp(scores[s] - max);
                    sum += scores[s];
                }
                for (int s = 0; s < visible; s++) {
                    scores[s] = scores[s] / sum;
                }
                Products.axpys(kernels, scores, v, offsets, visible, out, qOff, d);
                lse.set(row * heads + h, max + Math.log(sum));
            }
        });
        return new Output(out, lse);
    }

    /**
     * Adds dq [rows, heads·d], dk and dv [rows, kvHeads·d] given dOut = ∂L/∂out and the forward's q, k, v and
     * output.
     */
    public void backward(
            Tensor dOut, Tensor q, Tensor k, Tensor v, Output saved, int seqLen, Tensor dq, Tensor dk, Tensor dv) {
        checkShapes(q, k, v, seqLen);
        int rows = q.rows();
        int d = headDim;
        int qDim = heads * d;
        int kvDim = kvHeads * d;
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(d);
        dOut.requireShape(rows, qDim, "attention dOut");
        saved.out().requireShape(rows, qDim, "attention output");
        saved.logSumExp().requireShape(rows, heads, "attention log-sum-exp");
        dq.requireShape(rows, qDim, "dq");
        dk.requireShape(rows, kvDim, "dk");
        dv.requireShape(rows, kvDim, "dv");
        int nSeq = rows / seqLen;
        // One task per (sequence, kv head): it alone writes that kv head's dk, dv rows and its query heads' dq.
        Parallel.forRange(nSeq * kvHeads, (long) group * seqLen * seqLen * d, (from, to) -> {
            int[] offsets = new int[seqLen];
            AttentionBackward rowBackward = new AttentionBackward();
            for (int item = from; item < to; item++) {
                int first = (item / kvHeads) * seqLen;
                int kvOff = (item % kvHeads) * d;
                for (int s = 0; s < seqLen; s++) {
                    offsets[s] = (first + s) * kvDim + kvOff;
                }
                for (int h = (item % kvHeads) * group; h < (item % kvHeads + 1) * group; h++) {
                    for (int row = first; row < first + seqLen; row++) {
                        int qOff = row * qDim + h * d;
                        double lse = saved.logSumExp().get(row * heads + h);
                        double dSum = Products.dot(kernels, dOut, qOff, saved.out(), qOff, d);
                        rowBackward.row(
                                kernels,
                                q,
                                dOut,
                                qOff,
                                k,
                                v,
                                offsets,
                                row - first + 1,
                                d,
                                scale,
                                lse,
                                dSum,
                                dq,
                                dk,
                                dv);
                    }
                }
            }
        });
    }

    private void checkShapes(Tensor q, Tensor k, Tensor v, int seqLen) {
        if (seqLen <= 0 || q.rows() % seqLen != 0) {
            throw new IllegalArgumentException(q.rows() + " attention rows are not whole sequences of " + seqLen);
        }
        q.requireShape(q.rows(), heads * headDim, "q");
        k.requireShape(q.rows(), kvHeads * headDim, "k");
        v.requireShape(q.rows(), kvHeads * headDim, "v");
    }
}
