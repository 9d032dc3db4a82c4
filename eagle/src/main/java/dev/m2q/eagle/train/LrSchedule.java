package dev.m2q.eagle.train;

import dev.m2q.core.InputException;

/**
 * The learning rate of step s (0-based) of {@code steps}: linear warm-up to {@code peak} over the first
 * {@code warmup} steps, lr(s) = peak·(s + 1)/warmup, then cosine decay to 0 at s = steps,
 * lr(s) = peak·½(1 + cos(π·(s − warmup)/(steps − warmup))).
 */
public record LrSchedule(double peak, int warmup, int steps) {
    public LrSchedule {
        if (!(peak > 0) || Double.isInfinite(peak)) {
            throw new InputException("--lr must be a finite number > 0, got " + peak);
        }
        if (steps < 1 || warmup < 0 || warmup >= steps) {
            throw new InputException(
                    "--steps must be ≥ 1 and --warmup in [0, steps): steps " + steps + ", warmup " + warmup);
        }
    }

    public double lr(int step) {
        if (step < warmup) {
            return peak * (step + 1) / warmup;
        }
        double progress = (double) (step - warmup) / (steps - warmup);
        return peak * 0.5 * (1 + Math.cos(Math.PI * progress));
    }
}
