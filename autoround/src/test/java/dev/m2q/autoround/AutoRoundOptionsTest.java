package dev.m2q.autoround;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Recipes as AutoRound's users know them, explicit options over the recipe, and bad values refused, never fixed. */
class AutoRoundOptionsTest {
    static AutoRoundOptions resolve(Recipe r, Integer iters, Double lr, Double minmaxLr, Integer batch) {
        return AutoRoundOptions.resolve(r, iters, lr, minmaxLr, batch, 128, 0);
    }

    @Test
    void recipesHaveAutoRoundsValues() {
        // Exact: 1.0/200 and 1.0/1000 are the doubles the default rule computes.
        assertEquals(
                new AutoRoundOptions(200, 1.0 / 200, 1.0 / 200, 8, 128, 0),
                resolve(Recipe.DEFAULT, null, null, null, null));
        assertEquals(new AutoRoundOptions(50, 5e-3, 5e-3, 8, 128, 0), resolve(Recipe.LIGHT, null, null, null, null));
        assertEquals(new AutoRoundOptions(1000, 1e-3, 1e-3, 8, 128, 0), resolve(Recipe.BEST, null, null, null, null));
        assertEquals(512, Recipe.BEST.nsamples());
        assertEquals(128, Recipe.DEFAULT.nsamples());
        assertEquals(2048, Recipe.LIGHT.seqlen());
        assertEquals(Recipe.LIGHT, Recipe.byName("light"));
    }

    @Test
    void explicitOptionsOverrideTheRecipeOneByOne() {
        // light's fixed lr survives a changed iters; the default rule follows iters; minmax lr follows lr.
        assertEquals(new AutoRoundOptions(100, 5e-3, 5e-3, 8, 128, 0), resolve(Recipe.LIGHT, 100, null, null, null));
        assertEquals(new AutoRoundOptions(100, 0.01, 0.01, 8, 128, 0), resolve(Recipe.DEFAULT, 100, null, null, null));
        assertEquals(new AutoRoundOptions(50, 0.02, 0.02, 8, 128, 0), resolve(Recipe.LIGHT, null, 0.02, null, null));
        assertEquals(new AutoRoundOptions(200, 0.005, 0.1, 4, 128, 0), resolve(Recipe.DEFAULT, null, null, 0.1, 4));
        // iters 0 tunes nothing: the default rule has no 1/0 to take, and the rates are 0.
        assertEquals(new AutoRoundOptions(0, 0, 0, 8, 128, 0), resolve(Recipe.DEFAULT, 0, null, null, null));
    }

    @Test
    void badValuesAreInputErrorsNamingTheOption() {
        assertBad(() -> resolve(Recipe.DEFAULT, -1, null, null, null), "--iters -1");
        assertBad(() -> resolve(Recipe.DEFAULT, null, 0.0, null, null), "--lr 0.0");
        assertBad(() -> resolve(Recipe.DEFAULT, 0, -0.1, null, null), "--lr -0.1");
        assertBad(() -> resolve(Recipe.DEFAULT, null, Double.NaN, null, null), "--lr NaN");
        assertBad(() -> resolve(Recipe.DEFAULT, null, null, 0.0, null), "--minmax-lr 0.0");
        assertBad(() -> resolve(Recipe.DEFAULT, null, null, null, 0), "--batch-size 0");
        assertBad(() -> new AutoRoundOptions(10, 0, 0.1, 8, 128, 0), "--lr 0.0");
        assertBad(() -> new AutoRoundOptions(10, 0.1, 0.1, 8, 0, 0), "--group-size 0");
        assertBad(() -> Recipe.byName("fast"), "light, default, best");
    }

    @Test
    void configKeysAreAutoRoundsNames() {
        assertEquals(
                Map.of("iters", 50, "nsamples", 64, "seqlen", 512, "batch_size", 8, "lr", 5e-3, "minmax_lr", 5e-3),
                resolve(Recipe.LIGHT, null, null, null, null).configKeys(64, 512));
    }

    private static void assertBad(Executable e, String part) {
        String msg = assertThrows(InputException.class, e).getMessage();
        assertTrue(msg.contains(part), "\"" + msg + "\" should name " + part);
    }
}
