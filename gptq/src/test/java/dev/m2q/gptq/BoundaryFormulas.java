package dev.m2q.gptq;

import dev.m2q.core.kernels.CountingKernels.OpCount;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The per-operation byte counts of {@link dev.m2q.core.kernels.CountingKernels} as closed formulas of the model's
 * shapes, checked against the measured fixture counts ({@link BoundaryBytesTest}) and then evaluated at the 32B
 * shape for docs/BENCHMARKS.md. 4 bytes per float or int; H hidden, I MLP width, Q = heads·headDim, KV =
 * kvHeads·headDim, d headDim, V vocabulary, P = the layer's linear weights' elements.
 */
record BoundaryFormulas(int hidden, int inter, int heads, int kvHeads, int headDim, int vocab) {
    static final BoundaryFormulas FIXTURE = new BoundaryFormulas(256, 768, 4, 2, 64, 2048);
    static final BoundaryFormulas QWEN25_32B = new BoundaryFormulas(5120, 27648, 40, 8, 128, 152064);

    long q() {
        return (long) heads * headDim;
    }

    long kv() {
        return (long) kvHeads * headDim;
    }

    /** The layer's seven linears as [N, K]: q, k, v, o, gate, up, down. */
    long[][] linears() {
        long h = hidden, i = inter;
        return new long[][] {{q(), h}, {kv(), h}, {kv(), h}, {h, q()}, {i, h}, {i, h}, {h, i}};
    }

    long params() {
        long p = 0;
        for (long[] l : linears()) {
            p += l[0] * l[1];
        }
        return p;
    }

    /**
     * BEFORE issue 14 item 1: one batch-1 decode step of the host-array forward (every kernel call copying its
     * operands) for a model of {@code layers} layers whose KV cache holds {@code cached} tokens, the weights already
     * resident (cached by the device backend).
     */
    List<OpCount> decodeStep(int layers, int cached) {
        long h = hidden, i = inter, q = q(), kv = kv(), d = headDim, lay = layers;
        List<OpCount> out = new ArrayList<>();
        // two norms per layer and the final one: x and weight in, the row out
        out.add(new OpCount("rmsNorm", 2 * lay + 1, (2 * lay + 1) * 8 * h, (2 * lay + 1) * 4 * h));
        // per layer q, k, v (x [H], biases), o (x [Q]), gate, up (x [H]), down (x [I]); then lm_head
        long mmIn = lay * 4 * (3 * h + q + 2 * h + i + q + 2 * kv) + 4 * h;
        long mmOut = lay * 4 * (q + 2 * kv + h + 2 * i + h) + 4L * vocab;
        out.add(new OpCount("matmul", 7 * lay + 1, mmIn, mmOut));
        // q and k rows, invFreq [d/2] and one position each
        out.add(new OpCount("rope", 2 * lay, lay * (4 * (q + kv) + 2 * (2 * d) + 8), lay * 4 * (q + kv)));
        // q in, the whole cache (cached + 1 rows of K and V) in, the output row out
        out.add(new OpCount("attention", lay, lay * (4 * q + 8 * (cached + 1) * kv), lay * 4 * q));
        out.add(new OpCount("swiglu", lay, lay * 8 * i, lay * 4 * i));
        return out;
    }

    /**
     * AFTER issue 14 item 1: one batch-1 decode step on the backend (Qwen2Model.forward(ids, cache, true)), the
     * weights resident. Only the embedding row crosses in (wrap, 4·H) and the logits row out (take, 4·V), whatever
     * the number of layers or the cache length; the rest are launches on resident data, counted as calls: per layer
     * 9 allocations, 2 norms, 7 matmuls, 2 RoPEs (no YaRN scale), 2 copies into the cache, 1 attention, 2 residual
     * adds, 1 SwiGLU; then the last row's copy and buffer, the final norm, lm_head and their 2 buffers.
     */
    List<OpCount> decodeStepAfter(int layers) {
        long h = hidden, lay = layers;
        List<OpCount> out = new ArrayList<>();
        out.add(new OpCount("backend.wrap", 1, 4 * h, 0));
        out.add(new OpCount("backend.alloc", 9 * lay + 3, 0, 0));
        out.add(new OpCount("backend.rmsNorm", 2 * lay + 1, 0, 0));
        out.add(new OpCount("backend.matmul", 7 * lay + 1, 0, 0));
        out.add(new OpCount("backend.rope", 2 * lay, 0, 0));
        out.add(new OpCount("backend.copy", 2 * lay + 1, 0, 0));
        out.add(new OpCount("backend.attention", lay, 0, 0));
        out.add(new OpCount("backend.add", 2 * lay, 0, 0));
        out.add(new OpCount("backend.swiglu", lay, 0, 0));
        out.add(new OpCount("backend.take", 1, 0, 4L * vocab));
        return out;
    }

    /**
     * One GPTQ layer pass (true-sequential, the default options: group 128, no act-order, the GPTQ layout) over
     * {@code batches} batches of {@code tokens} calibration tokens each, on the backend-resident design (issue 14
     * item 1): what crosses is the layer's weights once (bf16), its norms, biases and RoPE's inverse frequencies
     * once, each batch's inputs once (they stay resident across the passes) and its outputs once (taken for the
     * next layer's store), and the results: per linear the codes (one int each), scales, g_idx, H's diagonal and
     * the proxy loss ({@link CountingGptqKernels#quantize}), and the range statistics (absmax per channel of the
     * four distinct linear inputs, keys and values). Everything else runs on the backend and counts calls only.
     *
     * <p>Each batch runs through the layer five times: once per sequential group to accumulate its Hessian, the
     * forward stopping after that group's input (q/k/v: the first norm; o: the attention; gate/up: the second
     * norm; down: the SwiGLU), and once whole for the outputs and the ranges.
     */
    List<OpCount> layerPass(long tokens, long batches, int groupSize) {
        long h = hidden, i = inter, q = q(), kv = kv(), d = headDim, t = tokens, b = batches;
        List<OpCount> out = new ArrayList<>();
        out.add(new OpCount("backend.weight", 7, 2 * params(), 0));
        // the norms and the q/k/v biases, invFreq [d/2], then each batch's inputs [t, H]
        out.add(new OpCount("backend.wrap", 6 + b, 4 * (2 * h + q + 2 * kv) + 4 * (d / 2) + b * 4 * t * h, 0));
        // each batch's outputs [t, H], then the statistics: absmax per channel of the inputs of q, o, gate, down,
        // of the keys and of the values
        out.add(new OpCount("backend.take", b + 6, 0, b * 4 * t * h + 4 * (h + q + h + i + 2 * kv)));
        long quantOut = 0;
        for (long[] l : linears()) {
            long n = l[0], k = l[1];
            quantOut += 4 * k + 4 * k * n + 4 * (k / groupSize) * n + 4 * k + 8;
        }
        out.add(new OpCount("gptq.quantize", 7, 0, quantOut));
        out.add(new OpCount("gptq.finishHessian", 4, 0, 0));
        // on the backend, per batch: the four group passes, each from where the previous one left the layer
        // (LayerContext's midpoints): q/k/v's to their input (1 buffer), o's through the attention, keeping its
        // output (5 + 1 copied), gate/up's from it through o and the residual, keeping that (2 + 1 copied), down's
        // from the residual (copied into its own buffer, 2 + 3); then the outputs pass from the residual too (2 +
        // 3). Per layer the four Hessians and the statistics' buffers: the ranges are measured on every pass, each
        // tensor afresh in each pass that shows it (q's input 2, the keys 1, the values 1, o's input 2, gate's 3,
        // down's 2)
        out.add(new OpCount("backend.alloc", 20 * b + 4 + 11, 0, 0));
        out.add(new OpCount("backend.copy", 4 * b, 0, 0));
        out.add(new OpCount("backend.rmsNorm", (1 + 1 + 1 + 1 + 1) * b, 0, 0));
        out.add(new OpCount("backend.matmul", (3 + 1 + 2 + 3) * b, 0, 0));
        out.add(new OpCount("backend.rope", 2 * b, 0, 0));
        out.add(new OpCount("backend.attention", b, 0, 0));
        out.add(new OpCount("backend.add", (1 + 1) * b, 0, 0));
        out.add(new OpCount("backend.swiglu", 2 * b, 0, 0));
        out.add(new OpCount("backend.syrkUpper", 4 * b, 0, 0));
        // per batch: q's input in the first two passes, the keys, the values and o's input in o's pass, o's and
        // gate's inputs in gate's pass, gate's and down's in down's pass and in the outputs pass
        out.add(new OpCount("backend.absMaxColumns", (1 + 4 + 2 + 2 + 2) * b, 0, 0));
        return out;
    }

    /**
     * The same pass with the host-array SPI, before issue 14 item 1 (asserted against the fixture by this test up
     * to commit 93c12d8): every batch runs through the layer five times whole and every kernel call moves its
     * operands; the weights cross once per distinct object (the bf16 originals, then two fresh fp32
     * fake-quantized sets: all but down_proj, all seven). Kept to give docs/BENCHMARKS.md its "before" column
     * from the same code.
     */
    List<OpCount> layerPassBefore(long tokens, long batches, int groupSize) {
        long h = hidden, i = inter, q = q(), kv = kv(), d = headDim, t = tokens, f = 5 * batches;
        long p = params();
        List<OpCount> out = new ArrayList<>();
        out.add(new OpCount("rmsNorm", 2 * f, 2 * f * (4 * t * h + 4 * h), 2 * f * 4 * t * h));
        out.add(new OpCount(
                "syrkUpper", 4 * batches, batches * 4 * t * (h + q + h + i), batches * 4 * (3 * tri(h) + tri(i))));
        out.add(new OpCount("weights", 7 + 6 + 7, 2 * p + 4 * (p - h * i) + 4 * p, 0));
        out.add(new OpCount(
                "matmul",
                7 * f,
                f * 4 * (t * (3 * h + q + 2 * h + i) + q + 2 * kv),
                f * 4 * t * (q + 2 * kv + h + 2 * i + h)));
        out.add(new OpCount("rope", 2 * f, f * (4 * t * (q + kv) + 2 * (2 * d) + 8 * t), f * 4 * t * (q + kv)));
        out.add(new OpCount("attention", f, f * 4 * t * (q + 2 * kv), f * 4 * t * q));
        out.add(new OpCount("swiglu", f, f * 8 * t * i, f * 4 * t * i));
        long chIn = 0, chOut = 0, loopIn = 0, loopOut = 0, gemmCalls = 0, gemmIn = 0, gemmOut = 0;
        for (long[] l : linears()) {
            long n = l[0], k = l[1];
            chIn += 4 * k * k + 4 * k;
            chOut += 4 * k * k + 4;
            loopIn += 4 * k * n + 4 * k * k;
            loopOut += 4 * k * n + 4 * k + 4 * (k / groupSize) * n;
            // Gptq.proxyLoss: D [rows, K]·H [K, K] in chunks of min(N, 2²³/K) rows
            long chunk = Math.max(1, Math.min(n, (1L << 23) / k));
            long calls = (n + chunk - 1) / chunk;
            gemmCalls += calls;
            gemmIn += 4 * (2 * n * k + calls * k * k);
            gemmOut += 4 * n * k;
        }
        out.add(new OpCount("gptq.choleskyInverse", 7, chIn, chOut));
        out.add(new OpCount("gptq.columnLoop", 7, loopIn, loopOut));
        out.add(new OpCount("gemmAcc", gemmCalls, gemmIn, gemmOut));
        // the range statistics of the outputs' pass: the four linear inputs, keys and values
        long cols = h + q + h + i + 2 * kv;
        out.add(new OpCount("absMaxColumns", 6 * batches, batches * 4 * (t + 1) * cols, batches * 4 * cols));
        return out;
    }

    /**
     * The budget issue 14 item 2 sets for a layer pass, in bytes: the layer's weights once (bf16), its input
     * activations once and its outputs once, plus the results (codes as {@link CountingGptqKernels} counts them,
     * scales, g_idx, H's diagonal, the proxy loss, the absmax statistics) and the norms, biases and inverse
     * frequencies; {@code tokens} in all.
     */
    long layerBudget(long tokens, int groupSize) {
        long h = hidden, i = inter, q = q(), kv = kv();
        long results = 4 * (h + q + h + i + 2 * kv);
        for (long[] l : linears()) {
            long n = l[0], k = l[1];
            results += 4 * k + 4 * k * n + 4 * (k / groupSize) * n + 4 * k + 8;
        }
        return 2 * params() + 4 * (2 * h + q + 2 * kv) + 4 * (headDim / 2) + 2 * 4 * tokens * h + results;
    }

    private static long tri(long k) {
        return k * (k + 1) / 2;
    }

    static OpCount total(List<OpCount> counts) {
        return new OpCount(
                "total",
                counts.stream().mapToLong(OpCount::calls).sum(),
                counts.stream().mapToLong(OpCount::bytesIn).sum(),
                counts.stream().mapToLong(OpCount::bytesOut).sum());
    }

    static String summary(List<OpCount> counts) {
        return counts.stream()
                .sorted((a, b) -> a.op().compareTo(b.op()))
                .map(c -> c.op() + " " + c.calls() + " " + c.bytesIn() + " " + c.bytesOut())
                .collect(Collectors.joining("\n"));
    }

    /** A Markdown table: per op calls, GB in, GB out (10⁹ bytes), then the total. */
    static String markdown(List<OpCount> counts) {
        StringBuilder sb = new StringBuilder("| operation | calls | in | out |\n|---|---:|---:|---:|\n");
        List<OpCount> rows = new ArrayList<>(counts);
        rows.add(total(counts));
        for (OpCount c : rows) {
            sb.append(String.format(
                    Locale.ROOT, "| %s | %d | %s | %s |%n", c.op(), c.calls(), size(c.bytesIn()), size(c.bytesOut())));
        }
        return sb.toString();
    }

    static String size(long b) {
        if (b >= 1_000_000_000L) {
            return String.format(Locale.ROOT, "%.2f GB", b / 1e9);
        }
        if (b >= 1_000_000L) {
            return String.format(Locale.ROOT, "%.2f MB", b / 1e6);
        }
        if (b >= 1_000L) {
            return String.format(Locale.ROOT, "%.1f kB", b / 1e3);
        }
        return b + " B";
    }
}
