package dev.m2q.core.draft;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.model.Rope;
import dev.m2q.core.tensor.Bf16;
import java.lang.foreign.MemorySegment;

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
 */
public final class DraftModel {
    private final DraftHead head;
    private final DraftConfig cfg;
    private final Kernels kernels;
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

    public DraftModel(DraftHead head, Kernels kernels) {
        this(head, kernels, true);
    }

    /** With {@code packBf16} false every weight stays fp32 (the test of the bf16 packing's exactness). */
    DraftModel(DraftHead head, Kernels kernels, boolean packBf16) {
        this.packBf16 = packBf16;
        this.head = head;
        this.cfg = head.config();
        this.kernels = kernels;
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

    /** The draft layer's keys (after RoPE) and values of one sequence: [capacity, kvDim] each. */
    public static final class Cache {
        private final float[] keys;
        private final float[] values;
        private final int capacity;
        private int length;

        Cache(int capacity, int kvDim) {
            if (capacity <= 0) {
                throw new IllegalArgumentException("draft cache capacity must be positive, got " + capacity);
            }
            this.capacity = capacity;
            keys = new float[capacity * kvDim];
            values = new float[capacity * kvDim];
        }

        public int length() {
            return length;
        }

        public int capacity() {
            return capacity;
        }

        /** Drops the rows from position {@code newLength} on. */
        public void truncate(int newLength) {
            if (newLength < 0 || newLength > length) {
                throw new IllegalArgumentException(
                        "cannot truncate a draft cache of " + length + " rows to " + newLength);
            }
            length = newLength;
        }
    }

    public Cache newCache(int capacity) {
        return new Cache(capacity, cfg.kvDim());
    }

    /** g = fc(features): features [rows, 3H] (the taps low, mid, high side by side) → [rows, H]. */
    public float[] project(float[] features, int rows) {
        float[] g = new float[rows * cfg.hiddenSize()];
        kernels.matmul(features, rows, fc, null, g);
        return g;
    }

    /**
     * One layer pass over {@code rows} new rows appended to {@code cache} (positions cache.length()..): g, emb [rows,
     * H] → the pre-norm hidden state [rows, H]. The cache grows by {@code rows}.
     */
    public float[] step(float[] g, float[] emb, int rows, Cache cache) {
        int h = cfg.hiddenSize();
        if (g.length != rows * h || emb.length != rows * h) {
            throw new IllegalArgumentException("draft step: g and emb must be [" + rows + ", " + h + "]");
        }
        int start = cache.length;
        if (start + rows > cache.capacity) {
            throw new IllegalArgumentException(
                    "draft cache of " + cache.capacity + " rows cannot hold " + (start + rows));
        }
        float eps = (float) cfg.rmsNormEps();
        float[] en = new float[rows * h];
        float[] gn = new float[rows * h];
        kernels.rmsNorm(emb, rows, h, head.weight(DraftHead.INPUT_NORM), eps, en);
        kernels.rmsNorm(g, rows, h, head.weight(DraftHead.HIDDEN_NORM), eps, gn);
        float[] a = new float[rows * 2 * h];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(en, r * h, a, r * 2 * h, h);
            System.arraycopy(gn, r * h, a, r * 2 * h + h, h);
        }
        int qDim = cfg.qDim();
        int kvDim = cfg.kvDim();
        float[] qa = new float[rows * qDim];
        float[] ka = new float[rows * kvDim];
        float[] va = new float[rows * kvDim];
        kernels.matmul(a, rows, q, null, qa);
        kernels.matmul(a, rows, k, null, ka);
        kernels.matmul(a, rows, v, null, va);
        int[] positions = new int[rows];
        for (int r = 0; r < rows; r++) {
            positions[r] = start + r;
        }
        rope.apply(kernels, qa, rows, cfg.numHeads(), positions);
        rope.apply(kernels, ka, rows, cfg.numKvHeads(), positions);
        System.arraycopy(ka, 0, cache.keys, start * kvDim, rows * kvDim);
        System.arraycopy(va, 0, cache.values, start * kvDim, rows * kvDim);
        float[] attn = new float[rows * qDim];
        kernels.attention(
                qa, cache.keys, cache.values, 1, rows, start, cfg.numHeads(), cfg.numKvHeads(), cfg.headDim(), attn);
        cache.length = start + rows;
        float[] x = new float[rows * h];
        kernels.matmul(attn, rows, o, null, x);
        for (int i = 0; i < x.length; i++) {
            x[i] += g[i];
        }
        float[] n = new float[rows * h];
        kernels.rmsNorm(x, rows, h, head.weight(DraftHead.POST_NORM), eps, n);
        int inter = cfg.intermediateSize();
        float[] gt = new float[rows * inter];
        float[] ut = new float[rows * inter];
        kernels.matmul(n, rows, gate, null, gt);
        kernels.matmul(n, rows, up, null, ut);
        kernels.swiglu(gt, ut, gt.length);
        float[] d = new float[rows * h];
        kernels.matmul(gt, rows, down, null, d);
        for (int i = 0; i < x.length; i++) {
            x[i] += d[i];
        }
        return x;
    }

    /** lm_head(norm(h)): h [rows, H] → logits over the draft vocabulary [rows, V_d]. */
    public float[] logits(float[] h, int rows) {
        int hd = cfg.hiddenSize();
        float[] n = new float[rows * hd];
        kernels.rmsNorm(h, rows, hd, head.weight(DraftHead.NORM), (float) cfg.rmsNormEps(), n);
        float[] out = new float[rows * cfg.draftVocabSize()];
        kernels.matmul(n, rows, lmHead, null, out);
        return out;
    }
}
