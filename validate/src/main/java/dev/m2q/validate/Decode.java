package dev.m2q.validate;

import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;

/** Batch-1 greedy decoding with a KV cache: the tokens/s users see when a model answers one request. */
public final class Decode {
    private static final int WARMUP_TOKENS = 8;

    private Decode() {}

    /**
     * Decode tokens/s: prefill {@code prompt}, then generate {@code tokens} greedily, timing only the generation
     * (one timed forward per token). A shorter untimed run first lets the JIT compile the kernels.
     */
    public static double tokensPerSecond(Qwen2Model m, int[] prompt, int tokens) {
        generate(m, prompt, Math.min(tokens, WARMUP_TOKENS));
        long[] nanos = new long[1];
        generate(m, prompt, tokens, nanos);
        return tokens / (nanos[0] / 1e9);
    }

    /** The greedy continuation of {@code prompt}, {@code tokens} long. */
    public static int[] generate(Qwen2Model m, int[] prompt, int tokens) {
        return generate(m, prompt, tokens, new long[1]);
    }

    private static int[] generate(Qwen2Model m, int[] prompt, int tokens, long[] nanos) {
        KvCache cache = m.newCache(prompt.length + tokens + 1);
        float[] logits = m.forward(prompt, cache, true);
        int[] out = new int[tokens];
        long t0 = System.nanoTime();
        for (int i = 0; i < tokens; i++) {
            out[i] = argmax(logits);
            logits = m.forward(new int[] {out[i]}, cache, true);
        }
        nanos[0] = System.nanoTime() - t0;
        return out;
    }

    /** Index of the largest value (the first on ties): greedy decoding's choice. */
    public static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }
}
