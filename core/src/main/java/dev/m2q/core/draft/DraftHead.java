package dev.m2q.core.draft;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * An EAGLE-3 draft head: config, draft vocabulary and fp32 weights, each weight row-major in the PyTorch [out, in]
 * layout under its FORMATS §5 name. {@link #read} checks every tensor's name, shape and dtype and the vocabulary
 * invariants; {@link #write} stores BF16 weights, {@code d2t} I64 and {@code t2d} BOOL in {@code model.safetensors}
 * beside config.json.
 */
public record DraftHead(DraftConfig config, DraftVocab vocab, Map<String, float[]> weights) {
    public static final String FILE = "model.safetensors";
    public static final String FC = "fc.weight";
    public static final String HIDDEN_NORM = "midlayer.hidden_norm.weight";
    public static final String INPUT_NORM = "midlayer.input_layernorm.weight";
    public static final String POST_NORM = "midlayer.post_attention_layernorm.weight";
    public static final String Q = "midlayer.self_attn.q_proj.weight";
    public static final String K = "midlayer.self_attn.k_proj.weight";
    public static final String V = "midlayer.self_attn.v_proj.weight";
    public static final String O = "midlayer.self_attn.o_proj.weight";
    public static final String GATE = "midlayer.mlp.gate_proj.weight";
    public static final String UP = "midlayer.mlp.up_proj.weight";
    public static final String DOWN = "midlayer.mlp.down_proj.weight";
    public static final String NORM = "norm.weight";
    public static final String LM_HEAD = "lm_head.weight";
    public static final String D2T = "d2t";
    public static final String T2D = "t2d";
    /** A copy of the target's embeddings some published heads carry; engines share the target's, so it is ignored. */
    public static final String EMBED = "embed_tokens.weight";

    /** Checks that {@code weights} holds exactly the §5 weights with the shapes {@code config} implies. */
    public DraftHead {
        if (vocab.size() != config.draftVocabSize() || vocab.targetVocab() != config.vocabSize()) {
            throw new InputException("draft vocabulary of " + vocab.size() + " ids over " + vocab.targetVocab()
                    + " does not match draft_vocab_size " + config.draftVocabSize() + " / vocab_size "
                    + config.vocabSize());
        }
        Map<String, long[]> shapes = shapes(config);
        if (!weights.keySet().equals(shapes.keySet())) {
            Set<String> missing = new TreeSet<>(shapes.keySet());
            missing.removeAll(weights.keySet());
            Set<String> extra = new TreeSet<>(weights.keySet());
            extra.removeAll(shapes.keySet());
            throw new IllegalArgumentException("draft weights: missing " + missing + ", unexpected " + extra);
        }
        Map<String, float[]> copy = new LinkedHashMap<>();
        for (var e : shapes.entrySet()) {
            float[] w = weights.get(e.getKey());
            long n = TensorView.numel(e.getValue());
            if (w.length != n) {
                throw new IllegalArgumentException("draft weight " + e.getKey() + " has " + w.length + " values, "
                        + Arrays.toString(e.getValue()) + " needs " + n);
            }
            copy.put(e.getKey(), w);
        }
        weights = java.util.Collections.unmodifiableMap(copy);
    }

    /** Every weight's shape, in FORMATS §5's order (d2t and t2d excluded). */
    public static Map<String, long[]> shapes(DraftConfig c) {
        long h = c.hiddenSize();
        long i = c.intermediateSize();
        Map<String, long[]> s = new LinkedHashMap<>();
        s.put(FC, new long[] {h, 3 * h});
        s.put(HIDDEN_NORM, new long[] {h});
        s.put(INPUT_NORM, new long[] {h});
        s.put(POST_NORM, new long[] {h});
        s.put(Q, new long[] {c.qDim(), 2 * h});
        s.put(K, new long[] {c.kvDim(), 2 * h});
        s.put(V, new long[] {c.kvDim(), 2 * h});
        s.put(O, new long[] {h, c.qDim()});
        s.put(GATE, new long[] {i, h});
        s.put(UP, new long[] {i, h});
        s.put(DOWN, new long[] {h, i});
        s.put(NORM, new long[] {h});
        s.put(LM_HEAD, new long[] {c.draftVocabSize(), h});
        return s;
    }

    public float[] weight(String name) {
        float[] w = weights.get(name);
        if (w == null) {
            throw new IllegalArgumentException("no draft weight " + name);
        }
        return w;
    }

    /** The same head with every weight rounded to BF16, as {@link #write} stores it. */
    public DraftHead roundedToBf16() {
        Map<String, float[]> r = new LinkedHashMap<>();
        weights.forEach((k, w) -> {
            float[] c = new float[w.length];
            for (int j = 0; j < w.length; j++) {
                c[j] = Bf16.round(w[j]);
            }
            r.put(k, c);
        });
        return new DraftHead(config, vocab, r);
    }

    /**
     * Reads {@code dir} (config.json + model.safetensors, or a sharded index). Weights may be BF16, F16 or F32;
     * {@code d2t} must be I64 and {@code t2d} BOOL. A tensor that is missing, unexpected, or of the wrong shape, and
     * any broken vocabulary invariant, is refused with its name.
     */
    public static DraftHead read(Path dir) {
        DraftConfig cfg = DraftConfig.load(dir);
        try (Checkpoint ck = Checkpoint.open(dir)) {
            Map<String, long[]> shapes = shapes(cfg);
            Set<String> unexpected = new TreeSet<>(ck.names());
            unexpected.removeAll(shapes.keySet());
            unexpected.removeAll(List.of(D2T, T2D, EMBED));
            if (!unexpected.isEmpty()) {
                throw new InputException(dir + ": unexpected tensors in an EAGLE-3 head: " + unexpected);
            }
            Map<String, float[]> w = new LinkedHashMap<>();
            for (var e : shapes.entrySet()) {
                TensorView t = require(ck, dir, e.getKey(), e.getValue());
                t.requireDtype(DType.BF16, DType.F16, DType.F32);
                w.put(e.getKey(), t.toFloatArray());
            }
            if (ck.contains(EMBED)) {
                require(ck, dir, EMBED, new long[] {cfg.vocabSize(), cfg.hiddenSize()});
            }
            TensorView d2t =
                    require(ck, dir, D2T, new long[] {cfg.draftVocabSize()}).requireDtype(DType.I64);
            TensorView t2d = require(ck, dir, T2D, new long[] {cfg.vocabSize()}).requireDtype(DType.BOOL);
            boolean[] member = new boolean[cfg.vocabSize()];
            for (int i = 0; i < member.length; i++) {
                byte b = t2d.data().get(ValueLayout.JAVA_BYTE, i);
                if (b != 0 && b != 1) {
                    throw new InputException(dir + ": t2d[" + i + "] holds byte " + b + ", not a bool (0 or 1)");
                }
                member[i] = b == 1;
            }
            DraftVocab vocab;
            try {
                vocab = DraftVocab.fromTensors(d2t.toLongArray(), member);
            } catch (InputException e) {
                throw new InputException(dir + ": " + e.getMessage(), e);
            }
            return new DraftHead(cfg, vocab, w);
        }
    }

    private static TensorView require(Checkpoint ck, Path dir, String name, long[] shape) {
        if (!ck.contains(name)) {
            throw new InputException(dir + ": the EAGLE-3 head has no tensor \"" + name + "\"");
        }
        TensorView t = ck.tensor(name);
        if (!Arrays.equals(t.shape(), shape)) {
            throw new InputException(dir + ": tensor \"" + name + "\" has shape " + Arrays.toString(t.shape())
                    + ", config.json implies " + Arrays.toString(shape));
        }
        return t;
    }

    /** Checks the head against the target it drafts for (sizes, vocabulary, taps). */
    public void checkAgainst(ModelConfig target) {
        config.checkAgainst(target);
    }

    /**
     * Writes config.json and model.safetensors into {@code dir} (created if needed; each file via a temporary name
     * and a rename). Returns the files written with their sha256, by file name.
     */
    public Map<String, String> write(Path dir) {
        List<TensorView> tensors = new ArrayList<>();
        var shapes = shapes(config);
        for (var e : shapes.entrySet()) {
            float[] w = weights.get(e.getKey());
            ByteBuffer b = ByteBuffer.allocate(w.length * 2).order(ByteOrder.LITTLE_ENDIAN);
            for (float f : w) {
                b.putShort(Bf16.fromFloat(f));
            }
            tensors.add(new TensorView(e.getKey(), DType.BF16, e.getValue(), MemorySegment.ofArray(b.array())));
        }
        long[] d2t = vocab.d2t();
        ByteBuffer d = ByteBuffer.allocate(d2t.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long x : d2t) {
            d.putLong(x);
        }
        tensors.add(new TensorView(D2T, DType.I64, new long[] {d2t.length}, MemorySegment.ofArray(d.array())));
        boolean[] t2d = vocab.t2d();
        byte[] t = new byte[t2d.length];
        for (int i = 0; i < t.length; i++) {
            t[i] = (byte) (t2d[i] ? 1 : 0);
        }
        tensors.add(new TensorView(T2D, DType.BOOL, new long[] {t.length}, MemorySegment.ofArray(t)));
        String sha = SafetensorsWriter.writeFile(dir.resolve(FILE), tensors, Map.of("format", "pt"));
        config.write(dir);
        Map<String, String> files = new LinkedHashMap<>();
        files.put(DraftConfig.FILE, dev.m2q.core.io.Sha256.ofFile(dir.resolve(DraftConfig.FILE)));
        files.put(FILE, sha);
        return files;
    }
}
