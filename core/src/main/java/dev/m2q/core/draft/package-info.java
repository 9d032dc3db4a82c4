/**
 * EAGLE-3 draft heads as the engines load them (FORMATS.md §5): the config ({@link dev.m2q.core.draft.DraftConfig}),
 * the draft vocabulary and its d2t / t2d maps ({@link dev.m2q.core.draft.DraftVocab}), the weights with every
 * invariant checked on read and write ({@link dev.m2q.core.draft.DraftHead}), and the inference forward with its
 * own KV cache ({@link dev.m2q.core.draft.DraftModel}), which validate's speculative decoding runs. Training lives
 * in the eagle module; this package is what a release's reader needs.
 */
package dev.m2q.core.draft;
