package dev.m2q.gptq;

import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.ClipSearch;
import dev.m2q.core.quant.Rtn;
import java.util.List;

/**
 * How GPTQ sets one group's scale for one output row from the group's weights (the weights the loop computes it
 * from: the group's current weights when the loop reaches it, or the original ones for static groups): the
 * candidates of GPTQ's clipping search ({@code --clip-search}, {@link GptqLoop}), which runs the column loop once per
 * rule of {@link #CLIP_SEARCH} and keeps, per output row, the rule whose loop loss is the smallest.
 *
 * <ul>
 *   <li>{@link #ABSMAX}: RTN's scale of the group's absmax, plain GPTQ's rule;
 *   <li>{@link #NORM_SEARCH}: {@link ClipSearch}'s scale, the least Σ|w − ŵ|^2.4 over the group (RTN's
 *       {@code --clip-search});
 *   <li>{@link #shrink}(i): RTN's scale of the absmax times {@link ClipSearch#factor}(i), a fixed point of the same
 *       grid (i = 25, 50, 75: 0.95, 0.90, 0.85 of the range).
 * </ul>
 *
 * @param name for test messages and the docs
 * @param shrinkStep the grid index i of a fixed shrink (0: none)
 * @param normSearch whether the scale is {@link ClipSearch}'s
 */
public record ScaleRule(String name, int shrinkStep, boolean normSearch) {
    /** RTN's scale of the group's absmax. */
    public static final ScaleRule ABSMAX = new ScaleRule("absmax", 0, false);

    /** {@link ClipSearch}'s scale (least Σ|w − ŵ|^2.4 over the group). */
    public static final ScaleRule NORM_SEARCH = new ScaleRule("2.4-norm search", 0, true);

    /**
     * The rules {@code --clip-search} chooses among for GPTQ, in their tie order (an earlier rule keeps a row whose
     * loss a later one only equals, so {@link #ABSMAX} keeps every row no rule improves). The fixed shrinks 0.95,
     * 0.90 and 0.85 were chosen on the fixture (docs/BENCHMARKS.md, issue 17's last subsection): each is the best
     * rule of a share of the rows beside the search, which on its own shrinks by its own measure, not the loop's.
     */
    public static final List<ScaleRule> CLIP_SEARCH = List.of(ABSMAX, NORM_SEARCH, shrink(25), shrink(50), shrink(75));

    public ScaleRule {
        if (shrinkStep < 0 || shrinkStep > ClipSearch.STEPS || (normSearch && shrinkStep != 0)) {
            throw new IllegalArgumentException("scale rule " + name + ": shrink step " + shrinkStep + " must be in [0, "
                    + ClipSearch.STEPS + "], and 0 with the norm search");
        }
    }

    /** RTN's scale of {@link ClipSearch#factor}(step) times the absmax. */
    public static ScaleRule shrink(int step) {
        return new ScaleRule("absmax × " + ClipSearch.factor(step), step, false);
    }

    /** Whether the rule's scale differs from RTN's absmax one (a fixed shrink or the norm search). */
    public boolean searches() {
        return normSearch || shrinkStep != 0;
    }

    /**
     * The scale of the {@code count} weights {@code w[off], w[off + stride], …} whose largest |w| is {@code absmax}
     * (finite): Rtn.scale of the (shrunk) absmax, or ClipSearch's, at {@code bits}.
     */
    public float scale(float[] w, int off, int stride, int count, float absmax, Bits bits) {
        if (normSearch) {
            return ClipSearch.scale(w, off, stride, count, absmax, bits);
        }
        return shrinkStep == 0 ? Rtn.scale(absmax, bits) : Rtn.scale(absmax * ClipSearch.factor(shrinkStep), bits);
    }
}
