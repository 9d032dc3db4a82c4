package dev.m2q.eagle.train;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.grad.Linear;
import dev.m2q.core.grad.RmsNorm;
import dev.m2q.core.grad.RotaryEmbedding;
import dev.m2q.core.grad.SwiGlu;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.Rope;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * EAGLE-3's training-time test (ALGORITHMS §5): the draft layer unrolled over S steps on every row t = 0..T−2 of
 * each sequence at once, step i predicting token t + i + 1 at position t + i − 1, and its hand-written backward.
 *
 * <pre>
 * step i, row t:  e = embeddings[t + i] (zero past the sequence's end)
 *                 g = fc(features[t]) at i = 1, else h^(i−1)_t
 *                 a = [input_layernorm(e), hidden_norm(g)]                         [2H], embedding first
 *                 x = g + o_proj(chain attention(rope(q_proj a), rope(k_proj a), v_proj a))
 *                 h = x + down_proj(silu(gate_proj n)·up_proj n),  n = post_attention_layernorm(x)
 *                 z = lm_head(norm(h))                                             [V_d]
 * loss_i = (1/N_i)·Σ_rows CE(target restricted to the draft vocabulary, softmax z);  loss = Σ_i 0.8^(i−1)·loss_i
 * </pre>
 *
 * Each step is exactly {@link dev.m2q.core.draft.DraftModel#step} on the same inputs: the {@link ChainAttention}
 * mask lets (i, t) see step 1 at rows ≤ t and its own chain, as speculative decoding does after prefix 0..t.
 *
 * <p>The backward runs the steps in reverse: ∂L/∂h^i gathers the step's own loss and step i + 1's use of h^i as
 * its g; the keys and values of step j gather every later step's attention before step j turns them into
 * weight gradients. Written once over {@link Tensor}, like {@code core.grad}: fp32 in training, fp64 in the
 * gradient checks. All sequences' rows go through each linear together.
 */
public final class TttObjective implements DraftObjective {
    /** Step i's loss weighs DECAY^(i−1). */
    public static final double DECAY = 0.8;

    private final DraftConfig cfg;
    private final DraftVocab vocab;
    private final int steps;
    private final Kernels kernels;
    private final ChainAttention attention;
    private final RotaryEmbedding rope;

    public TttObjective(DraftConfig config, DraftVocab vocab, int steps, Kernels kernels) {
        if (steps < 1) {
            throw new IllegalArgumentException("the training-time test needs at least one step, got " + steps);
        }
        if (vocab.size() != config.draftVocabSize() || vocab.targetVocab() != config.vocabSize()) {
            throw new IllegalArgumentException("draft vocabulary of " + vocab.size() + " ids over "
                    + vocab.targetVocab() + " does not match the config's " + config.draftVocabSize() + " over "
                    + config.vocabSize());
        }
        this.cfg = config;
        this.vocab = vocab;
        this.steps = steps;
        this.kernels = kernels;
        this.attention = new ChainAttention(config.numHeads(), config.numKvHeads(), config.headDim(), kernels);
        this.rope = new RotaryEmbedding(Rope.of(config.headDim(), config.ropeTheta(), config.scaling()));
    }

    public int steps() {
        return steps;
    }

    @Override
    public StepStats lossAndGradients(
            Map<String, Tensor> params, List<TrainingSequence> batch, Map<String, Tensor> grads) {
        requireShapes(grads, "gradient");
        Unrolled u = forward(params, batch, true);
        backward(u, params, grads);
        return u.stats;
    }

    @Override
    public StepStats evaluate(Map<String, Tensor> params, List<TrainingSequence> batch) {
        return forward(params, batch, false).stats;
    }

    /**
     * The draft's logits at every step: element i − 1 is step i's [rows, V_d], rows the batch's sequences back to
     * back, rows t = 0..T−2 of each (row t of step i predicts token t + i + 1).
     */
    public List<Tensor> logits(Map<String, Tensor> params, List<TrainingSequence> batch) {
        List<Tensor> z = new ArrayList<>();
        for (Step s : forward(params, batch, false).steps) {
            z.add(s.logits);
        }
        return z;
    }

    /** What step i keeps for the backward; activations [rows, width]. */
    private static final class Step {
        int[] positions; // [rows], t + i − 1
        Tensor e; // [rows, H], the input embeddings
        Tensor g; // [rows, H], the hidden input (fc output or the previous step's h)
        Tensor invRmsE; // [rows, 1]
        Tensor invRmsG; // [rows, 1]
        Tensor a; // [rows, 2H]
        Tensor q; // [rows, qDim], after RoPE
        ChainAttention.Output attn; // [rows, qDim], [rows, heads]
        Tensor x; // [rows, H]
        Tensor invRmsX; // [rows, 1]
        Tensor gate; // [rows, I], before the activation
        Tensor up; // [rows, I]
        Tensor h; // [rows, H], the pre-norm output
        Tensor invRmsH; // [rows, 1]
        Tensor logits; // [rows, V_d]
        Tensor dLogits; // [rows, V_d], ∂loss/∂logits; null in evaluation
    }

    /** The forward's result: the batch layout, every step's trace and the statistics. */
    private record Unrolled(
            int[] seqStart,
            Tensor features,
            List<Step> steps,
            List<Tensor> keys,
            List<Tensor> values,
            StepStats stats) {}

    private Unrolled forward(Map<String, Tensor> params, List<TrainingSequence> batch, boolean training) {
        requireShapes(params, "parameter");
        int hd = cfg.hiddenSize();
        Tensor proto = params.get(DraftHead.FC);
        int[] seqStart = new int[batch.size() + 1];
        for (int b = 0; b < batch.size(); b++) {
            TrainingSequence s = batch.get(b);
            if (s.embeddings().length != s.length() * hd) {
                throw new IllegalArgumentException("sequence " + b + " has embeddings of width "
                        + s.embeddings().length / s.length() + ", the draft's hidden size is " + hd);
            }
            seqStart[b + 1] = seqStart[b] + Math.max(0, s.length() - 1);
        }
        int rows = seqStart[batch.size()];
        int[] seqOf = new int[rows];
        for (int b = 0; b < batch.size(); b++) {
            for (int r = seqStart[b]; r < seqStart[b + 1]; r++) {
                seqOf[r] = b;
            }
        }
        Tensor features = proto.zeros(rows, 3 * hd);
        for (int r = 0; r < rows; r++) {
            float[] f = batch.get(seqOf[r]).features();
            int t = r - seqStart[seqOf[r]];
            for (int i = 0; i < 3 * hd; i++) {
                features.set(r * 3 * hd + i, f[t * 3 * hd + i]);
            }
        }
        TargetLabels labels = TargetLabels.of(batch, vocab);
        StepStats stats = new StepStats(0, new double[steps], new long[steps], new long[steps]);
        List<Step> trace = new ArrayList<>();
        List<Tensor> keys = new ArrayList<>();
        List<Tensor> values = new ArrayList<>();
        double total = 0;
        Tensor g = Linear.forward(kernels, features, params.get(DraftHead.FC), null);
        for (int i = 1; i <= steps; i++) {
            Step s = layer(params, batch, seqStart, seqOf, i, g, keys, values);
            total += Math.pow(DECAY, i - 1) * loss(s, batch, seqStart, seqOf, labels, i, training, stats);
            trace.add(s);
            g = s.h;
        }
        StepStats done = new StepStats(total, stats.stepLoss(), stats.correct(), stats.counted());
        return new Unrolled(seqStart, features, trace, keys, values, done);
    }

    /** Step i's layer pass over every row; appends its keys and values. */
    private Step layer(
            Map<String, Tensor> p,
            List<TrainingSequence> batch,
            int[] seqStart,
            int[] seqOf,
            int i,
            Tensor g,
            List<Tensor> keys,
            List<Tensor> values) {
        int hd = cfg.hiddenSize();
        int rows = g.rows();
        double eps = cfg.rmsNormEps();
        Step s = new Step();
        s.g = g;
        s.e = g.zerosLike();
        s.positions = new int[rows];
        for (int r = 0; r < rows; r++) {
            TrainingSequence seq = batch.get(seqOf[r]);
            int t = r - seqStart[seqOf[r]];
            s.positions[r] = t + i - 1;
            if (t + i < seq.length()) {
                for (int c = 0; c < hd; c++) {
                    s.e.set(r * hd + c, seq.embeddings()[(t + i) * hd + c]);
                }
            }
        }
        Tensor en = g.zerosLike();
        Tensor gn = g.zerosLike();
        s.invRmsE = RmsNorm.forward(s.e, p.get(DraftHead.INPUT_NORM), eps, en);
        s.invRmsG = RmsNorm.forward(g, p.get(DraftHead.HIDDEN_NORM), eps, gn);
        s.a = TensorOps.concat(en, gn);
        s.q = Linear.forward(kernels, s.a, p.get(DraftHead.Q), null);
        Tensor k = Linear.forward(kernels, s.a, p.get(DraftHead.K), null);
        Tensor v = Linear.forward(kernels, s.a, p.get(DraftHead.V), null);
        rope.forward(s.q, cfg.numHeads(), s.positions);
        rope.forward(k, cfg.numKvHeads(), s.positions);
        keys.add(k);
        values.add(v);
        s.attn = attention.forward(s.q, keys, values, seqStart);
        s.x = Linear.forward(kernels, s.attn.out(), p.get(DraftHead.O), null);
        TensorOps.addInto(s.x, g);
        Tensor n = g.zerosLike();
        s.invRmsX = RmsNorm.forward(s.x, p.get(DraftHead.POST_NORM), eps, n);
        s.gate = Linear.forward(kernels, n, p.get(DraftHead.GATE), null);
        s.up = Linear.forward(kernels, n, p.get(DraftHead.UP), null);
        Tensor m = s.gate.zerosLike();
        SwiGlu.forward(s.gate, s.up, m);
        s.h = Linear.forward(kernels, m, p.get(DraftHead.DOWN), null);
        TensorOps.addInto(s.h, s.x);
        Tensor hn = g.zerosLike();
        s.invRmsH = RmsNorm.forward(s.h, p.get(DraftHead.NORM), eps, hn);
        s.logits = Linear.forward(kernels, hn, p.get(DraftHead.LM_HEAD), null);
        return s;
    }

    /**
     * Step i's loss_i and top-1 counts (into stats); in training also ∂(0.8^(i−1)·loss_i)/∂logits. Row t of a
     * sequence predicts token t + i + 1, labelled at position t + i.
     */
    private double loss(
            Step s,
            List<TrainingSequence> batch,
            int[] seqStart,
            int[] seqOf,
            TargetLabels labels,
            int i,
            boolean training,
            StepStats stats) {
        int rows = s.logits.rows();
        long lossRows = 0;
        for (int r = 0; r < rows; r++) {
            TargetLabels.Label l = labels.at(seqOf[r], r - seqStart[seqOf[r]] + i);
            if (l != null && l.probs() != null) {
                lossRows++;
            }
        }
        double coef = lossRows == 0 ? 0 : Math.pow(DECAY, i - 1) / lossRows;
        s.dLogits = training && lossRows > 0 ? s.logits.zerosLike() : null;
        double sum = 0;
        for (int r = 0; r < rows; r++) {
            TargetLabels.Label l = labels.at(seqOf[r], r - seqStart[seqOf[r]] + i);
            if (l == null) {
                continue;
            }
            stats.counted()[i - 1]++;
            if (vocab.targetId(TargetLabels.argmax(s.logits, r)) == l.argmax()) {
                stats.correct()[i - 1]++;
            }
            if (l.probs() != null) {
                sum += TargetLabels.softCrossEntropy(s.logits, r, l.probs(), s.dLogits, coef);
            }
        }
        double stepLoss = lossRows == 0 ? 0 : sum / lossRows;
        stats.stepLoss()[i - 1] = stepLoss;
        return stepLoss;
    }

    private void backward(Unrolled u, Map<String, Tensor> p, Map<String, Tensor> grads) {
        double eps = cfg.rmsNormEps();
        int hd = cfg.hiddenSize();
        List<Tensor> dKeys = new ArrayList<>();
        List<Tensor> dValues = new ArrayList<>();
        for (int j = 0; j < steps; j++) {
            dKeys.add(u.keys.get(j).zerosLike());
            dValues.add(u.values.get(j).zerosLike());
        }
        Tensor dNext = null; // ∂L/∂h^i through step i + 1's g
        for (int i = steps; i >= 1; i--) {
            Step s = u.steps.get(i - 1);
            Tensor dh = dNext == null ? s.h.zerosLike() : dNext;
            if (s.dLogits != null) {
                Tensor hn = s.h.zerosLike();
                RmsNorm.apply(s.h, p.get(DraftHead.NORM), s.invRmsH, hn);
                Tensor dhn = s.h.zerosLike();
                Linear.backward(
                        kernels, s.dLogits, hn, p.get(DraftHead.LM_HEAD), dhn, grads.get(DraftHead.LM_HEAD), null);
                RmsNorm.backward(dhn, s.h, p.get(DraftHead.NORM), s.invRmsH, dh, grads.get(DraftHead.NORM));
            }
            // h = x + down(silu(gate)·up), gate and up of n = post_attention_layernorm(x).
            Tensor m = s.gate.zerosLike();
            SwiGlu.forward(s.gate, s.up, m);
            Tensor dm = m.zerosLike();
            Linear.backward(kernels, dh, m, p.get(DraftHead.DOWN), dm, grads.get(DraftHead.DOWN), null);
            SwiGlu.backward(dm, s.gate, s.up, s.gate, s.up);
            Tensor n = s.x.zerosLike();
            RmsNorm.apply(s.x, p.get(DraftHead.POST_NORM), s.invRmsX, n);
            Tensor dn = s.x.zerosLike();
            Linear.backward(kernels, s.gate, n, p.get(DraftHead.GATE), dn, grads.get(DraftHead.GATE), null);
            Linear.backward(kernels, s.up, n, p.get(DraftHead.UP), dn, grads.get(DraftHead.UP), null);
            Tensor dx = dh.copy();
            RmsNorm.backward(dn, s.x, p.get(DraftHead.POST_NORM), s.invRmsX, dx, grads.get(DraftHead.POST_NORM));
            // x = g + o(attention): the step's keys and values are complete once its own queries are done.
            Tensor dAttn = s.attn.out().zerosLike();
            Linear.backward(kernels, dx, s.attn.out(), p.get(DraftHead.O), dAttn, grads.get(DraftHead.O), null);
            Tensor dq = s.q.zerosLike();
            attention.backward(
                    dAttn,
                    s.q,
                    u.keys.subList(0, i),
                    u.values.subList(0, i),
                    s.attn,
                    u.seqStart,
                    dq,
                    dKeys.subList(0, i),
                    dValues.subList(0, i));
            Tensor dk = dKeys.get(i - 1);
            rope.backward(dq, cfg.numHeads(), s.positions);
            rope.backward(dk, cfg.numKvHeads(), s.positions);
            Tensor da = s.a.zerosLike();
            Linear.backward(kernels, dq, s.a, p.get(DraftHead.Q), da, grads.get(DraftHead.Q), null);
            Linear.backward(kernels, dk, s.a, p.get(DraftHead.K), da, grads.get(DraftHead.K), null);
            Linear.backward(kernels, dValues.get(i - 1), s.a, p.get(DraftHead.V), da, grads.get(DraftHead.V), null);
            // a = [input_layernorm(e), hidden_norm(g)]; e is a constant, g also feeds the residual.
            RmsNorm.backward(
                    TensorOps.columns(da, 0, hd),
                    s.e,
                    p.get(DraftHead.INPUT_NORM),
                    s.invRmsE,
                    null,
                    grads.get(DraftHead.INPUT_NORM));
            Tensor dg = dx;
            RmsNorm.backward(
                    TensorOps.columns(da, hd, hd),
                    s.g,
                    p.get(DraftHead.HIDDEN_NORM),
                    s.invRmsG,
                    dg,
                    grads.get(DraftHead.HIDDEN_NORM));
            dNext = dg;
            u.steps.set(i - 1, null);
        }
        Linear.backward(kernels, dNext, u.features, p.get(DraftHead.FC), null, grads.get(DraftHead.FC), null);
    }

    /** Throws unless {@code tensors} holds exactly the head's tensors, vectors as [1, n], of one precision. */
    private void requireShapes(Map<String, Tensor> tensors, String what) {
        Map<String, long[]> shapes = DraftHead.shapes(cfg);
        if (!tensors.keySet().equals(shapes.keySet())) {
            throw new IllegalArgumentException(
                    what + " tensors " + tensors.keySet() + " are not the draft head's " + shapes.keySet());
        }
        Class<?> kind = tensors.get(DraftHead.FC).getClass();
        for (var e : shapes.entrySet()) {
            long[] shape = e.getValue();
            Tensor t = tensors.get(e.getKey());
            t.requireShape(
                    shape.length == 1 ? 1 : (int) shape[0], (int) shape[shape.length - 1], what + " " + e.getKey());
            if (t.getClass() != kind) {
                throw new IllegalArgumentException(
                        what + " " + e.getKey() + " is " + t.getClass().getSimpleName() + ", " + DraftHead.FC + " "
                                + kind.getSimpleName() + ": keep one precision per pass");
            }
        }
    }
}
