package dev.m2q.autoround;

import dev.m2q.core.InputException;
import java.util.Arrays;
import java.util.OptionalDouble;

/**
 * AutoRound's named recipes, with the values its users know from {@code auto-round --recipe} (and the
 * {@code auto-round-light} / {@code auto-round-best} commands). An option given explicitly overrides the recipe's
 * value for that option only.
 *
 * @param iters SignRound steps per decoder layer
 * @param lr the recipe's fixed learning rate, or empty for the default rule lr = 1/iters
 * @param nsamples calibration sequences
 * @param seqlen tokens per calibration sequence
 * @param batchSize sequences per step
 */
public enum Recipe {
    /** 50 steps at lr 5e-3: about a quarter of the default's time. */
    LIGHT("light", 50, OptionalDouble.of(5e-3), 128, 2048, 8),
    /** AutoRound's default: 200 steps, lr = 1/200. */
    DEFAULT("default", 200, OptionalDouble.empty(), 128, 2048, 8),
    /** 1000 steps on 512 samples, lr = 1/1000: about five times the default's time. */
    BEST("best", 1000, OptionalDouble.empty(), 512, 2048, 8);

    private final String id;
    private final int iters;
    private final OptionalDouble lr;
    private final int nsamples;
    private final int seqlen;
    private final int batchSize;

    Recipe(String id, int iters, OptionalDouble lr, int nsamples, int seqlen, int batchSize) {
        this.id = id;
        this.iters = iters;
        this.lr = lr;
        this.nsamples = nsamples;
        this.seqlen = seqlen;
        this.batchSize = batchSize;
    }

    /** The recipe named {@code name} ("light", "default", "best"); anything else is bad input. */
    public static Recipe byName(String name) {
        for (Recipe r : values()) {
            if (r.id.equals(name)) {
                return r;
            }
        }
        throw new InputException("--recipe " + name + " is not an AutoRound recipe (available: "
                + String.join(", ", Arrays.stream(values()).map(Recipe::id).toList()) + ")");
    }

    public String id() {
        return id;
    }

    public int iters() {
        return iters;
    }

    public OptionalDouble lr() {
        return lr;
    }

    public int nsamples() {
        return nsamples;
    }

    public int seqlen() {
        return seqlen;
    }

    public int batchSize() {
        return batchSize;
    }
}
