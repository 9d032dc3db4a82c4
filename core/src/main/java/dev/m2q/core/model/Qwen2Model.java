package dev.m2q.core.model;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.PackedRows;
import dev.m2q.core.quant.GptqFormat;
import dev.m2q.core.quant.PackedLinears;
import dev.m2q.core.tensor.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The reference forward pass of a Qwen2-family causal LM (Qwen2ForCausalLM, LlamaForCausalLM): bf16 weights
 * read in place from the memory-mapped checkpoint, fp32 activations and accumulation. A 4-bit checkpoint (GPTQ,
 * auto_round or compressed-tensors) loads too: its linears are either dequantized to fp32 exactly as an engine
 * computes them, scale·(q − 8), or kept packed for the W4A16 kernel ({@link LoadOptions#w4Kernel}). The checkpoint stays open
 * (and mapped) until {@link #close()}.
 *
 * <p>The forwards run on the kernels' {@link Backend}: each layer's weights, the final norm and lm_head are made
 * resident on first use and kept until {@link #close()}, the hidden state stays there from layer to layer and the KV
 * cache lives there. Per forward only the embedding rows of the ids cross in (gathered on the host) and the logits
 * (and the taps asked for) cross out: a decode step moves hidden + vocab floats, whatever the number of layers. On
 * the Java backend this is the host-array forward, bit for bit.
 */
public final class Qwen2Model implements AutoCloseable {
    private final ModelConfig config;
    private final Checkpoint checkpoint;
    private final Kernels kernels;
    private final Matrix embed;
    private final List<DecoderLayer> layers;
    private final float[] finalNorm;
    private final Matrix lmHead;
    private final Backend backend;
    private final boolean ownsCheckpoint;
    private Head head;

    private Qwen2Model(
            ModelConfig config,
            Checkpoint checkpoint,
            Kernels kernels,
            Matrix embed,
            List<DecoderLayer> layers,
            float[] finalNorm,
            Matrix lmHead) {
        this(config, checkpoint, kernels, embed, layers, finalNorm, lmHead, true);
    }

    private Qwen2Model(
            ModelConfig config,
            Checkpoint checkpoint,
            Kernels kernels,
            Matrix embed,
            List<DecoderLayer> layers,
            float[] finalNorm,
            Matrix lmHead,
            boolean ownsCheckpoint) {
        this.ownsCheckpoint = ownsCheckpoint;
        this.config = config;
        this.checkpoint = checkpoint;
        this.kernels = kernels;
        this.embed = embed;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;
        this.backend = kernels.backend();
    }

    /**
     * How linears are held once read.
     *
     * @param w4Kernel keep 4-bit linears packed ({@link Matrix.W4}) and multiply with the W4A16 kernel; otherwise
     *     they are dequantized once to fp32 at load (scale·(q − 8), the engines' arithmetic)
     * @param transform applied to every quantizable linear of a bf16 checkpoint (e.g. on-the-fly RTN), or null
     */
    public record LoadOptions(boolean w4Kernel, LinearTransform transform) {
        public static final LoadOptions DEFAULT = new LoadOptions(false, null);
    }

    /** Replaces a linear's weight at load, e.g. by its quantized form. */
    @FunctionalInterface
    public interface LinearTransform {
        /** @param prefix the module, e.g. "model.layers.3.mlp.down_proj"; w its weight [out, in] */
        Matrix apply(String prefix, Matrix w);
    }

    /** Loads {@code dir} (config.json + safetensors), checking every tensor's presence and shape first. */
    public static Qwen2Model load(Path dir, Kernels kernels) {
        return load(dir, kernels, LoadOptions.DEFAULT);
    }

    /**
     * Loads {@code dir} with {@code options}. A quantized checkpoint is read through {@link PackedLinears}
     * (GPTQ, auto_round or compressed-tensors, from config.json's {@code quantization_config}).
     */
    public static Qwen2Model load(Path dir, Kernels kernels, LoadOptions options) {
        ModelConfig cfg = ModelConfig.load(dir);
        Checkpoint ckpt = Checkpoint.open(dir);
        try {
            Weights w = new Weights(ckpt, cfg, options);
            Matrix embed = w.matrix("model.embed_tokens.weight", cfg.vocabSize(), cfg.hiddenSize());
            List<DecoderLayer> layers = new ArrayList<>();
            for (int i = 0; i < cfg.numLayers(); i++) {
                layers.add(new DecoderLayer(cfg, i, layerWeights(w, cfg, i), kernels));
            }
            float[] norm = w.vector("model.norm.weight", cfg.hiddenSize());
            Matrix head =
                    cfg.tieWordEmbeddings() ? embed : w.matrix("lm_head.weight", cfg.vocabSize(), cfg.hiddenSize());
            return new Qwen2Model(cfg, ckpt, kernels, embed, List.copyOf(layers), norm, head);
        } catch (RuntimeException e) {
            ckpt.close();
            throw e;
        }
    }

    /** Reads the weights of decoder layer {@code i} from an open checkpoint (the quantizers' per-layer entry). */
    public static DecoderLayer.Weights layerWeights(Checkpoint ckpt, ModelConfig cfg, int i) {
        return layerWeights(new Weights(ckpt, cfg, LoadOptions.DEFAULT), cfg, i);
    }

    private static DecoderLayer.Weights layerWeights(Weights w, ModelConfig cfg, int i) {
        String p = cfg.arch().layerPrefix() + i + ".";
        int hd = cfg.hiddenSize();
        boolean bias = cfg.attentionBias();
        Matrix[] l = new Matrix[Proj.values().length];
        float[][] b = new float[Proj.values().length][];
        for (Proj x : Proj.values()) {
            l[x.ordinal()] = w.matrix(p + x.weight(), x.out(cfg), x.in(cfg));
            if (bias && x.takesAttentionBias()) {
                b[x.ordinal()] = w.vector(p + x.bias(), x.out(cfg));
            }
        }
        return new DecoderLayer.Weights(
                w.vector(p + "input_layernorm.weight", hd),
                l[0],
                b[0],
                l[1],
                b[1],
                l[2],
                b[2],
                l[3],
                w.vector(p + "post_attention_layernorm.weight", hd),
                l[4],
                l[5],
                l[6]);
    }

    public ModelConfig config() {
        return config;
    }

    public Kernels kernels() {
        return kernels;
    }

    public int numLayers() {
        return layers.size();
    }

    public DecoderLayer layer(int i) {
        return layers.get(i);
    }

    /** A KV cache sized for {@code capacity} tokens of this model. */
    public KvCache newCache(int capacity) {
        return new KvCache(backend, config, capacity);
    }

    /** Embedding rows of {@code ids}: [ids.length, hidden] fp32. Ids outside the vocabulary are refused. */
    public float[] embed(int[] ids) {
        int hd = config.hiddenSize();
        float[] x = new float[ids.length * hd];
        float[] row = new float[hd];
        for (int t = 0; t < ids.length; t++) {
            int id = ids[t];
            if (id < 0 || id >= config.vocabSize()) {
                throw new InputException("token id " + id + " at position " + t + " is outside the vocabulary [0, "
                        + config.vocabSize() + ")");
            }
            embed.row(id, row);
            System.arraycopy(row, 0, x, t * hd, hd);
        }
        return x;
    }

    /** The backend the model runs on (its kernels' {@link Kernels#backend()}). */
    public Backend backend() {
        return backend;
    }

    /** The final norm and lm_head resident on {@link #backend()}. */
    private record Head(Buf norm, Backend.Weight lmHead) implements AutoCloseable {
        @Override
        public void close() {
            norm.close();
            lmHead.close();
        }
    }

    /** The final norm and lm_head, uploaded on first use and kept until {@link #close()}. */
    private synchronized Head head() {
        if (head == null) {
            Buf norm = backend.wrap(finalNorm.clone());
            try {
                head = new Head(norm, backend.weight(lmHead));
            } catch (RuntimeException | Error e) {
                norm.close();
                throw e;
            }
        }
        return head;
    }

    /** Final norm then lm_head: h [rows, hidden] → logits [rows, vocab]. */
    public float[] logits(float[] h, int rows) {
        int hd = config.hiddenSize();
        if (h.length != rows * hd) {
            throw new IllegalArgumentException(
                    "hidden states of " + h.length + " values, expected [" + rows + ", " + hd + "]");
        }
        try (Buf x = backend.alloc(h.length)) {
            backend.write(h, 0, x, 0, h.length);
            return backend.take(logits(x, rows));
        }
    }

    /**
     * Final norm then lm_head on the backend: h [rows, hidden] (not written) → a new buffer of logits [rows, vocab]
     * that the caller closes.
     */
    public Buf logits(Buf h, int rows) {
        int hd = config.hiddenSize();
        Head w = head();
        Buf out = backend.alloc((long) rows * config.vocabSize());
        try (Buf n = backend.alloc((long) rows * hd)) {
            backend.rmsNorm(h, rows, hd, w.norm(), (float) config.rmsNormEps(), n);
            backend.matmul(n, rows, w.lmHead(), null, out);
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /**
     * The embedding row of token {@code id} into dst[off, off + hidden): the values {@link #embed} gives, without
     * allocating (a decode loop's per-token gather).
     */
    public void embedRow(int id, float[] dst, int off) {
        int hd = config.hiddenSize();
        if (id < 0 || id >= config.vocabSize()) {
            throw new InputException("token id " + id + " is outside the vocabulary [0, " + config.vocabSize() + ")");
        }
        for (int c = 0; c < hd; c++) {
            dst[off + c] = embed.get(id, c);
        }
    }

    /** The embedding rows of {@code ids} on the backend [ids.length, hidden]: gathered on the host, one crossing in. */
    public Buf embedResident(int[] ids) {
        return backend.wrap(embed(ids));
    }

    /**
     * Logits of every position of {@code ids}, [ids.length, vocab], for a fresh sequence (positions from 0, no
     * cache).
     */
    public float[] forward(int[] ids) {
        return backend.take(run(ids, null, null, null, false));
    }

    /**
     * Incremental decoding: feeds {@code ids} after the {@code cache.length()} tokens already cached, extends
     * the cache, and returns the logits of the new positions [ids.length, vocab] (of the last one only when
     * {@code lastOnly}, [1, vocab]).
     */
    public float[] forward(int[] ids, KvCache cache, boolean lastOnly) {
        return backend.take(forwardResident(ids, cache, lastOnly));
    }

    /**
     * {@link #forward(int[], KvCache, boolean)} leaving the logits on the backend: a new buffer [ids.length, vocab]
     * (or [1, vocab] when {@code lastOnly}) that the caller closes. Only the embedding rows cross (in); the hidden
     * state stays resident from layer to layer and the cache is extended in place.
     */
    public Buf forwardResident(int[] ids, KvCache cache, boolean lastOnly) {
        return run(ids, Objects.requireNonNull(cache, "cache"), null, null, lastOnly);
    }

    /**
     * The forward of packed rows ({@link PackedRows}; {@link DecoderLayer#forwardPacked}): {@code ids}
     * [layout.rows()] through every layer, no KV cache. Returns the final hidden state [rows, hidden] (before the
     * final norm) as a new buffer that the caller closes; {@link #logits(Buf, int[])} turns the rows wanted into
     * logits. A row gets the bits of the same token's row in {@link #forward(int[], KvCache, boolean)} when it sees
     * the same keys there: a context's rows as a fresh sequence in a cache, a continuation's rows after it from the
     * cache.
     *
     * @throws IllegalArgumentException when ids and layout differ in length
     */
    public Buf hiddenPacked(int[] ids, PackedRows layout) {
        if (ids.length != layout.rows()) {
            throw new IllegalArgumentException(ids.length + " ids for " + layout.rows() + " packed rows");
        }
        Buf x = embedResident(ids);
        try {
            for (DecoderLayer layer : layers) {
                Buf next = layer.forwardPacked(layer.resident(), x, layout, LayerObserver.NONE);
                x.close();
                x = next;
            }
            Buf out = x;
            x = null;
            return out;
        } finally {
            if (x != null) {
                x.close();
            }
        }
    }

    /**
     * Final norm then lm_head on the rows {@code rows} of h [*, hidden] (not written), gathered in that order (runs
     * of consecutive rows copied at once): a new buffer of logits [rows.length, vocab] that the caller closes. Only
     * the rows asked for pay for lm_head.
     */
    public Buf logits(Buf h, int[] rows) {
        int hd = config.hiddenSize();
        long have = h.length() / hd;
        try (Buf g = backend.alloc((long) rows.length * hd)) {
            int i = 0;
            while (i < rows.length) {
                int j = i + 1;
                while (j < rows.length && rows[j] == rows[j - 1] + 1) {
                    j++;
                }
                if (rows[i] < 0 || rows[j - 1] >= have) {
                    throw new IllegalArgumentException(
                            "rows " + rows[i] + ".." + rows[j - 1] + " outside hidden states of " + have + " rows");
                }
                backend.copy(h, (long) rows[i] * hd, g, (long) i * hd, (long) (j - i) * hd);
                i = j;
            }
            return logits(g, rows.length);
        }
    }

    /**
     * {@link #hiddenPacked} then {@link #logits(Buf, int[])} on the host: the logits of the packed rows {@code
     * logitRows}, [logitRows.length, vocab].
     */
    public float[] forwardPacked(int[] ids, PackedRows layout, int[] logitRows) {
        try (Buf h = hiddenPacked(ids, layout)) {
            return backend.take(logits(h, logitRows));
        }
    }

    /**
     * The logits of {@code rows} new positions [rows, vocab] and the residual stream entering each tapped layer
     * [rows, hidden] (EAGLE-3's features: the state entering layer j is layer j − 1's output).
     */
    public record Tapped(float[] logits, float[][] taps, int rows, int hidden) {
        /** The taps side by side per row, [rows, taps·hidden], in the order asked: what a draft head's fc reads. */
        public float[] features() {
            int k = taps.length;
            float[] f = new float[rows * k * hidden];
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < k; j++) {
                    System.arraycopy(taps[j], r * hidden, f, (r * k + j) * hidden, hidden);
                }
            }
            return f;
        }
    }

    /**
     * Like {@link #forward(int[], KvCache, boolean)} with every row's logits, and also the residual stream entering
     * each of {@code tapLayers} (ids in [0, layers)). With a null {@code cache} the ids are a fresh sequence at
     * positions 0.. .
     */
    public Tapped forwardTapped(int[] ids, KvCache cache, int[] tapLayers) {
        for (int j : tapLayers) {
            if (j < 0 || j >= layers.size()) {
                throw new IllegalArgumentException("tap layer " + j + " outside [0, " + layers.size() + ")");
            }
        }
        Buf[] tapBufs = new Buf[tapLayers.length];
        try {
            float[] logits = backend.take(run(ids, cache, tapLayers, tapBufs, false));
            float[][] taps = new float[tapLayers.length][];
            for (int j = 0; j < taps.length; j++) {
                taps[j] = backend.take(tapBufs[j]);
                tapBufs[j] = null;
            }
            return new Tapped(logits, taps, ids.length, config.hiddenSize());
        } finally {
            for (Buf b : tapBufs) {
                if (b != null) {
                    b.close();
                }
            }
        }
    }

    /**
     * The forward on the backend: the embedding rows cross in, every layer runs on the resident hidden state (with
     * {@code cache} from its length, or as a fresh sequence when it is null), the state entering layer
     * tapLayers[j] is copied into a new buffer tapOut[j], and the logits (of the last row only when {@code
     * lastOnly}) are returned as a new buffer.
     */
    private Buf run(int[] ids, KvCache cache, int[] tapLayers, Buf[] tapOut, boolean lastOnly) {
        int hd = config.hiddenSize();
        int n = ids.length;
        long len = (long) n * hd;
        int start = cache == null ? 0 : cache.length();
        Buf x = embedResident(ids);
        try {
            for (int l = 0; l < layers.size(); l++) {
                if (tapLayers != null) {
                    for (int j = 0; j < tapLayers.length; j++) {
                        if (tapLayers[j] == l) {
                            tapOut[j] = backend.alloc(len);
                            backend.copy(x, 0, tapOut[j], 0, len);
                        }
                    }
                }
                DecoderLayer layer = layers.get(l);
                Buf next = cache == null
                        ? layer.forward(layer.resident(), x, 1, n, 0, null, LayerObserver.NONE)
                        : layer.forward(layer.resident(), x, 1, n, start, cache, LayerObserver.NONE);
                x.close();
                x = next;
            }
            if (cache != null) {
                cache.advance(n);
            }
            if (lastOnly) {
                try (Buf last = backend.alloc(hd)) {
                    backend.copy(x, len - hd, last, 0, hd);
                    return logits(last, 1);
                }
            }
            return logits(x, n);
        } finally {
            x.close();
        }
    }

    /** Frees the resident weights (every layer's, the final norm's and lm_head's), then closes the checkpoint. */
    @Override
    public void close() {
        try {
            for (DecoderLayer layer : layers) {
                layer.close();
            }
            synchronized (this) {
                if (head != null) {
                    head.close();
                    head = null;
                }
            }
        } finally {
            if (ownsCheckpoint) {
                checkpoint.close();
            }
        }
    }

    /**
     * This model (the same weights and checkpoint, shared) with every layer's linear inputs and keys/values run
     * through {@code aq}, as {@link DecoderLayer#withActivationQuant} does: a release's simulated 8-bit activations
     * and KV cache for the whole-model forwards (task scoring, decoding). Closing the view frees its own resident
     * weights, not the checkpoint; close it before this model.
     */
    public Qwen2Model withActivationQuant(ActivationQuant aq) {
        List<DecoderLayer> l =
                layers.stream().map(x -> x.withActivationQuant(aq)).toList();
        return new Qwen2Model(config, checkpoint, kernels, embed, l, finalNorm, lmHead, false);
    }

    /** Fetches tensors by name, checking dtype and shape against the config with messages that name both. */
    private record Weights(Checkpoint ckpt, ModelConfig cfg, LoadOptions options) {
        TensorView get(String name, long... shape) {
            if (!ckpt.contains(name)) {
                throw new InputException("checkpoint has no tensor \"" + name + "\" (config.json describes a "
                        + cfg.arch().family() + " model with " + cfg.numLayers() + " layers)");
            }
            TensorView t = ckpt.tensor(name);
            if (!Arrays.equals(t.shape(), shape)) {
                throw new InputException("tensor \"" + name + "\" has shape " + Arrays.toString(t.shape())
                        + " but config.json implies " + Arrays.toString(shape));
            }
            if (t.dtype() != DType.BF16 && t.dtype() != DType.F16 && t.dtype() != DType.F32) {
                throw new InputException("tensor \"" + name + "\" has dtype " + t.dtype()
                        + "; the reference forward reads BF16, F16 or F32 weights");
            }
            return t;
        }

        Matrix matrix(String name, int rows, int cols) {
            ModelConfig.Quantization q = cfg.quantization();
            String prefix = name.substring(0, name.length() - ".weight".length());
            boolean quantizable = GptqFormat.quantizedLinears(cfg).containsKey(prefix);
            if (q != null && quantizable) {
                if (ckpt.contains(name)) {
                    throw new InputException("tensor \"" + name + "\" is stored unquantized, but config.json's"
                            + " quantization_config says every decoder linear is " + q.bits() + "-bit");
                }
                return PackedLinears.matrix(ckpt::tensor, ckpt::contains, q, prefix, rows, cols, options.w4Kernel());
            }
            TensorView t = get(name, rows, cols);
            Matrix m = t.dtype() == DType.BF16
                    ? new Matrix.Bf16(t.data(), rows, cols)
                    : new Matrix.F32(t.toFloatArray(), rows, cols);
            return quantizable && options.transform() != null
                    ? options.transform().apply(prefix, m)
                    : m;
        }

        float[] vector(String name, int n) {
            return get(name, n).toFloatArray();
        }
    }
}
