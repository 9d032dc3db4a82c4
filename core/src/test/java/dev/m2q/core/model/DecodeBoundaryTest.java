package dev.m2q.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.m2q.core.io.SafetensorsWriter;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.kernels.CountingKernels;
import dev.m2q.core.kernels.CountingKernels.OpCount;
import dev.m2q.core.kernels.Crossings;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.Matrix;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14's budget for decoding on the backend, counted by {@link CountingKernels} on two tiny seeded random models
 * that differ only in their number of layers (2 and 4): once a prompt has made the weights resident, one decode
 * step moves exactly its embedding row in (4·hidden bytes) and its logits row out (4·vocab bytes), whatever the
 * number of layers, and a speculative verify of k + 1 tokens moves 4·(k + 1)·(hidden + vocab) bytes; the weights
 * cross once over many steps. And the resident forward gives the logits of the host per-layer forward bit for bit
 * (the same fp32 operations on the same values in the same order), so the comparisons there are exact.
 */
class DecodeBoundaryTest {
    static final int HIDDEN = 64;
    static final int INTER = 96;
    static final int HEADS = 4;
    static final int KV_HEADS = 2;
    static final int HEAD_DIM = 16;
    static final int VOCAB = 80;

    /**
     * Writes a tiny Qwen2 checkpoint of {@code layers} layers into {@code dir}: bf16 weights N(0, 0.08), norms
     * around 1, q/k/v biases, untied lm_head; each tensor drawn from a generator seeded by its name, so models of 2
     * and 4 layers share their first two layers.
     */
    static Path writeModel(Path dir, int layers) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(
                dir.resolve("config.json"), """
                {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
                 "hidden_size": %d, "intermediate_size": %d, "num_attention_heads": %d,
                 "num_key_value_heads": %d, "head_dim": %d, "num_hidden_layers": %d, "vocab_size": %d,
                 "max_position_embeddings": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
                 "rope_scaling": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16"}
                """.formatted(HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM, layers, VOCAB));
        ModelConfig cfg = ModelConfig.load(dir);
        List<TensorView> tensors = new ArrayList<>();
        for (Map.Entry<String, long[]> e : cfg.expectedShapes().entrySet()) {
            long[] shape = e.getValue();
            int n = Math.toIntExact(TensorView.numel(shape));
            SplittableRandom rnd = new SplittableRandom(e.getKey().hashCode());
            boolean norm = e.getKey().endsWith("norm.weight");
            ByteBuffer b = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) {
                double g = rnd.nextGaussian();
                b.putShort(Bf16.fromFloat((float) (norm ? 1 + 0.1 * g : 0.08 * g)));
            }
            tensors.add(new TensorView(e.getKey(), DType.BF16, shape, MemorySegment.ofArray(b.array())));
        }
        SafetensorsWriter.writeFile(dir.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        return dir;
    }

    static int[] prompt(int n) {
        return new SplittableRandom(5).ints(n, 0, VOCAB).toArray();
    }

    @Test
    void oneDecodeStepMovesOneEmbeddingRowInAndOneLogitsRowOutWhateverTheLayers(@TempDir Path tmp) throws IOException {
        List<Map<String, OpCount>> perModel = new ArrayList<>();
        for (int layers : new int[] {2, 4}) {
            CountingKernels ck = new CountingKernels(VectorKernels.INSTANCE);
            try (Qwen2Model m = Qwen2Model.load(writeModel(tmp.resolve("l" + layers), layers), ck);
                    KvCache cache = m.newCache(16)) {
                float[] logits = m.forward(prompt(8), cache, true);
                ck.reset(false); // the prompt made the weights resident
                m.forward(new int[] {Decode.argmax(logits)}, cache, true);
                Map<String, OpCount> c = Crossings.of(ck);
                assertEquals(
                        Map.of(
                                "backend.wrap",
                                new OpCount("backend.wrap", 1, 4L * HIDDEN, 0),
                                "backend.take",
                                new OpCount("backend.take", 1, 0, 4L * VOCAB)),
                        c,
                        ck.table());
                assertEquals(4L * HIDDEN, ck.total().bytesIn());
                assertEquals(4L * VOCAB, ck.total().bytesOut());
                Crossings.assertOnlyCrossingsMoveBytes(ck);
                // The layers did run, on the backend: seven linears per layer and lm_head.
                assertEquals(7L * layers + 1, ck.count("backend.matmul").calls(), ck.table());
                assertEquals(layers, ck.count("backend.attention").calls());
                perModel.add(c);
            }
        }
        assertEquals(perModel.get(0), perModel.get(1));
    }

    @Test
    void aVerifyOfKPlusOneTokensMovesTheirEmbeddingsInAndTheirLogitsOut(@TempDir Path tmp) throws IOException {
        int k = 4;
        CountingKernels ck = new CountingKernels(VectorKernels.INSTANCE);
        try (Qwen2Model m = Qwen2Model.load(writeModel(tmp.resolve("m"), 4), ck);
                KvCache cache = m.newCache(32)) {
            m.forward(prompt(8), cache, true);
            ck.reset(false);
            int[] verify = {3, 14, 15, 9, 26};
            assertEquals(k + 1, verify.length);
            m.forward(verify, cache, false);
            assertEquals(4L * (k + 1) * HIDDEN, ck.total().bytesIn(), ck.table());
            assertEquals(4L * (k + 1) * VOCAB, ck.total().bytesOut(), ck.table());
            Crossings.assertOnlyCrossingsMoveBytes(ck);

            // SpecDecode's verify also reads the taps: 3 × (k + 1) hidden rows more, out.
            cache.truncate(8);
            ck.reset(false);
            m.forwardTapped(verify, cache, new int[] {0, 2, 3});
            assertEquals(4L * (k + 1) * HIDDEN, ck.total().bytesIn(), ck.table());
            assertEquals(4L * (k + 1) * (VOCAB + 3 * HIDDEN), ck.total().bytesOut(), ck.table());
            assertEquals(3 + 1, ck.count("backend.take").calls());
            Crossings.assertOnlyCrossingsMoveBytes(ck);
        }
    }

    @Test
    void weightsCrossOnceOverManySteps(@TempDir Path tmp) throws IOException {
        int layers = 4;
        CountingKernels ck = new CountingKernels(VectorKernels.INSTANCE);
        try (Qwen2Model m = Qwen2Model.load(writeModel(tmp.resolve("m"), layers), ck);
                KvCache cache = m.newCache(32)) {
            ModelConfig c = m.config();
            long matrices = 7L * layers + 1;
            long weightBytes = 2L
                            * layers
                            * (c.qDim() * HIDDEN + 2L * c.kvDim() * HIDDEN + HIDDEN * c.qDim() + 3L * INTER * HIDDEN)
                    + 2L * VOCAB * HIDDEN;
            // The vectors that cross once, each in its own wrap: per layer two norms, the q/k/v biases and RoPE's
            // inverse frequencies (6 per layer); then the final norm. Then one wrap of embedding rows per forward.
            long vectorBytes = 4L * layers * (2 * HIDDEN + c.qDim() + 2 * c.kvDim() + HEAD_DIM / 2) + 4L * HIDDEN;
            int[] p = prompt(8);
            float[] logits = m.forward(p, cache, true);
            int steps = 12;
            for (int s = 0; s < steps; s++) {
                logits = m.forward(new int[] {Decode.argmax(logits)}, cache, true);
                assertEquals(matrices, ck.count("backend.weight").calls(), "after step " + s);
            }
            assertEquals(new OpCount("backend.weight", matrices, weightBytes, 0), ck.count("backend.weight"));
            long tokens = p.length + steps;
            assertEquals(
                    new OpCount("backend.wrap", 6L * layers + 1 + 1 + steps, vectorBytes + 4L * tokens * HIDDEN, 0),
                    ck.count("backend.wrap"),
                    ck.table());
            assertEquals(new OpCount("backend.take", 1 + steps, 0, 4L * (1 + steps) * VOCAB), ck.count("backend.take"));
            assertEquals(
                    weightBytes + vectorBytes + 4L * tokens * HIDDEN, ck.total().bytesIn());
            Crossings.assertOnlyCrossingsMoveBytes(ck);

            // close() frees the resident weights; the next forward uploads them again, once.
            m.layer(0).close();
            ck.reset(false);
            m.forward(new int[] {1}, cache, true);
            assertEquals(7, ck.count("backend.weight").calls());
        }
    }

    /**
     * The model's forwards against a per-layer host forward written here: embed, {@link DecoderLayer#forward(float[],
     * int, int, LayerObserver)} layer by layer (or the cached one), then the final norm and lm_head with the
     * kernels' host operations on the checkpoint's own tensors. Bit for bit.
     */
    @Test
    void logitsAreThoseOfTheHostForwardBitForBit(@TempDir Path tmp) throws IOException {
        Path dir = writeModel(tmp.resolve("m"), 2);
        Kernels kernels = Kernels.byName("vector");
        try (Qwen2Model m = Qwen2Model.load(dir, kernels);
                dev.m2q.core.io.Checkpoint ck = dev.m2q.core.io.Checkpoint.open(dir)) {
            float[] norm = ck.tensor("model.norm.weight").toFloatArray();
            Matrix head = new Matrix.Bf16(ck.tensor("lm_head.weight").data(), VOCAB, HIDDEN);
            int[] ids = prompt(9);
            int n = ids.length;

            float[] x = m.embed(ids);
            for (int l = 0; l < m.numLayers(); l++) {
                x = m.layer(l).forward(x, 1, n, LayerObserver.NONE);
            }
            float[] want = hostLogits(kernels, x, n, norm, head);
            assertArrayEquals(want, m.forward(ids));
            assertArrayEquals(want, m.forwardTapped(ids, null, new int[] {1}).logits());

            // Through a cache: 6 tokens, then 3 with every row's logits, then 1 with the last row's.
            try (KvCache mine = m.newCache(n + 1);
                    KvCache ref = new KvCache(kernels.backend(), m.config(), n + 1)) {
                int[][] pieces = {Arrays.copyOfRange(ids, 0, 6), Arrays.copyOfRange(ids, 6, 9), {7}};
                for (int i = 0; i < pieces.length; i++) {
                    int[] piece = pieces[i];
                    boolean lastOnly = i != 1;
                    float[] h = m.embed(piece);
                    int start = ref.length();
                    for (int l = 0; l < m.numLayers(); l++) {
                        h = m.layer(l).forward(h, piece.length, start, ref, LayerObserver.NONE);
                    }
                    ref.advance(piece.length);
                    int rows = piece.length;
                    if (lastOnly) {
                        h = Arrays.copyOfRange(h, (rows - 1) * HIDDEN, rows * HIDDEN);
                        rows = 1;
                    }
                    assertArrayEquals(
                            hostLogits(kernels, h, rows, norm, head), m.forward(piece, mine, lastOnly), "piece " + i);
                    assertEquals(ref.length(), mine.length());
                }
            }
            // The public host-array logits agree with the host kernels too.
            assertArrayEquals(want, m.logits(x, n));
        }
    }

    private static float[] hostLogits(Kernels k, float[] x, int rows, float[] norm, Matrix head) {
        float[] nx = new float[rows * HIDDEN];
        k.rmsNorm(x, rows, HIDDEN, norm, 1e-6f, nx);
        float[] out = new float[rows * VOCAB];
        k.matmul(nx, rows, head, null, out);
        return out;
    }

    /** Greedy choice, as validate's Decode makes it (the first maximum). */
    private static final class Decode {
        static int argmax(float[] v) {
            int best = 0;
            for (int i = 1; i < v.length; i++) {
                if (v[i] > v[best]) {
                    best = i;
                }
            }
            return best;
        }
    }
}
