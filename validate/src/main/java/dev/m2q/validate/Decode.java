package dev.m2q.validate;

import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;

/** Batch-1 greedy decoding with a KV cache: the tokens/s users see when a model answers one request. */
public final class Decode {
    /** Untimed runs first, then the fastest of the timed ones. */
    private static final int WARMUP_RUNS = 3;

    private static final int TIMED_RUNS = 3;

    private Decode() {}

    /**
     * Decode tokens/s: prefill {@code prompt}, then generate {@code tokens} greedily, timing only the generation
     * (one timed forward per token). Full-length untimed runs first let the JIT compile the decode path, and the
     * fastest of three timed runs counts: measured, a single run after an 8-token warm-up put the W4A16 kernel
     * below BF16 on the fixture while it was still compiling.
     */
    public static double tokensPerSecond(Qwen2Model m, int[] prompt, int tokens) {
        for (int i = 0; i < WARMUP_RUNS; i++) {
            generate(m, prompt, tokens);
        }
        long best = Long.MAX_VALUE;
        long[] nanos = new long[1];
        for (int i = 0; i < TIMED_RUNS; i++) {
            generate(m, prompt, tokens, nanos);
            best = Math.min(best, nanos[0]);
        }
        return tokens / (best / 1e9);
    }

    /** The greedy continuation of {@code prompt}, {@code tokens} long. */
    public static int[] generate(Qwen2Model m, int[] prompt, int tokens) {
        return generate(m, prompt, tokens, new long[1]);
    }

    private static int[] generate(Qwen2Model m, int[] prompt, int tokens, long[] nanos) {
        try (KvCache cache = m.newCache(prompt.length + tokens + 1)) {
            float[] logits = m.forward(prompt, cache, true);
            int[] out = new int[tokens];
            long t0 = System.nanoTime();
            for (int i = 0; i < tokens; i++) {
                out[i] = Sampler.argmax(logits);
                logits = m.forward(new int[] {out[i]}, cache, true);
            }
            nanos[0] = System.nanoTime() - t0;
            return out;
        }
    }
}
