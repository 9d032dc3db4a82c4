import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.json.Json;
import dev.m2q.core.tensor.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Writes a synthetic Qwen2 checkpoint for scale runs of m2q quantize, by default with 32B-shaped decoder layers
 * (hidden 5120, MLP 27648, 40/8 heads, head_dim 128): bf16 weights drawn from a Student-t distribution with 4
 * degrees of freedom (heavy tails like trained LLM weights), scaled by 1/sqrt(fan_in); a small vocabulary keeps
 * the embeddings cheap. Seeded. Its output is never committed: regenerate it.
 *
 * <pre>
 * ./m2q --version    (builds cli/target/m2q.jar, core and Jackson, when it is missing)
 * java --add-modules jdk.incubator.vector -cp cli/target/m2q.jar tools/synth/SynthCheckpoint.java \
 *     OUT [layers=2] [hidden=5120] [intermediate=27648] [heads=40] [kvHeads=8] [vocab=4096]
 * cp fixtures/tiny-qwen2/tokenizer*.json fixtures/tiny-qwen2/calibration.txt OUT/   # ids stay below 2048
 * </pre>
 */
public class SynthCheckpoint {
    static final int HEAD_DIM = 128;
    static int HIDDEN;
    static int INTER;
    static int HEADS;
    static int KV_HEADS;

    public static void main(String[] args) throws Exception {
        Path out = Path.of(args[0]);
        int layers = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        HIDDEN = args.length > 2 ? Integer.parseInt(args[2]) : 5120;
        INTER = args.length > 3 ? Integer.parseInt(args[3]) : 27648;
        HEADS = args.length > 4 ? Integer.parseInt(args[4]) : 40;
        KV_HEADS = args.length > 5 ? Integer.parseInt(args[5]) : 8;
        int vocab = args.length > 6 ? Integer.parseInt(args[6]) : 4096;
        List<TensorSpec> specs = new ArrayList<>();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        shapes.put("model.embed_tokens.weight", new long[] {vocab, HIDDEN});
        for (int l = 0; l < layers; l++) {
            String p = "model.layers." + l + ".";
            shapes.put(p + "input_layernorm.weight", new long[] {HIDDEN});
            shapes.put(p + "self_attn.q_proj.weight", new long[] {HEADS * HEAD_DIM, HIDDEN});
            shapes.put(p + "self_attn.q_proj.bias", new long[] {HEADS * HEAD_DIM});
            shapes.put(p + "self_attn.k_proj.weight", new long[] {KV_HEADS * HEAD_DIM, HIDDEN});
            shapes.put(p + "self_attn.k_proj.bias", new long[] {KV_HEADS * HEAD_DIM});
            shapes.put(p + "self_attn.v_proj.weight", new long[] {KV_HEADS * HEAD_DIM, HIDDEN});
            shapes.put(p + "self_attn.v_proj.bias", new long[] {KV_HEADS * HEAD_DIM});
            shapes.put(p + "self_attn.o_proj.weight", new long[] {HIDDEN, HEADS * HEAD_DIM});
            shapes.put(p + "post_attention_layernorm.weight", new long[] {HIDDEN});
            shapes.put(p + "mlp.gate_proj.weight", new long[] {INTER, HIDDEN});
            shapes.put(p + "mlp.up_proj.weight", new long[] {INTER, HIDDEN});
            shapes.put(p + "mlp.down_proj.weight", new long[] {HIDDEN, INTER});
        }
        shapes.put("model.norm.weight", new long[] {HIDDEN});
        shapes.put("lm_head.weight", new long[] {vocab, HIDDEN});
        shapes.forEach((n, s) -> specs.add(new TensorSpec(n, DType.BF16, s)));
        SplittableRandom rnd = new SplittableRandom(20261122);
        try (CheckpointWriter w = CheckpointWriter.create(out, ShardPlan.of(specs, 2L << 30), CheckpointWriter.PT_METADATA)) {
            for (TensorSpec t : specs) {
                long[] s = t.shape();
                float[] v = new float[(int) t.numel()];
                if (t.name().endsWith("norm.weight")) {
                    java.util.Arrays.fill(v, 1f);
                } else {
                    double scale = s.length == 2 ? 1 / Math.sqrt(s[1]) : 0.02;
                    for (int i = 0; i < v.length; i++) {
                        v[i] = (float) (scale * studentT4(rnd));
                    }
                }
                w.writeFloats(t.name(), v);
            }
            w.finish();
        }
        Config cfg = new Config(
                List.of("Qwen2ForCausalLM"),
                "qwen2",
                HIDDEN,
                INTER,
                layers,
                HEADS,
                KV_HEADS,
                HEAD_DIM,
                1e-6,
                1000000.0,
                32768,
                vocab,
                false,
                "bfloat16");
        Files.writeString(out.resolve("config.json"), Json.writePretty(cfg));
    }

    /** The config.json written: a Qwen2 config with the synthetic shapes. */
    record Config(
            List<String> architectures,
            @JsonProperty("model_type") String modelType,
            @JsonProperty("hidden_size") int hiddenSize,
            @JsonProperty("intermediate_size") int intermediateSize,
            @JsonProperty("num_hidden_layers") int numHiddenLayers,
            @JsonProperty("num_attention_heads") int numAttentionHeads,
            @JsonProperty("num_key_value_heads") int numKeyValueHeads,
            @JsonProperty("head_dim") int headDim,
            @JsonProperty("rms_norm_eps") double rmsNormEps,
            @JsonProperty("rope_theta") double ropeTheta,
            @JsonProperty("max_position_embeddings") int maxPositionEmbeddings,
            @JsonProperty("vocab_size") int vocabSize,
            @JsonProperty("tie_word_embeddings") boolean tieWordEmbeddings,
            @JsonProperty("torch_dtype") String torchDtype) {}

    /** Student-t with 4 degrees of freedom, unit-variance-scaled: z / sqrt(chi²₄ / 4) / sqrt(2). */
    static double studentT4(SplittableRandom r) {
        double chi = 0;
        for (int i = 0; i < 4; i++) {
            double g = r.nextGaussian();
            chi += g * g;
        }
        return r.nextGaussian() / Math.sqrt(chi / 4) / Math.sqrt(2);
    }
}
