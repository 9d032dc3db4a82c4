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
        return pass(rw, x, nSeq * seqLen, nSeq, seqLen, startPos, cache, null, obs);
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
        return pass(rw, x, layout.rows(), 1, layout.rows(), 0, null, layout, obs);
    }

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
            LayerObserver obs) {
        int hidden = cfg.hiddenSize();
        checkInput(x.length(), rows);
        int qDim = cfg.qDim();
        int kvDim = cfg.kvDim();
        int heads = cfg.numHeads();
        int kvHeads = cfg.numKvHeads();
        int headDim = cfg.headDim();
        float eps = (float) cfg.rmsNormEps();
        long ld = (long) rows;

        try (Buf h = backend.alloc(ld * hidden)) {
            backend.rmsNorm(x, rows, hidden, rw.inputNorm(), eps, h);
            quantizeInput(QKV, h, rows, hidden);
            for (String m : QKV) {
                obs.linearInput(m, backend, h, rows, hidden);
            }
            if (obs.enough()) {
                return null;
            }
            Buf x2;
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
                obs.linearInput(Proj.O.path(), backend, attn, rows, qDim);
                if (obs.enough()) {
                    return null;
                }
                x2 = backend.alloc(ld * hidden);
                backend.matmul(attn, rows, rw.o(), null, x2);
            }
            boolean done = false;
            try {
                backend.add(x, x2, x2, ld * hidden);
                int inter = cfg.intermediateSize();
                backend.rmsNorm(x2, rows, hidden, rw.postNorm(), eps, h);
                quantizeInput(GATE_UP, h, rows, hidden);
                for (String m : GATE_UP) {
                    obs.linearInput(m, backend, h, rows, hidden);
                }
                if (obs.enough()) {
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
