package dev.m2q.core.model;

import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.PackedRows;
import java.util.List;

/**
 * One decoder layer of the Qwen2/Llama family, the unit the quantizers work on:
 * x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x)))) then + down(silu(gate(n2(·))) · up(n2(·))).
 * Weights stay bf16 (usually zero-copy views of the mapped checkpoint); activations and accumulation are fp32,
 * unless an {@link ActivationQuant} simulates lower-precision activations and KV cache.
 *
 * <p>The forward runs on the kernels' {@link Backend}: the weights are made resident once ({@link Resident}, kept
 * until {@link #close()}), activations stay there between the operations, and only the layer's input and output
 * cross (and the KV cache never does). The host-array forwards wrap their input and take their output, which on the
 * Java backend copies nothing.
 */
public final class DecoderLayer implements AutoCloseable {
    /** The linears that share each input, in the order the forward computes them. */
    public static final List<String> QKV = Proj.paths(Proj.GROUPS.get(0));

    public static final List<String> O = Proj.paths(Proj.GROUPS.get(1));
    public static final List<String> GATE_UP = Proj.paths(Proj.GROUPS.get(2));
    public static final List<String> DOWN = Proj.paths(Proj.GROUPS.get(3));

    /**
     * A layer's parameters. Norm weights [hidden]; q [qDim, hidden], k and v [kvDim, hidden], o [hidden, qDim],
     * gate and up [intermediate, hidden], down [hidden, intermediate]; biases [out] or null.
     */
    public record Weights(
            float[] inputNorm,
            Matrix q,
            float[] qBias,
            Matrix k,
            float[] kBias,
            Matrix v,
            float[] vBias,
            Matrix o,
            float[] postNorm,
            Matrix gate,
            Matrix up,
            Matrix down) {

        /** The same weights with linear {@code module} (e.g. "mlp.up_proj") replaced. */
        public Weights with(String module, Matrix m) {
            return with(Proj.of(module), m);
        }

        /** The same weights with linear {@code p} replaced. */
        public Weights with(Proj p, Matrix m) {
            Matrix[] l = {q, k, v, o, gate, up, down};
            l[p.ordinal()] = m;
            return new Weights(inputNorm, l[0], qBias, l[1], kBias, l[2], vBias, l[3], postNorm, l[4], l[5], l[6]);
        }

        /** Linear {@code module} by its name relative to the layer. */
        public Matrix linear(String module) {
            return linear(Proj.of(module));
        }

        /** Linear {@code p}. */
        public Matrix linear(Proj p) {
            return new Matrix[] {q, k, v, o, gate, up, down}[p.ordinal()];
        }
    }

    /**
     * A layer's weights resident on a {@link Backend}: the linears as {@link Backend.Weight}s, norms and biases as
     * buffers (biases null when the model has none). {@link #close()} frees them all.
     */
    public record Resident(
            Buf inputNorm,
            Backend.Weight q,
            Buf qBias,
            Backend.Weight k,
            Buf kBias,
            Backend.Weight v,
            Buf vBias,
            Backend.Weight o,
            Buf postNorm,
            Backend.Weight gate,
            Backend.Weight up,
            Backend.Weight down)
            implements AutoCloseable {

        /** Uploads {@code w} to {@code backend}: each matrix and vector crosses once. */
        public static Resident upload(Backend backend, Weights w) {
            return new Resident(
                    backend.wrap(w.inputNorm().clone()),
                    backend.weight(w.q()),
                    w.qBias() == null ? null : backend.wrap(w.qBias().clone()),
                    backend.weight(w.k()),
                    w.kBias() == null ? null : backend.wrap(w.kBias().clone()),
                    backend.weight(w.v()),
                    w.vBias() == null ? null : backend.wrap(w.vBias().clone()),
                    backend.weight(w.o()),
                    backend.wrap(w.postNorm().clone()),
                    backend.weight(w.gate()),
                    backend.weight(w.up()),
                    backend.weight(w.down()));
        }

        /**
         * The same weights with linear {@code module} replaced by {@code m} (the old one is not closed: the caller
         * owns both).
         */
        public Resident with(String module, Backend.Weight m) {
            Backend.Weight[] l = {q, k, v, o, gate, up, down};
            l[Proj.of(module).ordinal()] = m;
            return new Resident(inputNorm, l[0], qBias, l[1], kBias, l[2], vBias, l[3], postNorm, l[4], l[5], l[6]);
        }

        /** Linear {@code module} by its name relative to the layer. */
        public Backend.Weight linear(String module) {
            return new Backend.Weight[] {q, k, v, o, gate, up, down}
                    [Proj.of(module).ordinal()];
        }

        @Override
        public void close() {
            for (AutoCloseable c :
                    new AutoCloseable[] {inputNorm, q, qBias, k, kBias, v, vBias, o, postNorm, gate, up, down}) {
                if (c instanceof Buf b) {
                    b.close();
                } else if (c instanceof Backend.Weight x) {
                    x.close();
                }
            }
        }
    }

    private final ModelConfig cfg;
    private final int index;
    private final Weights w;
    private final Kernels kernels;
    private final Backend backend;
    private final Rope rope;
    private final ActivationQuant activationQuant;
    private Resident resident;
    private Buf invFreq;

    public DecoderLayer(ModelConfig cfg, int index, Weights w, Kernels kernels) {
        this(cfg, index, w, kernels, kernels.backend(), ActivationQuant.NONE);
    }

    private DecoderLayer(
            ModelConfig cfg, int index, Weights w, Kernels kernels, Backend backend, ActivationQuant activationQuant) {
        this.cfg = cfg;
        this.index = index;
        this.w = w;
        this.kernels = kernels;
        this.backend = backend;
        this.rope = Rope.of(cfg);
        this.activationQuant = activationQuant;
    }

    public int index() {
        return index;
    }

    public Weights weights() {
        return w;
    }

    /** The backend this layer runs on. */
    public Backend backend() {
        return backend;
    }

    /** This layer with other weights (for example quantized ones), same index and kernels. */
    public DecoderLayer withWeights(Weights other) {
        return new DecoderLayer(cfg, index, other, kernels, backend, activationQuant);
    }

    /** This layer (same weights, shared) running its linear inputs and keys/values through {@code aq}. */
    public DecoderLayer withActivationQuant(ActivationQuant aq) {
        return new DecoderLayer(cfg, index, w, kernels, backend, aq);
    }

    /** The weights resident on {@link #backend()}, uploaded on first use and kept until {@link #close()}. */
    public synchronized Resident resident() {
        if (resident == null) {
            resident = Resident.upload(backend, w);
        }
        return resident;
    }

    /** Frees the resident weights (the next forward uploads them again). */
    @Override
    public synchronized void close() {
        if (resident != null) {
            resident.close();
            resident = null;
        }
        if (invFreq != null) {
            invFreq.close();
            invFreq = null;
        }
    }

    /**
     * Runs the layer on {@code nSeq} independent sequences of {@code seqLen} tokens each, the calibration
     * batch shape: x [nSeq·seqLen, hidden] fp32 row-major, positions 0..seqLen−1 in every sequence. Returns a
     * new array of the same shape (or null when {@code obs} said {@link LayerObserver#enough()}); x is not
     * modified.
     */
    public float[] forward(float[] x, int nSeq, int seqLen, LayerObserver obs) {
        return hostForward(x, nSeq, seqLen, 0, null, obs);
    }

    /**
     * Runs the layer on one sequence's next {@code seqLen} tokens at positions startPos.., attending to the
     * {@code startPos} tokens already in {@code cache} (which it extends; the model advances the cache length
     * after the last layer). x [seqLen, hidden].
     */
    public float[] forward(float[] x, int seqLen, int startPos, KvCache cache, LayerObserver obs) {
        return hostForward(x, 1, seqLen, startPos, cache, obs);
    }

    private float[] hostForward(float[] x, int nSeq, int seqLen, int startPos, KvCache cache, LayerObserver obs) {
        checkInput(x.length, nSeq * seqLen);
        // The resident forward never writes its input, so the Java backend may hold x itself (Backend#wrap).
        Buf in = backend.wrap(x);
        try {
            Buf out = forward(resident(), in, nSeq, seqLen, startPos, cache, obs);
            return out == null ? null : backend.take(out);
        } finally {
            in.close();
        }
    }

    private void checkInput(long values, int rows) {
        if (values != (long) rows * cfg.hiddenSize()) {
            throw new IllegalArgumentException(
                    "layer input has " + values + " values, expected [" + rows + ", " + cfg.hiddenSize() + "]");
        }
    }

    /**
     * The forward on resident data: {@code x} [nSeq·seqLen, hidden] on {@link #backend()} (not written), weights
     * {@code rw} (this layer's {@link #resident()} or a variant of it, such as with a quantized linear), and, for
     * incremental decoding, a {@code cache} on the same backend (nSeq 1) that it extends at startPos. Returns a new
     * buffer [nSeq·seqLen, hidden] that the caller closes, or null when {@code obs} said enough. Nothing crosses
     * the boundary unless {@code obs} or an {@link ActivationQuant} asks for host arrays.
     */
    public Buf forward(Resident rw, Buf x, int nSeq, int seqLen, int startPos, KvCache cache, LayerObserver obs) {
        if (cache != null && nSeq != 1) {
            throw new IllegalArgumentException("a KV cache serves one sequence, not " + nSeq);
        }
        return pass(rw, x, nSeq * seqLen, nSeq, seqLen, startPos, cache, null, null, obs);
    }

    /**
     * The forward of packed rows ({@link PackedRows}): several sequences, or a context and its continuations, in
     * one pass of {@code layout.rows()} rows, each row rotated at its own position and attending to the keys the
     * layout gives it ({@link Backend#ropePacked}, {@link Backend#attentionPacked}); everything else is per row.
     * So a row gets the bits it gets in {@link #forward(Resident, Buf, int, int, int, KvCache, LayerObserver)} when
     * it sees the same keys there (a continuation's rows after its context from a KV cache), provided the {@link
     * ActivationQuant}, if any, works row by row (as the simulated 8-bit schemes do). x [rows, hidden] on {@link
     * #backend()} (not written); returns a new buffer [rows, hidden] that the caller closes, or null when {@code obs}
     * said enough. No KV cache: the rows' own keys and values are the attention's.
     */
    public Buf forwardPacked(Resident rw, Buf x, PackedRows layout, LayerObserver obs) {
        return pass(rw, x, layout.rows(), 1, layout.rows(), 0, null, layout, null, obs);
    }

    /**
     * A calibration pass that picks the layer up at a {@link Midpoint} an earlier pass computed ({@code from}, on
     * {@link #backend()}, read and not closed): the rest of the layer on those values, with the observer shown only
     * what comes after the midpoint. x [nSeq·seqLen, hidden] is the layer's input, for the residual after the
     * attention (not read, and may be null, when starting at {@link Midpoint#RESIDUAL}); positions 0..seqLen−1, no
     * cache. With {@code rw} equal to the earlier pass's weights up to the midpoint ({@link Midpoint#sameWeights})
     * every tensor after it has the bits of the whole pass, because each is computed from the same values by the
     * same operations. Returns a new buffer [nSeq·seqLen, hidden] that the caller closes, or null when {@code obs}
     * said enough.
     */
    public Buf forwardFrom(Resident rw, Buf x, int nSeq, int seqLen, Start from, LayerObserver obs) {
        int rows = nSeq * seqLen;
        long need = (long) rows * from.at().width(cfg);
        if (from.values().length() != need) {
            throw new IllegalArgumentException(
                    from.at() + " midpoint has " + from.values().length() + " values, expected " + need);
        }
        return pass(rw, x, rows, nSeq, seqLen, 0, null, null, from, obs);
    }

    /**
     * Where a pass can pick up a layer an earlier pass over the same input ran: a tensor that depends only on the
     * input and the weights before it. {@link LayerObserver#midpoint} shows each as the pass computes it.
     */
    public enum Midpoint {
        /**
         * o_proj's input, the attention's output [rows, qDim] (after any simulated quantization of that input): a
         * function of the input, the input norm, q, k, v and their biases.
         */
        ATTENTION,
        /** The residual stream after the attention block, x + o(attention) [rows, hidden]: o_proj too. */
        RESIDUAL;

        /** Values per row. */
        public int width(ModelConfig cfg) {
            return this == ATTENTION ? cfg.qDim() : cfg.hiddenSize();
        }

        /** Whether {@code a} and {@code b} hold the same objects for every weight this midpoint depends on. */
        public boolean sameWeights(Resident a, Resident b) {
            boolean attention = a.inputNorm() == b.inputNorm()
                    && a.q() == b.q()
                    && a.qBias() == b.qBias()
                    && a.k() == b.k()
                    && a.kBias() == b.kBias()
                    && a.v() == b.v()
                    && a.vBias() == b.vBias();
            return attention && (this == ATTENTION || a.o() == b.o());
        }

        /** The latest midpoint that {@code module}'s input comes after, or null for q, k and v (the first inputs). */
        public static Midpoint before(String module) {
            return switch (Proj.of(module)) {
                case Q, K, V -> null;
                case O -> ATTENTION;
                case GATE, UP, DOWN -> RESIDUAL;
            };
        }
    }

    /** A pass's starting point: midpoint {@code at}'s values for the pass's rows. */
    public record Start(Midpoint at, Buf values) {}

    /** The layer on {@code rows} rows: a batch of nSeq·seqLen (with a cache or not), or packed rows. */
    private Buf pass(
            Resident rw,
            Buf x,
            int rows,
            int nSeq,
            int seqLen,
            int startPos,
            KvCache cache,
            PackedRows packed,
            Start from,
            LayerObserver obs) {
        int hidden = cfg.hiddenSize();
        boolean fromResidual = from != null && from.at() == Midpoint.RESIDUAL;
        if (!fromResidual) {
            checkInput(x.length(), rows);
        }
        long ld = (long) rows;
        try (Buf h = backend.alloc(ld * hidden)) {
            Buf x2;
            if (fromResidual) {
                // the pass adds down_proj's output into x2 and returns it: a copy, the midpoint stays as it was
                x2 = backend.alloc(ld * hidden);
                backend.copy(from.values(), 0, x2, 0, ld * hidden);
            } else {
                x2 = attentionBlock(rw, x, h, rows, nSeq, seqLen, startPos, cache, packed, from, obs);
                if (x2 == null) {
                    return null;
                }
            }
            return mlpBlock(rw, x2, h, rows, obs);
        }
    }

    /**
     * The attention block, from the input x (or from the attention's output in {@code from}): x + o(attention),
     * a new buffer the caller owns, or null when {@code obs} said enough. h [rows, hidden] is scratch.
     */
    private Buf attentionBlock(
            Resident rw,
            Buf x,
            Buf h,
            int rows,
            int nSeq,
            int seqLen,
            int startPos,
            KvCache cache,
            PackedRows packed,
            Start from,
            LayerObserver obs) {
        int hidden = cfg.hiddenSize();
        int qDim = cfg.qDim();
        long ld = (long) rows;
        Buf x2;
        if (from != null) {
            // from.at() is ATTENTION here: the attention's output as an earlier pass left it
            obs.linearInput(Proj.O.path(), backend, from.values(), rows, qDim);
            if (obs.enough()) {
                return null;
            }
            x2 = backend.alloc(ld * hidden);
            backend.matmul(from.values(), rows, rw.o(), null, x2);
        } else {
            int kvDim = cfg.kvDim();
            int heads = cfg.numHeads();
            int kvHeads = cfg.numKvHeads();
            int headDim = cfg.headDim();
            if (groupInput(x, rw.inputNorm(), QKV, h, rows, obs)) {
                return null;
            }
            try (Buf q = backend.alloc(ld * qDim);
                    Buf k = backend.alloc(ld * kvDim);
                    Buf v = backend.alloc(ld * kvDim);
                    Buf attn = backend.alloc(ld * qDim)) {
                backend.matmul(h, rows, rw.q(), rw.qBias(), q);
                backend.matmul(h, rows, rw.k(), rw.kBias(), k);
                backend.matmul(h, rows, rw.v(), rw.vBias(), v);
                if (packed != null) {
                    ropePacked(q, heads, packed);
                    ropePacked(k, kvHeads, packed);
                } else {
                    rope(q, rows, heads, startPos, seqLen);
                    rope(k, rows, kvHeads, startPos, seqLen);
                }
                if (activationQuant != ActivationQuant.NONE) {
                    backend.update(
                            k,
                            kh -> backend.update(
                                    v, vh -> activationQuant.keysValues(index, kh, vh, rows, kvHeads, headDim)));
                }
                obs.keysValues(backend, k, v, rows, kvDim);
                if (packed != null) {
                    backend.attentionPacked(q, k, v, packed, heads, kvHeads, headDim, attn);
                } else if (cache != null) {
                    if (startPos + seqLen > cache.capacity()) {
                        throw new IllegalArgumentException(
                                "KV cache of " + cache.capacity() + " tokens cannot hold " + (startPos + seqLen));
                    }
                    backend.copy(k, 0, cache.keys(index), (long) startPos * kvDim, ld * kvDim);
                    backend.copy(v, 0, cache.values(index), (long) startPos * kvDim, ld * kvDim);
                    backend.attention(
                            q,
                            cache.keys(index),
                            cache.values(index),
                            1,
                            seqLen,
                            startPos,
                            heads,
                            kvHeads,
                            headDim,
                            attn);
                } else {
                    backend.attention(q, k, v, nSeq, seqLen, 0, heads, kvHeads, headDim, attn);
                }
                quantizeInput(O, attn, rows, qDim);
                obs.midpoint(Midpoint.ATTENTION, backend, attn, rows, qDim);
                obs.linearInput(Proj.O.path(), backend, attn, rows, qDim);
                if (obs.enough()) {
                    return null;
                }
                x2 = backend.alloc(ld * hidden);
                backend.matmul(attn, rows, rw.o(), null, x2);
            }
        }
        try {
            backend.add(x, x2, x2, ld * hidden);
            obs.midpoint(Midpoint.RESIDUAL, backend, x2, rows, hidden);
            return x2;
        } catch (RuntimeException | Error e) {
            x2.close();
            throw e;
        }
    }

    /** The MLP block on the residual x2 (owned: returned as the layer's output, or closed); h is scratch. */
    private Buf mlpBlock(Resident rw, Buf x2, Buf h, int rows, LayerObserver obs) {
        int hidden = cfg.hiddenSize();
        int inter = cfg.intermediateSize();
        long ld = (long) rows;
        boolean done = false;
        try {
            if (groupInput(x2, rw.postNorm(), GATE_UP, h, rows, obs)) {
                return null;
            }
            try (Buf g = backend.alloc(ld * inter);
                    Buf u = backend.alloc(ld * inter);
                    Buf o = backend.alloc(ld * hidden)) {
                backend.matmul(h, rows, rw.gate(), null, g);
                backend.matmul(h, rows, rw.up(), null, u);
                backend.swiglu(g, u, ld * inter);
                quantizeInput(DOWN, g, rows, inter);
                obs.linearInput(Proj.DOWN.path(), backend, g, rows, inter);
                if (obs.enough()) {
                    return null;
                }
                backend.matmul(g, rows, rw.down(), null, o);
                backend.add(x2, o, x2, ld * hidden);
            }
            done = true;
            return x2;
        } finally {
            if (!done) {
                x2.close();
            }
        }
    }

    /**
     * h = the RMS norm of x with {@code norm}, the input {@code group}'s linears share (after any simulated
     * quantization), shown to {@code obs} for each of them; true when obs has enough.
     */
    private boolean groupInput(Buf x, Buf norm, List<String> group, Buf h, int rows, LayerObserver obs) {
        int hidden = cfg.hiddenSize();
        backend.rmsNorm(x, rows, hidden, norm, (float) cfg.rmsNormEps(), h);
        quantizeInput(group, h, rows, hidden);
        for (String m : group) {
            obs.linearInput(m, backend, h, rows, hidden);
        }
        return obs.enough();
    }

    private void rope(Buf x, int rows, int heads, int startPos, int seqLen) {
        rope.apply(backend, x, rows, heads, invFreq(), startPos, seqLen);
    }

    /** {@link Rope#apply(Backend, Buf, int, int, Buf, int, int)} with each row at its packed position. */
    private void ropePacked(Buf x, int heads, PackedRows layout) {
        int headDim = cfg.headDim();
        backend.ropePacked(x, heads, headDim, invFreq(), layout);
        if (rope.attentionFactor() != 1f) {
            backend.scale(x, (long) layout.rows() * heads * headDim, rope.attentionFactor());
        }
    }

    private synchronized Buf invFreq() {
        if (invFreq == null) {
            invFreq = backend.wrap(rope.inverseFrequencies());
        }
        return invFreq;
    }

    private void quantizeInput(List<String> modules, Buf x, int rows, int cols) {
        if (activationQuant != ActivationQuant.NONE) {
            backend.update(x, a -> activationQuant.linearInput(index, modules, a, rows, cols));
        }
    }
}
