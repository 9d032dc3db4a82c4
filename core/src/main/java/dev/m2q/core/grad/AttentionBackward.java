package dev.m2q.core.grad;

import dev.m2q.core.kernels.Kernels;

/**
 * The backward of one query row of a softmax attention (one head) against a list of key and value rows, shared by
 * {@link CausalAttention} and the EAGLE-3 training-time test's attention. With P = exp(scale·q·k − L) (L the forward's
 * log-sum-exp) and dS = P·(dOut·v − D) (D = dOut·out): dq += Σ scale·dS·k, dk += scale·dS·q, dv += P·dOut.
 *
 * <p>The bits are those of the loop over keys that takes one dot product and three axpys per key: the row's q·k and
 * dOut·v come from {@link Kernels#dots} (dot's bits), dq is one {@link Kernels#axpys} in key order (axpy's bits), and
 * the keys' dk rows, then their dv rows, one {@link Kernels#axpyRows} each in key order; the updates write none of the
 * products' operands, and dq, dk, dv are distinct, so the order between tensors does not change a bit.
 */
public final class AttentionBackward {
    private double[] qk = new double[0];
    private double[] p = new double[0];
    private double[] dsScaled = new double[0];

    /**
     * Adds one query row's share to dq (at qOff), dk and dv (at the keys' offsets kOffs[0, count)); q and dOut are read
     * at qOff, k and v at kOffs, d = the head size.
     */
    public void row(
            Kernels kernels,
            Tensor q,
            Tensor dOut,
            int qOff,
            Tensor k,
            Tensor v,
            int[] kOffs,
            int count,
            int d,
            double scale,
            double lse,
            double dSum,
            Tensor dq,
            Tensor dk,
            Tensor dv) {
        if (qk.length < count) {
            int size = Math.max(count, 2 * qk.length);
            qk = new double[size];
            p = new double[size];
            dsScaled = new double[size];
        }
        Products.dots(kernels, q, qOff, k, kOffs, count, d, qk);
        Products.dots(kernels, dOut, qOff, v, kOffs, count, d, p);
        for (int s = 0; s < count; s++) {
            double ps = Math.exp(scale * qk[s] - lse);
            dsScaled[s] = scale * (ps * (p[s] - dSum));
            p[s] = ps;
        }
        Products.axpys(kernels, dsScaled, k, kOffs, count, dq, qOff, d);
        // dk and dv are other tensors than q and dOut, so their updates may go one tensor after the other
        Products.axpyRows(kernels, dsScaled, q, qOff, dk, kOffs, count, d);
        Products.axpyRows(kernels, p, dOut, qOff, dv, kOffs, count, d);
    }
}
