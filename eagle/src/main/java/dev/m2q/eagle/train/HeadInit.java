package dev.m2q.eagle.train;

import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.model.ModelConfig;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * The draft head's starting point, fp32 master weights: the three midlayer norms 1; {@code norm} the target's final
 * norm and {@code lm_head} the target's lm_head rows of the draft vocabulary (a warm start: at step 0 the head
 * already maps a target-like hidden state to the target's own token scores); fc and the layer's seven linears drawn
 * from N(0, σ²) with σ = 0.02, the Qwen2/Llama {@code initializer_range} the engines' reference heads also use.
 * Matrices are [out, in] tensors, vectors [1, n], keyed by {@link DraftHead}'s names.
 */
public final class HeadInit {
    public static final double STD = 0.02;

    private HeadInit() {}

    /**
     * Seeded initial parameters; {@code targetDir} is the BF16 target whose final norm and lm_head seed the head's
     * (its tied embeddings when {@code tie_word_embeddings}).
     */
    public static Map<String, Tensor> init(DraftConfig cfg, DraftVocab vocab, Path targetDir, long seed) {
        ModelConfig target = ModelConfig.load(targetDir);
        try (Checkpoint ck = Checkpoint.open(targetDir)) {
            int h = cfg.hiddenSize();
            float[] norm = new float[h];
            tensor(ck, targetDir, "model.norm.weight").copyFloatsTo(norm, 0, 0, h);
            String headName = target.tieWordEmbeddings() ? "model.embed_tokens.weight" : "lm_head.weight";
            TensorView head = tensor(ck, targetDir, headName).requireShape(target.vocabSize(), h);
            float[] rows = new float[vocab.size() * h];
            for (int i = 0; i < vocab.size(); i++) {
                head.copyFloatsTo(rows, i * h, (long) vocab.targetId(i) * h, h);
            }
            return init(cfg, norm, rows, seed);
        }
    }

    /** Seeded initial parameters with the given final norm [H] and draft lm_head rows [V_d, H]. */
    public static Map<String, Tensor> init(DraftConfig cfg, float[] finalNorm, float[] lmHeadRows, long seed) {
        Random rng = new Random(seed);
        Map<String, Tensor> p = new LinkedHashMap<>();
        for (var e : DraftHead.shapes(cfg).entrySet()) {
            long[] s = e.getValue();
            Tensor.F32 t = s.length == 1 ? Tensor.f32(1, (int) s[0]) : Tensor.f32((int) s[0], (int) s[1]);
            switch (e.getKey()) {
                case DraftHead.HIDDEN_NORM, DraftHead.INPUT_NORM, DraftHead.POST_NORM ->
                    java.util.Arrays.fill(t.data(), 1f);
                case DraftHead.NORM -> System.arraycopy(finalNorm, 0, t.data(), 0, t.size());
                case DraftHead.LM_HEAD -> System.arraycopy(lmHeadRows, 0, t.data(), 0, t.size());
                default -> {
                    for (int i = 0; i < t.size(); i++) {
                        t.data()[i] = (float) (STD * rng.nextGaussian());
                    }
                }
            }
            p.put(e.getKey(), t);
        }
        return p;
    }

    /** The head's fp32 weights by name, as {@link DraftHead} holds them. */
    public static Map<String, float[]> weights(Map<String, Tensor> params) {
        Map<String, float[]> w = new LinkedHashMap<>();
        params.forEach((k, t) -> w.put(k, t.toF32().data()));
        return w;
    }

    private static TensorView tensor(Checkpoint ck, Path dir, String name) {
        if (!ck.contains(name)) {
            throw new InputException(dir + ": no tensor \"" + name + "\" to initialize the draft head from");
        }
        return ck.tensor(name);
    }
}
