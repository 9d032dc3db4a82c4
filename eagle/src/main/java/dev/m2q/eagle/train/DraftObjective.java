package dev.m2q.eagle.train;

import dev.m2q.core.grad.Tensor;
import java.util.List;
import java.util.Map;

/**
 * The draft head's training objective over a batch. Parameters and gradients are keyed by the head's tensor names
 * ({@link dev.m2q.core.draft.DraftHead#shapes}); matrices are [out, in] tensors, vectors [1, n].
 */
public interface DraftObjective {
    /** Forward and backward over {@code batch}: adds ∂loss/∂param into {@code grads} and returns the statistics. */
    StepStats lossAndGradients(Map<String, Tensor> params, List<TrainingSequence> batch, Map<String, Tensor> grads);

    /** Forward only (held-out evaluation). */
    StepStats evaluate(Map<String, Tensor> params, List<TrainingSequence> batch);
}
