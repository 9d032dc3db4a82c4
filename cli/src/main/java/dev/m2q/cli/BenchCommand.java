package dev.m2q.cli;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Devices;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;
import dev.m2q.kernels.CudaBench;
import dev.m2q.kernels.CudaContext;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code m2q bench --model DIR}: tokens/s of the reference forward, prefill (one window) and batch-1
 * decoding with the KV cache, on the device --device picks: on the CPU for each Java kernel implementation of
 * --kernels, on a GPU for its kernels. Median of --repeat timed runs after --warmup untimed ones; inputs are seeded
 * random ids.
 */
@Command(
        name = "bench",
        mixinStandardHelpOptions = true,
        description =
                "Measure forward tokens/s (prefill and batch-1 decode) on the CPU for the vector and scalar kernels,"
                        + " or on the GPU.")
final class BenchCommand implements Callable<Integer> {
    enum Suite {
        model,
        kernels
    }

    @Option(
            names = "--suite",
            defaultValue = "model",
            description = "model (default): tokens/s of --model's forward. kernels: each CUDA kernel at Qwen2.5-32B's"
                    + " shapes against the GPU's measured ceilings (no --model; needs a GPU), and GPTQ's projected"
                    + " time per 32B layer.")
    Suite suite;

    @Option(
            names = "--model",
            paramLabel = "DIR",
            description = "Hugging Face model directory (config.json, *.safetensors, tokenizer.json); required by"
                    + " --suite model.")
    Path modelDir;

    @Option(names = "--prefill", defaultValue = "256", description = "Prompt tokens (default ${DEFAULT-VALUE}).")
    int prefill;

    @Option(names = "--decode", defaultValue = "64", description = "Decoded tokens (default ${DEFAULT-VALUE}).")
    int decode;

    @Option(names = "--warmup", defaultValue = "2", description = "Untimed runs (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(
            names = "--repeat",
            defaultValue = "5",
            description = "Timed runs, the median is reported (default ${DEFAULT-VALUE}; use 20 or more with --suite"
                    + " kernels).")
    int repeat;

    @Option(
            names = "--kernels",
            split = ",",
            defaultValue = "vector,scalar",
            description = "Java kernel implementations to measure on the CPU (default ${DEFAULT-VALUE}); on a GPU, the"
                    + " first is the one its kernels hand small work to.")
    List<String> kernelNames;

    @Mixin
    DeviceOptions device;

    @Option(
            names = "--w4-kernel",
            description = "For a 4-bit --model (GPTQ, auto_round, compressed-tensors): keep the linears packed and run"
                    + " the W4A16 kernel (default: dequantize them to fp32 at load).")
    boolean w4Kernel;

    @Option(names = "--seed", defaultValue = "1234", description = "Seed for the token ids.")
    long seed;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (suite == Suite.kernels) {
            return kernelSuite();
        }
        if (modelDir == null) {
            throw new InputException("--model is required (or use --suite kernels)");
        }
        Path dir = ModelOptions.check(modelDir);
        if (prefill < 1 || decode < 1 || warmup < 0 || repeat < 1) {
            throw new InputException("--prefill, --decode and --repeat must be ≥ 1 and --warmup ≥ 0");
        }
        List<Kernels> java = new ArrayList<>();
        for (String name : kernelNames) {
            try {
                java.add(Kernels.byName(name));
            } catch (IllegalArgumentException e) {
                throw new InputException("--kernels: " + e.getMessage(), e);
            }
        }
        ModelConfig cfg = ModelConfig.load(dir);
        if (prefill + decode > cfg.maxPositionEmbeddings()) {
            throw new InputException(
                    "--prefill + --decode exceeds max_position_embeddings " + cfg.maxPositionEmbeddings());
        }
        Devices.Selection sel = device.select(java.getFirst());
        var err = spec.commandLine().getErr();
        err.println(sel.line());
        err.flush();
        List<Kernels> measured = sel.device().equals("cpu") ? java : List.of(sel.kernels());
        var out = spec.commandLine().getOut();
        List<ModelRow> rows = new ArrayList<>();
        if (!json) {
            out.printf(
                    "kernels  prefill tok/s (%d tokens)  decode tok/s (%d tokens after the prompt)%n", prefill, decode);
        }
        for (Kernels k : measured) {
            try (Qwen2Model m = Qwen2Model.load(dir, k, new Qwen2Model.LoadOptions(w4Kernel, null))) {
                String weights = m.config().quantization() == null
                        ? m.config().torchDtype()
                        : w4Kernel ? "w4a16 packed" : "w4 dequantized to fp32";
                int[] prompt = new SplittableRandom(seed)
                        .ints(prefill, 0, m.config().vocabSize())
                        .toArray();
                double[] pre = new double[repeat];
                double[] dec = new double[repeat];
                for (int i = -warmup; i < repeat; i++) {
                    try (KvCache cache = m.newCache(prefill + decode)) {
                        long t0 = System.nanoTime();
                        float[] logits = m.forward(prompt, cache, true);
                        long t1 = System.nanoTime();
                        for (int j = 0; j < decode; j++) {
                            logits = m.forward(new int[] {Sampler.argmax(logits)}, cache, true);
                        }
                        long t2 = System.nanoTime();
                        if (i >= 0) {
                            pre[i] = prefill / ((t1 - t0) / 1e9);
                            dec[i] = decode / ((t2 - t1) / 1e9);
                        }
                    }
                }
                double p = median(pre);
                double d = median(dec);
                if (json) {
                    rows.add(new ModelRow(k.name(), weights, prefill, p, decode, d));
                } else {
                    out.printf("%-7s  %26.1f  %40.1f  [%s]%n", k.name(), p, d, weights);
                }
            }
        }
        if (json) {
            out.print(Json.writePretty(new ModelSuite(
                    dir.toString(),
                    sel.device(),
                    Runtime.getRuntime().availableProcessors(),
                    Runtime.version().toString(),
                    warmup,
                    repeat,
                    rows)));
        }
        out.flush();
        return Main.EXIT_OK;
    }

    /** {@code --suite kernels}: {@link CudaBench} on the GPU, its table on stdout (or its rows as JSON). */
    private int kernelSuite() {
        if (repeat < 1) {
            throw new InputException("--repeat must be ≥ 1");
        }
        Devices.Selection sel = device.select(Kernels.byName(kernelNames.getFirst()));
        if (sel.device().equals("cpu")) {
            throw new InputException("--suite kernels times the CUDA kernels and needs a GPU: " + sel.line());
        }
        var err = spec.commandLine().getErr();
        err.println(sel.line());
        err.flush();
        var out = spec.commandLine().getOut();
        CudaContext ctx = CudaContext.get();
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        List<CudaBench.Row> table = CudaBench.run(ctx, repeat, new PrintStream(text, true, StandardCharsets.UTF_8));
        if (!json) {
            out.print(text.toString(StandardCharsets.UTF_8));
        } else {
            List<KernelRow> rows = new ArrayList<>();
            for (CudaBench.Row r : table) {
                rows.add(new KernelRow(
                        r.kind().name().toLowerCase(Locale.ROOT),
                        r.name(),
                        r.ms(),
                        r.bytes(),
                        r.flops(),
                        r.floorMs(),
                        r.percent()));
            }
            out.print(Json.writePretty(new KernelSuite(ctx.describe(), repeat, rows)));
        }
        out.flush();
        return Main.EXIT_OK;
    }

    /**
     * {@code --json} of the model suite.
     *
     * @param device where it ran ("cpu" or "cuda")
     * @param cpus the JVM's available processors
     * @param results one row per kernels set measured
     */
    record ModelSuite(
            String model, String device, int cpus, String java, int warmup, int repeat, List<ModelRow> results) {}

    /** One kernels set on the model: median prefill and decode tokens/s over the repeats. */
    record ModelRow(
            String kernels,
            String weights,
            @JsonProperty("prefill_tokens") int prefillTokens,
            @JsonProperty("prefill_tokens_per_s") double prefillTokensPerS,
            @JsonProperty("decode_tokens") int decodeTokens,
            @JsonProperty("decode_tokens_per_s") double decodeTokensPerS) {}

    /** {@code --json} of the kernel suite: {@link CudaBench}'s rows on {@code device}. */
    record KernelSuite(String device, int repeat, List<KernelRow> rows) {}

    /** One CUDA kernel timing against its roofline floor. */
    record KernelRow(
            String kind,
            String name,
            double ms,
            double bytes,
            double flops,
            @JsonProperty("floor_ms") double floorMs,
            @JsonProperty("percent_of_ceiling") double percentOfCeiling) {}

    private static double median(double[] v) {
        double[] s = v.clone();
        java.util.Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
