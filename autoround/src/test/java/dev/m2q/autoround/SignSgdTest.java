package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.grad.LayerParams;
import dev.m2q.core.grad.Tensor;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The signed step and AutoRound's linear schedule, in closed form. */
class SignSgdTest {
    @Test
    void scheduleDecaysLinearlyFromOneToOneOverN() {
        SignSgd sgd = new SignSgd(0.1, 0.2, 4);
        // Exact: 1 − i/4 is a dyadic rational.
        assertEquals(1.0, sgd.factor(0), 0.0);
        assertEquals(0.75, sgd.factor(1), 0.0);
        assertEquals(0.25, sgd.factor(3), 0.0);
        assertThrows(IllegalArgumentException.class, () -> sgd.factor(4));
        assertThrows(IllegalArgumentException.class, () -> new SignSgd(0, 0.1, 4));
    }

    /**
     * One linear with W [2, 4], G = 4: V moves by lr·factor against the gradient's sign (not its size) and stays
     * where the gradient is 0; α and β move by minmax lr·factor and are clamped into [0, 1].
     */
    @Test
    void stepMovesBySignAndClampsTheClipFactors() {
        Tensor w = Tensor.f32(2, 4);
        RoundingParams p = RoundingParams.initial(layerWith(w), List.of("mlp.down_proj"), 4);
        RoundingParams.Linear x = p.get("mlp.down_proj");
        RoundingParams.Linear gl = new RoundingParams.Linear(
                x.v().zerosLike(), x.alpha().zerosLike(), x.beta().zerosLike());
        float[] dv = {3f, -1e-9f, 0f, -7f, 1f, 1f, -1f, 0f};
        for (int i = 0; i < dv.length; i++) {
            gl.v().set(i, dv[i]);
        }
        gl.alpha().set(0, -5); // would raise α above 1: clamped
        gl.alpha().set(1, 2); // lowers α
        gl.beta().set(0, 0.5); // lowers β
        new SignSgd(0.1, 0.4, 2).step(1, x, gl); // factor 1/2
        float[] want = {-0.05f, 0.05f, 0f, 0.05f, -0.05f, -0.05f, 0.05f, 0f};
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], (float) x.v().get(i), 0f, "V[" + i + "]"); // one rounding of 0 ∓ 0.05: exact
        }
        assertEquals(1.0, x.alpha().get(0), 0.0);
        assertEquals(0.8f, (float) x.alpha().get(1), 0f);
        assertEquals(0.8f, (float) x.beta().get(0), 0f);
        assertEquals(1.0, x.beta().get(1), 0.0, "zero gradient: unchanged");
    }

    /** Layer parameters whose down_proj is {@code w}; the others are never read by these tests. */
    static LayerParams layerWith(Tensor w) {
        Tensor one = Tensor.f32(1, 1);
        return new LayerParams(one, one, null, one, null, one, null, one, one, one, one, w);
    }
}
