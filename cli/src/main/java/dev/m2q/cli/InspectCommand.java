package dev.m2q.cli;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.io.TensorView;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.quant.Bits;
import dev.m2q.core.quant.CompressedTensorsFormat;
import dev.m2q.core.quant.GptqLayoutCheck;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code m2q inspect MODEL}: architecture, every tensor (name, dtype, shape, bytes, file) and totals. */
@Command(
        name = "inspect",
        mixinStandardHelpOptions = true,
        description = "List a checkpoint's architecture and tensors; checks the config against the weights.")
final class InspectCommand implements Callable<Integer> {
    @Parameters(paramLabel = "MODEL", description = "Model directory, or a single .safetensors file.")
    Path model;

    @Option(names = "--json", description = "Print JSON instead of a table.")
    boolean json;

    @Option(
            names = "--check",
            description = "Check a GPTQ checkpoint (ours or not) against what vLLM/SGLang/transformers load: config"
                    + " keys, dtypes, shapes, v1 zeros, g_idx, scales, vLLM's tensor-parallel rules at --tp (heads,"
                    + " KV-head replication, Marlin tiles). Exit 1 on a violation, naming the --tp values that would"
                    + " load; a group size Marlin lacks is a warning.")
    boolean check;

    @Option(
            names = "--tp",
            split = ",",
            defaultValue = "1",
            paramLabel = "N",
            description = "Tensor-parallel sizes for --check (default 1).")
    List<Integer> tp;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (!Files.exists(model)) {
            throw new InputException(model + ": no such file or directory");
        }
        ModelConfig cfg = null;
        if (Files.isDirectory(model)) {
            cfg = ModelConfig.load(model);
        }
        try (Checkpoint ckpt = Checkpoint.open(model)) {
            // With --check, tensors packed at the other width than the config's bits are one of the violations the
            // layout check names (exit 1), not a refusal to look.
            if (cfg != null && !(check && packedAtOtherBits(ckpt, cfg, model))) {
                checkAgainstConfig(ckpt, cfg, model);
            }
            var out = spec.commandLine().getOut();
            if (check) {
                if (cfg == null) {
                    throw new InputException(model + ": --check needs a model directory with config.json");
                }
                List<GptqLayoutCheck.Violation> v = GptqLayoutCheck.checkCheckpoint(model, tp);
                v.forEach(out::println);
                String marlin = GptqLayoutCheck.marlinWarning(model);
                if (marlin != null) {
                    out.println("warning: " + marlin);
                }
                String loads = v.isEmpty() || cfg.quantization() == null
                        ? ""
                        : "; it "
                                + GptqLayoutCheck.loadsAt(
                                        cfg, cfg.quantization().groupSize());
                out.printf(
                        "%s: %s at --tp %s%s%n",
                        model, v.isEmpty() ? "loadable" : v.size() + " violation(s)", tp, loads);
                boolean draftOk = checkDraft(model.resolve("draft"), cfg, out);
                out.flush();
                return v.isEmpty() && draftOk ? Main.EXIT_OK : Main.EXIT_CHECK_FAILED;
            }
            if (json) {
                out.print(Json.writePretty(toJson(ckpt, cfg)));
            } else {
                printTable(out, ckpt, cfg);
            }
            out.flush();
        }
        return Main.EXIT_OK;
    }

    /**
     * What {@code --check} finds wrong with the release in {@code dir} at {@code tp}, one line each: the config
     * against the weights, then every loadability rule. {@code m2q quantize} runs it on a new release before
     * swapping it in.
     */
    static List<String> releaseViolations(Path dir, List<Integer> tp) {
        List<String> out = new ArrayList<>();
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            ModelConfig cfg = ModelConfig.load(dir);
            if (!packedAtOtherBits(ckpt, cfg, dir)) {
                checkAgainstConfig(ckpt, cfg, dir);
            }
        } catch (InputException e) {
            out.add(e.getMessage());
            return out;
        }
        GptqLayoutCheck.checkCheckpoint(dir, tp).forEach(v -> out.add(v.toString()));
        return out;
    }

    /**
     * A release's {@code draft/} folder (written by {@code m2q eagle attach}): every FORMATS §5 invariant and the fit
     * to the release's config. True when there is none or it passes.
     */
    static boolean checkDraft(Path draft, ModelConfig cfg, java.io.PrintWriter out) {
        if (!Files.isDirectory(draft)) {
            return true;
        }
        try {
            DraftHead head = DraftHead.read(draft);
            head.checkAgainst(cfg);
            List<String> missing = DraftConfig.missingEngineDefaulted(Json.parseObject(
                    Files.readString(draft.resolve(DraftConfig.FILE), java.nio.charset.StandardCharsets.UTF_8)));
            if (!missing.isEmpty()) {
                // A violation, not a warning: vLLM and SGLang fill these keys in differently, so the same head would
                // run with a different forward (and a lower acceptance) depending on the engine.
                out.printf(
                        "%s: EAGLE-3 head: config.json leaves %s to the engine's default (engines differ; m2q's"
                                + " head means false): write it explicitly%n",
                        draft, String.join(", ", missing));
                return false;
            }
            out.printf(
                    "%s: EAGLE-3 head, draft vocabulary %d of %d, taps %s: loadable%n",
                    draft,
                    head.config().draftVocabSize(),
                    head.config().vocabSize(),
                    java.util.Arrays.toString(head.config().taps(cfg.numLayers())));
            return true;
        } catch (InputException e) {
            out.printf("%s: EAGLE-3 head: %s%n", draft, e.getMessage());
            return false;
        } catch (java.io.IOException | dev.m2q.core.json.JsonException e) {
            out.printf("%s: EAGLE-3 head: %s: %s%n", draft, DraftConfig.FILE, e.getMessage());
            return false;
        }
    }

    /**
     * Every tensor the config implies must exist with its shape (for compressed-tensors, with the scales its
     * quantization_config declares): a mismatch is bad input.
     */
    static void checkAgainstConfig(Checkpoint ckpt, ModelConfig cfg, Path dir) {
        ModelConfig.Quantization q = cfg.quantization();
        Bits bits = q == null ? Bits.FOUR : Bits.of(q.bits());
        try {
            checkAgainstConfig(ckpt, cfg, dir, bits);
        } catch (InputException e) {
            if (packedAtOtherBits(ckpt, cfg, dir)) {
                throw new InputException(e.getMessage() + ": the tensors are packed at "
                        + other(bits).value() + " bits, but quantization_config says " + bits.value());
            }
            throw e;
        }
    }

    private static Bits other(Bits bits) {
        return bits.value() == 4 ? Bits.EIGHT : Bits.FOUR;
    }

    /**
     * Whether the quantized tensors fit the other width than config.json's bits (and so not the config's): a 4-bit
     * config over an 8-bit release, or the reverse.
     */
    static boolean packedAtOtherBits(Checkpoint ckpt, ModelConfig cfg, Path dir) {
        ModelConfig.Quantization q = cfg.quantization();
        if (q == null) {
            return false;
        }
        try {
            checkAgainstConfig(ckpt, cfg, dir, other(Bits.of(q.bits())));
            return true;
        } catch (InputException e) {
            return false;
        }
    }

    private static void checkAgainstConfig(Checkpoint ckpt, ModelConfig cfg, Path dir, Bits bits) {
        Map<String, long[]> expected = cfg.expectedShapes();
        ModelConfig.Quantization q = cfg.quantization();
        if (q != null) {
            expected = new LinkedHashMap<>();
            List<TensorSpec> plan =
                    q.format().plan(cfg, ckpt::tensor, q.groupSize(), CompressedTensorsFormat.scheme(dir), bits);
            for (TensorSpec t : plan) {
                expected.put(t.name(), t.shape());
            }
        }
        for (Map.Entry<String, long[]> e : expected.entrySet()) {
            String name = e.getKey();
            if (!ckpt.contains(name)) {
                throw new InputException("config.json does not match the weights: tensor \"" + name + "\" is missing");
            }
            long[] actual = ckpt.tensor(name).shape();
            if (!Arrays.equals(actual, e.getValue())) {
                throw new InputException("config.json does not match the weights: tensor \"" + name + "\" has shape "
                        + Arrays.toString(actual) + ", config implies " + Arrays.toString(e.getValue()));
            }
        }
    }

    /**
     * {@code inspect --json}.
     *
     * @param model the architecture from config.json; null (and not written) when the folder has none
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record Inspection(Architecture model, List<FileSize> files, List<TensorEntry> tensors, Totals total) {}

    record Architecture(
            String architecture,
            String family,
            @JsonProperty("num_hidden_layers") int numHiddenLayers,
            @JsonProperty("hidden_size") int hiddenSize,
            @JsonProperty("intermediate_size") int intermediateSize,
            @JsonProperty("num_attention_heads") int numAttentionHeads,
            @JsonProperty("num_key_value_heads") int numKeyValueHeads,
            @JsonProperty("head_dim") int headDim,
            @JsonProperty("vocab_size") int vocabSize,
            @JsonProperty("tie_word_embeddings") boolean tieWordEmbeddings) {}

    record FileSize(String file, long bytes) {}

    /** @param file the shard holding the tensor */
    record TensorEntry(String name, String dtype, long[] shape, long bytes, String file) {}

    /** @param elements the parameter count */
    record Totals(int tensors, long elements, long bytes) {}

    private static Inspection toJson(Checkpoint ckpt, ModelConfig cfg) {
        Architecture a = cfg == null
                ? null
                : new Architecture(
                        cfg.arch().architectures().getFirst(),
                        cfg.arch().family(),
                        cfg.numLayers(),
                        cfg.hiddenSize(),
                        cfg.intermediateSize(),
                        cfg.numHeads(),
                        cfg.numKvHeads(),
                        cfg.headDim(),
                        cfg.vocabSize(),
                        cfg.tieWordEmbeddings());
        List<FileSize> files = new ArrayList<>();
        for (Path f : ckpt.files()) {
            files.add(new FileSize(f.getFileName().toString(), size(f)));
        }
        List<TensorEntry> tensors = new ArrayList<>();
        long params = 0;
        long bytes = 0;
        for (String name : ckpt.names()) {
            TensorView t = ckpt.tensor(name);
            tensors.add(new TensorEntry(
                    name,
                    t.dtype().safetensorsName(),
                    t.shape(),
                    t.byteSize(),
                    ckpt.shardOf(name).getFileName().toString()));
            params += t.numel();
            bytes += t.byteSize();
        }
        return new Inspection(a, files, tensors, new Totals(tensors.size(), params, bytes));
    }

    private static void printTable(java.io.PrintWriter out, Checkpoint ckpt, ModelConfig cfg) {
        if (cfg != null) {
            out.printf(
                    "%s (%s): %d layers, hidden %d, intermediate %d, heads %d/%d (head_dim %d), vocab %d, %s lm_head%n",
                    cfg.arch().architectures().getFirst(),
                    cfg.arch().family(),
                    cfg.numLayers(),
                    cfg.hiddenSize(),
                    cfg.intermediateSize(),
                    cfg.numHeads(),
                    cfg.numKvHeads(),
                    cfg.headDim(),
                    cfg.vocabSize(),
                    cfg.tieWordEmbeddings() ? "tied" : "untied");
        }
        for (Path f : ckpt.files()) {
            out.printf("file %s: %s%n", f.getFileName(), human(size(f)));
        }
        int width = ckpt.names().stream().mapToInt(String::length).max().orElse(4);
        out.printf("%-" + width + "s  %-7s  %-16s  %12s%n", "name", "dtype", "shape", "bytes");
        long params = 0;
        long bytes = 0;
        for (String name : ckpt.names()) {
            TensorView t = ckpt.tensor(name);
            out.printf(
                    "%-" + width + "s  %-7s  %-16s  %12d%n",
                    name,
                    t.dtype().safetensorsName(),
                    Arrays.toString(t.shape()),
                    t.byteSize());
            params += t.numel();
            bytes += t.byteSize();
        }
        out.printf("total: %d tensors, %,d elements, %s%n", ckpt.names().size(), params, human(bytes));
    }

    private static long size(Path f) {
        try {
            return Files.size(f);
        } catch (java.io.IOException e) {
            throw new InputException(f + ": cannot read its size: " + e.getMessage(), e);
        }
    }

    static String human(long bytes) {
        if (bytes < 1024) {
            return bytes + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return String.format("%.2f %s", v, units[u]);
    }
}
