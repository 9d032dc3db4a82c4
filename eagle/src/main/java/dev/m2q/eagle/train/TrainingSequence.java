package dev.m2q.eagle.train;

/**
 * One training sequence of T tokens with what the target computed on it, captured online from its forward.
 *
 * @param ids token ids [T]
 * @param lossMask [T]: true where token t is an assistant token (a prediction of token t counts in the loss)
 * @param embeddings the target's embedding rows of {@code ids} [T, H]
 * @param features the target's residual stream entering the three tapped layers, side by side per row [T, 3H]
 * @param targetLogits the target's logits at each position (predicting token t + 1) [T, V]
 */
public record TrainingSequence(
        int[] ids, boolean[] lossMask, float[] embeddings, float[] features, float[] targetLogits) {
    public TrainingSequence {
        int t = ids.length;
        if (lossMask.length != t
                || t == 0
                || embeddings.length % t != 0
                || features.length != 3L * embeddings.length
                || targetLogits.length % t != 0) {
            throw new IllegalArgumentException("training sequence of " + t + " ids: mask " + lossMask.length
                    + ", embeddings " + embeddings.length + ", features " + features.length + ", logits "
                    + targetLogits.length + " values do not form [T], [T, H], [T, 3H], [T, V]");
        }
    }

    public int length() {
        return ids.length;
    }
}
