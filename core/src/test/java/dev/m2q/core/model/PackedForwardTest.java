package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.CountingKernels.OpCount;
import dev.m2q.core.kernels.Crossings;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.PackedRows;
import dev.m2q.core.kernels.VectorKernels;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The packed forward ({@link Qwen2Model#hiddenPacked}, {@link Qwen2Model#forwardPacked}) on the tiny fixture against
 * the per-item cached forward, bit for bit: every packed row runs the same per-row operations (norms, the
 * row-independent matmuls, SwiGLU) and attends to the keys its cached twin sees in the same order, so the logits
 * are the same floats (a difference of one ulp fails). Several items of different lengths, with continuations of
 * one token (no row of their own) and of several, packed in one forward.
 */
class PackedForwardTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");

    record Item(int[] context, int[][] continuations) {}

    static int[] ids(SplittableRandom r, int n, int vocab) {
        return r.ints(n, 0, vocab).toArray();
    }

    static Item[] items(int vocab) {
        SplittableRandom r = new SplittableRandom(2026);
        return new Item[] {
            new Item(ids(r, 11, vocab), new int[][] {ids(r, 4, vocab), ids(r, 1, vocab), ids(r, 6, vocab)}),
            new Item(ids(r, 3, vocab), new int[][] {ids(r, 2, vocab), ids(r, 5, vocab)}),
            new Item(ids(r, 40, vocab), new int[][] {ids(r, 3, vocab), ids(r, 3, vocab), ids(r, 9, vocab)}),
        };
    }

    /**
     * A per-row fake quantization of the linear inputs (each row to 15 levels of its own absmax) and of keys and values
     * (to multiples of 1/8): the packed forward runs it on all rows at once, the cached one on each call's rows, and
     * since it works row by row the bits agree, as for the simulated 8-bit schemes.
     */
    static final ActivationQuant PER_ROW = new ActivationQuant() {
        @Override
        public void linearInput(int layer, java.util.List<String> modules, float[] x, int rows, int cols) {
            for (int r = 0; r < rows; r++) {
                float max = 0f;
                for (int i = 0; i < cols; i++) {
                    max = Math.max(max, Math.abs(x[r * cols + i]));
                }
                float step = max / 7f;
                if (step > 0f) {
                    for (int i = 0; i < cols; i++) {
                        x[r * cols + i] = Math.round(x[r * cols + i] / step) * step;
                    }
                }
            }
        }

        @Override
        public void keysValues(int layer, float[] k, float[] v, int rows, int kvHeads, int headDim) {
            for (float[] a : new float[][] {k, v}) {
                for (int i = 0; i < rows * kvHeads * headDim; i++) {
                    a[i] = Math.round(a[i] * 8f) / 8f;
                }
            }
        }
    };

    @Test
    void packedLogitsEqualTheCachedForwardBitForBit() {
        for (String kernels : new String[] {"vector", "scalar"}) {
            try (Qwen2Model m = Qwen2Model.load(FIXTURE, Kernels.byName(kernels))) {
                check(m, kernels);
            }
        }
        try (Qwen2Model base = Qwen2Model.load(FIXTURE, Kernels.byName("vector"));
                Qwen2Model m = base.withActivationQuant(PER_ROW)) {
            check(m, "activations quantized per row");
        }
    }

    static void check(Qwen2Model m, String kernels) {
        int vocab = m.config().vocabSize();
        Item[] items = items(vocab);
        // the packed layout: per item its context, then each continuation but its last token
        PackedRows.Builder b = PackedRows.builder();
        int total = 0;
        for (Item it : items) {
            total += it.context().length;
            for (int[] c : it.continuations()) {
                total += c.length - 1;
            }
        }
        int[] ids = new int[total];
        int[][] ctxRows = new int[items.length][];
        int[][][] contRows = new int[items.length][][];
        for (int i = 0; i < items.length; i++) {
            int[] ctx = items[i].context();
            int s = b.sequence(ctx.length, 0);
            System.arraycopy(ctx, 0, ids, s, ctx.length);
            ctxRows[i] = rowRange(s, ctx.length);
            contRows[i] = new int[items[i].continuations().length][];
            for (int c = 0; c < contRows[i].length; c++) {
                int[] cont = items[i].continuations()[c];
                int cs = b.continuation(s, s + ctx.length, cont.length - 1, ctx.length);
                System.arraycopy(cont, 0, ids, cs, cont.length - 1);
                contRows[i][c] = rowRange(cs, cont.length - 1);
            }
        }
        float[] all = m.forwardPacked(ids, b.build(), rowRange(0, total));
        assertEquals(total * vocab, all.length);

        try (KvCache cache = m.newCache(64)) {
            for (int i = 0; i < items.length; i++) {
                int[] ctx = items[i].context();
                cache.clear();
                float[] want = m.forward(ctx, cache, false);
                assertArrayEquals(want, rows(all, ctxRows[i], vocab), kernels + " item " + i + " context");
                for (int c = 0; c < contRows[i].length; c++) {
                    int[] cont = items[i].continuations()[c];
                    if (cont.length == 1) {
                        continue;
                    }
                    float[] got = m.forward(Arrays.copyOf(cont, cont.length - 1), cache, false);
                    cache.truncate(ctx.length);
                    assertArrayEquals(
                            got, rows(all, contRows[i][c], vocab), kernels + " item " + i + " continuation " + c);
                }
            }
        }
    }

    /**
     * Only the rows asked for pay for lm_head, and the packed forward is resident: once the weights are, it moves
     * the ids' embedding rows in and the wanted logits rows out, nothing else.
     */
    @Test
    void aPackedForwardMovesItsEmbeddingsInAndOnlyTheWantedLogitsOut() {
        CountingKernels ck = new CountingKernels(VectorKernels.INSTANCE);
        try (Qwen2Model m = Qwen2Model.load(FIXTURE, ck)) {
            int vocab = m.config().vocabSize();
            int hidden = m.config().hiddenSize();
            PackedRows.Builder b = PackedRows.builder();
            b.sequence(6, 0);
            b.continuation(0, 6, 3, 6);
            b.sequence(5, 0);
            PackedRows p = b.build();
            int[] ids = ids(new SplittableRandom(3), p.rows(), vocab);
            int[] wanted = {5, 6, 7, 13};
            float[] first = m.forwardPacked(ids, p, wanted);
            ck.reset(false);
            float[] again = m.forwardPacked(ids, p, wanted);
            assertArrayEquals(first, again);
            Map<String, OpCount> c = Crossings.of(ck);
            assertEquals(
                    Map.of(
                            "backend.wrap",
                            new OpCount("backend.wrap", 1, 4L * p.rows() * hidden, 0),
                            "backend.take",
                            new OpCount("backend.take", 1, 0, 4L * wanted.length * vocab)),
                    c,
                    ck.table());
            Crossings.assertOnlyCrossingsMoveBytes(ck);
            int layers = m.numLayers();
            assertEquals(layers, ck.count("backend.attentionPacked").calls());
            assertEquals(2L * layers, ck.count("backend.ropePacked").calls());
            assertEquals(0, ck.count("backend.attention").calls());
            // rows 5, 6 and 7 are consecutive: two copies gather the four rows
            assertEquals(2, ck.count("backend.copy").calls(), ck.table());
            assertThrows(IllegalArgumentException.class, () -> m.forwardPacked(new int[3], p, wanted));
        }
    }

    static int[] rowRange(int from, int n) {
        int[] r = new int[n];
        for (int i = 0; i < n; i++) {
            r[i] = from + i;
        }
        return r;
    }

    static float[] rows(float[] all, int[] rows, int vocab) {
        float[] out = new float[rows.length * vocab];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(all, rows[i] * vocab, out, i * vocab, vocab);
        }
        return out;
    }
}
