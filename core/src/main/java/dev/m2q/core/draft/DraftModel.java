package dev.m2q.core.draft;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.Rope;
import dev.m2q.core.tensor.Bf16;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The EAGLE-3 draft head's inference forward (ALGORITHMS §5), fp32, on the {@link Kernels}. One layer pass over n
 * rows at positions {@code cache.length()}.. takes, per row, the hidden input g [H] and the embedding e [H] of the
 * row's input token (the target's embedding table):
 *
 * <pre>
 * a  = [input_layernorm(e), hidden_norm(g)]                       [2H], embedding first
 * x  = g + o_proj(attention(rope(q_proj a), rope(k_proj a), v_proj a))   over the cached rows and these
 * h  = x + down_proj(silu(gate_proj n) · up_proj n),  n = post_attention_layernorm(x)
 * </pre>
 *
 * and returns h, the pre-norm hidden state; {@link #logits} applies {@code norm} and {@code lm_head} (draft
 * vocabulary). The first row of a chain reads g = {@link #project fc}(the target's three taps); each later draft
 * step reads the previous step's h. Speculative decoding keeps one {@link Cache} per sequence: the rows of accepted
 * tokens stay, a rejected chain is {@linkplain Cache#truncate truncated} away.
 *
 * <p>The head runs on its kernels' {@link Backend}: the weights are made resident on first use and kept until
 * {@link #close()}, the cache lives there, and the {@link Buf} forms of {@link #project}, {@link #step} and {@link
 * #logits} keep the hidden states there between steps, so that a draft step moves only its inputs (features,
 * embedding rows) in and its logits out. The host-array forms wrap and take around them, bit for bit the same.
 */
public final class DraftModel implements AutoCloseable {
    private final DraftHead head;
    private final DraftConfig cfg;
    private final Matrix fc;
    private final Matrix q;
    private final Matrix k;
    private final Matrix v;
    private final Matrix o;
    private final Matrix gate;
    private final Matrix up;
    private final Matrix down;
    private final Matrix lmHead;
    private final Rope rope;
    private final boolean packBf16;
    private final Backend backend;
    private Resident resident;

    public DraftModel(DraftHead head, Kernels kernels) {
        this(head, kernels, true);
    }

    /** With {@code packBf16} false every weight stays fp32 (the test of the bf16 packing's exactness). */
    DraftModel(DraftHead head, Kernels kernels, boolean packBf16) {
        this.packBf16 = packBf16;
        this.head = head;
        this.cfg = head.config();
        this.backend = kernels.backend();
        int h = cfg.hiddenSize();
        fc = matrix(DraftHead.FC, h, 3 * h);
        q = matrix(DraftHead.Q, cfg.qDim(), 2 * h);
        k = matrix(DraftHead.K, cfg.kvDim(), 2 * h);
        v = matrix(DraftHead.V, cfg.kvDim(), 2 * h);
        o = matrix(DraftHead.O, h, cfg.qDim());
        gate = matrix(DraftHead.GATE, cfg.intermediateSize(), h);
        up = matrix(DraftHead.UP, cfg.intermediateSize(), h);
        down = matrix(DraftHead.DOWN, h, cfg.intermediateSize());
        lmHead = matrix(DraftHead.LM_HEAD, cfg.draftVocabSize(), h);
        rope = Rope.of(cfg.headDim(), cfg.ropeTheta(), cfg.scaling());
        long hs = h;
        long inter = cfg.intermediateSize();
        scratchPerRow =
                new long[] {hs, hs, 2 * hs, cfg.qDim(), cfg.kvDim(), cfg.kvDim(), cfg.qDim(), hs, inter, inter, hs};
    }

    /**
     * The weight as the kernels read it: bf16 when every value is a bf16 number (a head read from disk), which halves
     * the bytes each draft step streams and gives the same products bit for bit (the kernels widen bf16 to the same
     * floats and sum in the same order); fp32 otherwise (a head in training).
     */
    private Matrix matrix(String name, int rows, int cols) {
        float[] w = head.weight(name);
        if (!packBf16) {
            return new Matrix.F32(w, rows, cols);
        }
        byte[] bytes = new byte[2 * w.length];
        for (int i = 0; i < w.length; i++) {
            if (Bf16.round(w[i]) != w[i] && !Float.isNaN(w[i])) {
                return new Matrix.F32(w, rows, cols);
            }
            short b = Bf16.fromFloat(w[i]);
            bytes[2 * i] = (byte) b;
            bytes[2 * i + 1] = (byte) (b >> 8);
        }
        return new Matrix.Bf16(MemorySegment.ofArray(bytes), rows, cols);
    }

    public DraftHead head() {
        return head;
    }

    public DraftConfig config() {
        return cfg;
    }

    /** The backend the head runs on (its kernels' {@link Kernels#backend()}). */
    public Backend backend() {
        return backend;
    }

    /**
     * The draft layer's keys (after RoPE) and values of one sequence: [capacity, kvDim] each, resident on the
     * head's backend (device memory under CUDA). {@link #close()} frees them.
     */
    public static final class Cache implements AutoCloseable {
        private final Backend backend;
        private final Buf keys;
        private final Buf values;
        private final int capacity;
        private int length;
        /** The step's intermediate buffers, for {@link #scratchRows} rows; grown on demand, kept until close */
        private Buf[] scratch;

        private int scratchRows;

        Cache(Backend backend, int capacity, int kvDim) {
            if (capacity <= 0) {
                throw new IllegalArgumentException("draft cache capacity must be positive, got " + capacity);
            }
            this.backend = backend;
            this.capacity = capacity;
            keys = backend.alloc((long) capacity * kvDim);
            try {
                values = backend.alloc((long) capacity * kvDim);
            } catch (RuntimeException | Error e) {
                keys.close();
                throw e;
            }
        }

        public int length() {
            return length;
        }

        public int capacity() {
            return capacity;
        }

        /**
         * Drops the rows from position {@code newLength} on: only the length moves (nothing is copied or cleared);
         * the next append overwrites the dropped rows.
         */
        public void truncate(int newLength) {
            if (newLength < 0 || newLength > length) {
                throw new IllegalArgumentException(
                        "cannot truncate a draft cache of " + length + " rows to " + newLength);
            }
            length = newLength;
        }

        /**
         * A step's intermediate buffers for at least {@code rows} rows, {@code perRow[i]} floats per row each, made
         * on first use and remade only for more rows than any step before: steps of as many rows or fewer (a draft
         * chain's single rows) allocate nothing.
         */
        Buf[] scratch(int rows, long[] perRow) {
            if (scratch == null || rows > scratchRows) {
                freeScratch();
                Buf[] made = new Buf[perRow.length];
                try {
                    for (int i = 0; i < perRow.length; i++) {
                        made[i] = backend.alloc(rows * perRow[i]);
                    }
                } catch (RuntimeException | Error e) {
                    for (Buf b : made) {
                        if (b != null) {
                            b.close();
                        }
                    }
                    throw e;
                }
                scratch = made;
                scratchRows = rows;
            }
            return scratch;
        }

        private void freeScratch() {
            if (scratch != null) {
                for (Buf b : scratch) {
                    b.close();
                }
                scratch = null;
                scratchRows = 0;
            }
        }

        @Override
        public void close() {
            keys.close();
            values.close();
            freeScratch();
        }
    }

    /** The intermediate buffers of a step, by index into {@link Cache#scratch}. */
    private static final int EN = 0, GN = 1, A = 2, QA = 3, KA = 4, VA = 5, ATTN = 6, N = 7, GT = 8, UT = 9, D = 10;

    /** Floats per row of each intermediate buffer of a step, in index order. */
    private final long[] scratchPerRow;

    public Cache newCache(int capacity) {
        return new Cache(backend, capacity, cfg.kvDim());
    }

    /** The head's weights resident on the backend. */
    private record Resident(
            Backend.Weight fc,
            Backend.Weight q,
            Backend.Weight k,
            Backend.Weight v,
            Backend.Weight o,
            Backend.Weight gate,
            Backend.Weight up,
            Backend.Weight down,
            Backend.Weight lmHead,
            Buf inputNorm,
            Buf hiddenNorm,
            Buf postNorm,
            Buf norm,
            Buf invFreq)
            implements AutoCloseable {
        @Override
        public void close() {
            for (AutoCloseable c : new AutoCloseable[] {
                fc, q, k, v, o, gate, up, down, lmHead, inputNorm, hiddenNorm, postNorm, norm, invFreq
            }) {
                if (c instanceof Buf b) {
                    b.close();
                } else if (c instanceof Backend.Weight w) {
                    w.close();
                }
            }
        }
    }

    /** The weights on the backend, uploaded on first use (each crosses once) and kept until {@link #close()}. */
    private synchronized Resident resident() {
        if (resident == null) {
            List<AutoCloseable> made = new ArrayList<>();
            try {
                Backend.Weight[] ws = new Backend.Weight[9];
                Matrix[] ms = {fc, q, k, v, o, gate, up, down, lmHead};
                for (int i = 0; i < ms.length; i++) {
                    ws[i] = backend.weight(ms[i]);
                    made.add(ws[i]);
                }
                Buf[] bs = new Buf[5];
                float[][] vs = {
                    head.weight(DraftHead.INPUT_NORM),
                    head.weight(DraftHead.HIDDEN_NORM),
                    head.weight(DraftHead.POST_NORM),
                    head.weight(DraftHead.NORM),
                    rope.inverseFrequencies()
                };
                for (int i = 0; i < vs.length; i++) {
                    bs[i] = backend.wrap(vs[i].clone());
                    made.add(bs[i]);
                }
                resident = new Resident(
                        ws[0], ws[1], ws[2], ws[3], ws[4], ws[5], ws[6], ws[7], ws[8], bs[0], bs[1], bs[2], bs[3],
                        bs[4]);
            } catch (RuntimeException | Error e) {
                for (AutoCloseable c : made) {
                    if (c instanceof Buf b) {
                        b.close();
                    } else if (c instanceof Backend.Weight w) {
                        w.close();
                    }
                }
                throw e;
            }
        }
        return resident;
    }

    /** Frees the resident weights (the next step uploads them again). */
    @Override
    public synchronized void close() {
        if (resident != null) {
            resident.close();
            resident = null;
        }
    }

    /**
     * A host array as a buffer of the backend for an operation that only reads it, so the caller keeps its array
     * (Backend#wrap: the Java backend holds it without a copy, a device backend copies it in).
     */
    private Buf in(float[] x) {
        return backend.wrap(x);
    }

    /** g = fc(features): features [rows, 3H] (the taps low, mid, high side by side) → [rows, H]. */
    public float[] project(float[] features, int rows) {
        try (Buf f = in(features)) {
            return backend.take(project(f, rows));
        }
    }

    /**
     * {@link #project(float[], int)} on the backend: the first rows·3H values of {@code features} (it may hold more
     * rows: a verify forward's features, of which only the accepted rows are appended) → a new buffer [rows, H] that
     * the caller closes.
     */
    public Buf project(Buf features, int rows) {
        Buf g = backend.alloc((long) rows * cfg.hiddenSize());
        try {
            project(features, rows, g);
            return g;
        } catch (RuntimeException | Error e) {
            g.close();
            throw e;
        }
    }

    /** {@link #project(Buf, int)} into {@code out} [≥ rows·H]: no allocation. */
    public void project(Buf features, int rows, Buf out) {
        int h = cfg.hiddenSize();
        if (features.length() < (long) rows * 3 * h || out.length() < (long) rows * h) {
            throw new IllegalArgumentException(
                    "draft fc: features must hold [" + rows + ", " + 3 * h + "], out [" + rows + ", " + h + "]");
        }
        backend.matmul(features, rows, resident().fc(), null, out);
    }

    /**
     * One layer pass over {@code rows} new rows appended to {@code cache} (positions cache.length()..): g, emb [rows,
     * H] → the pre-norm hidden state [rows, H]. The cache grows by {@code rows}.
     */
    public float[] step(float[] g, float[] emb, int rows, Cache cache) {
        try (Buf gb = in(g);
                Buf eb = in(emb)) {
            return backend.take(step(gb, eb, rows, cache));
        }
    }

    /**
     * {@link #step(float[], float[], int, Cache)} on the backend: g and emb [rows, H] (not written) → a new buffer
     * [rows, H] that the caller closes. Nothing crosses the boundary.
     */
    public Buf step(Buf g, Buf emb, int rows, Cache cache) {
        Buf x = backend.alloc((long) rows * cfg.hiddenSize());
        try {
            step(g, emb, rows, cache, x);
            return x;
        } catch (RuntimeException | Error e) {
            x.close();
            throw e;
        }
    }

    /**
     * {@link #step(Buf, Buf, int, Cache)} into {@code out} [≥ rows·H], which must not be g or emb: the intermediate
     * buffers are the cache's (made for the largest row count so far, then reused), so a step of no more rows than an
     * earlier one allocates nothing. The same operations in the same order, so the same bits.
     */
    public void step(Buf g, Buf emb, int rows, Cache cache, Buf out) {
        int h = cfg.hiddenSize();
        long lh = (long) rows * h;
        if (g.length() < lh || emb.length() < lh || out.length() < lh) {
            throw new IllegalArgumentException("draft step: g, emb and out must hold [" + rows + ", " + h + "]");
        }
        if (out == g || out == emb) {
            throw new IllegalArgumentException("draft step: out must not be an input");
        }
        int start = cache.length;
        if (start + rows > cache.capacity) {
            throw new IllegalArgumentException(
                    "draft cache of " + cache.capacity + " rows cannot hold " + (start + rows));
        }
        Resident w = resident();
        Buf[] t = cache.scratch(rows, scratchPerRow);
        float eps = (float) cfg.rmsNormEps();
        int kvDim = cfg.kvDim();
        int heads = cfg.numHeads();
        int kvHeads = cfg.numKvHeads();
        int headDim = cfg.headDim();
        Buf x = out;
        backend.rmsNorm(emb, rows, h, w.inputNorm(), eps, t[EN]);
        backend.rmsNorm(g, rows, h, w.hiddenNorm(), eps, t[GN]);
        for (int r = 0; r < rows; r++) {
            backend.copy(t[EN], (long) r * h, t[A], (long) r * 2 * h, h);
            backend.copy(t[GN], (long) r * h, t[A], (long) r * 2 * h + h, h);
        }
        backend.matmul(t[A], rows, w.q(), null, t[QA]);
        backend.matmul(t[A], rows, w.k(), null, t[KA]);
        backend.matmul(t[A], rows, w.v(), null, t[VA]);
        rope.apply(backend, t[QA], rows, heads, w.invFreq(), start, rows);
        rope.apply(backend, t[KA], rows, kvHeads, w.invFreq(), start, rows);
        backend.copy(t[KA], 0, cache.keys, (long) start * kvDim, (long) rows * kvDim);
        backend.copy(t[VA], 0, cache.values, (long) start * kvDim, (long) rows * kvDim);
        backend.attention(t[QA], cache.keys, cache.values, 1, rows, start, heads, kvHeads, headDim, t[ATTN]);
        cache.length = start + rows;
        backend.matmul(t[ATTN], rows, w.o(), null, x);
        backend.add(x, g, x, lh);
        long li = (long) rows * cfg.intermediateSize();
        backend.rmsNorm(x, rows, h, w.postNorm(), eps, t[N]);
        backend.matmul(t[N], rows, w.gate(), null, t[GT]);
        backend.matmul(t[N], rows, w.up(), null, t[UT]);
        backend.swiglu(t[GT], t[UT], li);
        backend.matmul(t[GT], rows, w.down(), null, t[D]);
        backend.add(x, t[D], x, lh);
    }

    /** lm_head(norm(h)): h [rows, H] → logits over the draft vocabulary [rows, V_d]. */
    public float[] logits(float[] h, int rows) {
        try (Buf hb = in(h)) {
            return backend.take(logits(hb, rows));
        }
    }

    /** {@link #logits(float[], int)} on the backend: h [rows, H] (not written) → a new buffer [rows, V_d]. */
    public Buf logits(Buf h, int rows) {
        int hd = cfg.hiddenSize();
        if (h.length() != (long) rows * hd) {
            throw new IllegalArgumentException("draft logits: h must be [" + rows + ", " + hd + "]");
        }
        Resident w = resident();
        Buf out = backend.alloc((long) rows * cfg.draftVocabSize());
        try (Buf n = backend.alloc((long) rows * hd)) {
            backend.rmsNorm(h, rows, hd, w.norm(), (float) cfg.rmsNormEps(), n);
            backend.matmul(n, rows, w.lmHead(), null, out);
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /**
     * {@link #logits(Buf, int)} into {@code out} [≥ rows·V_d], the norm in the cache's intermediate buffers: no
     * allocation once the cache has run a step of as many rows. The same bits.
     */
    public void logits(Buf h, int rows, Cache cache, Buf out) {
        int hd = cfg.hiddenSize();
        if (h.length() < (long) rows * hd || out.length() < (long) rows * cfg.draftVocabSize()) {
            throw new IllegalArgumentException(
                    "draft logits: h must hold [" + rows + ", " + hd + "], out [" + rows + ", V_d]");
        }
        Resident w = resident();
        Buf n = cache.scratch(rows, scratchPerRow)[N];
        backend.rmsNorm(h, rows, hd, w.norm(), (float) cfg.rmsNormEps(), n);
        backend.matmul(n, rows, w.lmHead(), null, out);
    }
}
