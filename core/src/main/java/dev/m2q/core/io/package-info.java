/**
 * safetensors I/O. Reading: {@link dev.m2q.core.io.Checkpoint} (a model directory, sharded or not) over
 * {@link dev.m2q.core.io.SafetensorsFile} (one memory-mapped, strictly validated file) handing out zero-copy
 * {@link dev.m2q.core.io.TensorView}s. Writing: a {@link dev.m2q.core.io.ShardPlan} fixes files and offsets, then
 * {@link dev.m2q.core.io.CheckpointWriter} takes tensors in any order and publishes the files atomically with their
 * SHA-256. Every malformed input is a {@link dev.m2q.core.io.SafetensorsFormatException} naming file and tensor.
 */
package dev.m2q.core.io;
