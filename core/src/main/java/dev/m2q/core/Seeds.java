package dev.m2q.core;

/**
 * The one constant m2q derives its per-layer and per-epoch seeds with: φ = 0x9E3779B97F4A7C15, the 64-bit golden
 * ratio (SplittableRandom's gamma), which sends consecutive indices to far-apart seeds. AutoRound seeds layer ℓ's
 * batches with {@code seed ^ ((ℓ + 1)·φ)}, EAGLE-3 training shuffles epoch e with {@code seed + e·φ}; both are
 * functions of (seed, index) only, so a resumed run draws what an uninterrupted one drew.
 */
public final class Seeds {
    public static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private Seeds() {}
}
