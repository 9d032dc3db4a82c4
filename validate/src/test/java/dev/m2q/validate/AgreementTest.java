package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The metrics on two-token vocabularies, where every figure has a closed form: KL(p ‖ q) of (½, ½) against
 * (a/(a+1), 1/(a+1)), next-token NLL, top-1 with the first index winning ties, the nearest-rank p99, and the
 * per-layer error as a root of summed squares. Everything is accumulated in double from fp32 logits, and ln a is
 * rounded to fp32 once, so values agree with the closed forms to ~1e-7 relative; 1e-6 bounds that with margin.
 */
class AgreementTest {
    @Test
    void klNllTopOneAndPercentileMatchClosedForms() {
        Agreement a = new Agreement("q", 1);
        float[] ref = {0f, 0f};
        Agreement.Row refRow = Agreement.Row.of(ref, 0, 2);
        double[] want = new double[100];
        double nll = 0;
        for (int i = 0; i < 100; i++) {
            double ratio = 1 + i / 10.0; // q = (r/(r+1), 1/(r+1)), argmax 0 like the reference's tie
            float[] q = {(float) Math.log(ratio), 0f};
            double q0 = Math.exp(q[0]) / (Math.exp(q[0]) + 1);
            want[i] = 0.5 * Math.log(0.5 / q0) + 0.5 * Math.log(0.5 / (1 - q0));
            nll -= Math.log(1 - q0); // target token 1
            a.position(ref, refRow, q, 0, 2, 1);
        }
        assertArrayEquals(want, a.kl(), 1e-6 * want[99]);
        assertEquals(Arrays.stream(want).average().orElseThrow(), a.klMean(), 1e-6 * want[99]);
        // Nearest rank: ceil(0.99·100) = 99th smallest; KL grows with the ratio, so that is position 98.
        assertEquals(want[98], a.klP99(), 1e-6 * want[99]);
        assertEquals(1.0, a.top1(), 0.0);
        assertEquals(Math.exp(nll / 100), a.ppl(), 1e-6 * a.ppl());

        Agreement b = new Agreement("q", 1);
        b.position(new float[] {0f, 1f}, Agreement.Row.of(new float[] {0f, 1f}, 0, 2), new float[] {1f, 0f}, 0, 2, -1);
        assertEquals(0.0, b.top1(), 0.0, "argmax 1 vs 0");
        assertEquals(1, b.kl().length, "a window's last position counts for KL without a target");
    }

    @Test
    void layerErrorIsTheRootOfSummedSquares() {
        Agreement a = new Agreement("q", 2);
        a.layer(0, new float[] {3f, 4f}, new float[] {3f, 5f}); // ‖d‖² = 1, ‖ref‖² = 25
        a.layer(0, new float[] {0f, 0f}, new float[] {0f, 0f});
        a.layer(1, new float[] {1f, 0f}, new float[] {1f, 0f});
        a.layer(1, new float[] {0f, 2f}, new float[] {0f, 0f}); // ‖d‖² = 4, ‖ref‖² = 5
        assertArrayEquals(new double[] {0.2, Math.sqrt(4.0 / 5.0)}, a.layerErrors(), 1e-15);
    }

    @Test
    void eachWindowsNllEndsAtItsLastPosition() {
        // Windows of 3 and 2 positions: targets, then −1 at the window's last position. Window NLLs are the sums of
        // −log q(target) of their own positions, in the order the windows finished; together they are the total.
        Agreement a = new Agreement("q", 1);
        float[] ref = {0f, 0f};
        Agreement.Row refRow = Agreement.Row.of(ref, 0, 2);
        float[][] q = {{1f, 0f}, {0f, 2f}, {0.5f, 0.5f}, {3f, 0f}, {0f, 0f}};
        int[] targets = {0, 1, -1, 1, -1};
        double[] want = new double[2];
        int w = 0;
        for (int p = 0; p < q.length; p++) {
            a.position(ref, refRow, q[p], 0, 2, targets[p]);
            if (targets[p] >= 0) {
                want[w] -= Agreement.Row.of(q[p], 0, 2).logProb(q[p], 0, targets[p]);
            } else {
                w++;
            }
        }
        // The same double operations in the same order as position's, so the sums agree bit for bit.
        assertArrayEquals(want, a.windowNll(), 0.0);
        // Window KL: the positions' KL in order, the last position of each window included.
        double[] kl = a.kl();
        assertArrayEquals(new double[] {kl[0] + kl[1] + kl[2], kl[3] + kl[4]}, a.windowKl(), 0.0);
        assertEquals(Math.exp((want[0] + want[1]) / 3), a.ppl(), 1e-15 * a.ppl());
    }
}
