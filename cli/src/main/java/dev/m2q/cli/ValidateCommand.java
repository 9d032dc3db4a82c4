package dev.m2q.cli;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Devices;
import dev.m2q.core.model.Perplexity;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.Tokenizer;
import dev.m2q.validate.Report;
import dev.m2q.validate.ValidateOptions;
import dev.m2q.validate.Validator;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code m2q validate --reference BF16DIR --candidate QDIR --text FILE}: the near-lossless proof of a release, read
 * back from its files; without {@code --candidate}, the perplexity of one model.
 */
@Command(
        name = "validate",
        mixinStandardHelpOptions = true,
        description = {
            "Checks a quantized release against its BF16 reference, from the files on disk: manifest hashes, format"
                    + " rules, then perplexity, per-token KL(P_ref || P_cand) mean and p99, top-1 agreement,"
                    + " per-layer output error, batch-1 decode tokens/s, and your gates. Writes validation.json,"
                    + " validation.md and PNG plots.",
            "Without --candidate: the perplexity of --reference over the text.",
            "Exit 0 when everything passes, 1 when a check or gate fails, 2 on bad input."
        })
final class ValidateCommand implements Callable<Integer> {
    @Option(
            names = {"--reference", "--model"},
            required = true,
            paramLabel = "DIR",
            description = "The BF16 Hugging Face model directory (config.json, *.safetensors, tokenizer.json).")
    Path reference;

    @Mixin
    KernelOptions kernels;

    @Mixin
    DeviceOptions device;

    /** The kernels chosen by --device and --kernels, once per run. */
    private Devices.Selection selection;

    @Option(names = "--text", required = true, paramLabel = "FILE", description = "Held-out UTF-8 text.")
    Path text;

    @Option(
            names = "--seqlen",
            defaultValue = "512",
            description = "Window length in tokens (default ${DEFAULT-VALUE}); each window starts fresh.")
    int seqlen;

    @Option(
            names = "--max-tokens",
            paramLabel = "N",
            description = "Score only the first N tokens of the text (default: all).")
    Integer maxTokens;

    @Option(
            names = "--candidate",
            paramLabel = "DIR",
            description = "The quantized release (GPTQ, auto_round or compressed-tensors) to validate.")
    Path candidate;

    @Option(
            names = "--baseline",
            paramLabel = "rtn",
            description = "Also quantize the reference with RTN on the fly (same group size) and report it beside.")
    String baseline;

    @Option(
            names = "--w4-kernel",
            description = "Run the candidate on the packed W4A16 kernel (default: dequantize its linears to fp32 once,"
                    + " the engines' arithmetic; needs 8x the candidate's weight memory).")
    boolean w4Kernel;

    @Option(
            names = "--tp",
            split = ",",
            defaultValue = "1",
            paramLabel = "N",
            description = "Tensor-parallel sizes the format checks apply (default ${DEFAULT-VALUE}).")
    List<Integer> tp;

    @Option(
            names = "--decode-tokens",
            defaultValue = "32",
            paramLabel = "N",
            description = "Tokens generated per model for batch-1 decode tokens/s (default ${DEFAULT-VALUE}; 0 skips).")
    int decodeTokens;

    @Option(
            names = "--max-ppl-increase",
            paramLabel = "PCT",
            description = "Fail (exit 1) when perplexity rises by more than PCT percent.")
    Double maxPplIncrease;

    @Option(
            names = "--max-kl",
            paramLabel = "NATS",
            description = "Fail (exit 1) when the mean per-token KL exceeds NATS.")
    Double maxKl;

    @Option(
            names = "--min-top1",
            paramLabel = "FRACTION",
            description = "Fail (exit 1) when top-1 agreement is below FRACTION (e.g. 0.95).")
    Double minTop1;

    @Option(
            names = "--report-dir",
            paramLabel = "DIR",
            description = "Where validation.json, validation.md and the plots go (default: the candidate folder).")
    Path reportDir;

    @Option(names = "--no-report", description = "Write no report files (print only).")
    boolean noReport;

    @Option(names = "--json", description = "Print the report JSON instead of a summary.")
    boolean json;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        if (seqlen < 2) {
            throw new InputException("--seqlen must be at least 2, got " + seqlen);
        }
        if (maxTokens != null && maxTokens < 2) {
            throw new InputException("--max-tokens must be at least 2, got " + maxTokens);
        }
        if (!Files.isDirectory(reference)) {
            throw new InputException(reference + ": not a directory (--reference takes the BF16 model directory)");
        }
        if (baseline != null && !baseline.equals("rtn")) {
            throw new InputException("--baseline " + baseline + ": the only baseline is rtn");
        }
        String content = TextFiles.readUtf8(text, "--text");
        selection = device.select(kernels.get());
        PrintWriter err = spec.commandLine().getErr();
        int[] ids = Tokenizer.load(reference.resolve("tokenizer.json")).encode(content);
        if (maxTokens != null && ids.length > maxTokens) {
            ids = Arrays.copyOf(ids, maxTokens);
        }
        if (ids.length < 2) {
            throw new InputException(text + ": has " + ids.length + " token(s); perplexity needs at least 2");
        }
        PrintWriter out = spec.commandLine().getOut();
        if (candidate == null) {
            Map<String, Object> ref = score(reference, ids, err);
            if (json) {
                out.print(Json.writePretty(ref));
            } else {
                out.println(sentence(ref));
            }
            out.flush();
            return Main.EXIT_OK;
        }
        if (!Files.isDirectory(candidate)) {
            throw new InputException(candidate + ": not a directory (--candidate)");
        }
        ValidateOptions opts = new ValidateOptions(
                reference,
                candidate,
                text,
                ids,
                seqlen,
                selection.kernels(),
                w4Kernel,
                baseline != null,
                tp,
                decodeTokens,
                new ValidateOptions.Gates(maxPplIncrease, maxKl, minTop1));
        say(err);
        Validator.Outcome o = Validator.run(opts, Version.get(), line -> {
            if (!json) {
                err.println(line);
                err.flush();
            }
        });
        Path dir = reportDir != null ? reportDir : candidate;
        List<Path> written = noReport ? List.of() : Report.write(dir, o);
        if (json) {
            out.print(Json.writePretty(o.json()));
        } else {
            summary(out, o);
            written.forEach(p -> out.println("wrote " + p));
        }
        out.flush();
        return o.passed() ? Main.EXIT_OK : Main.EXIT_CHECK_FAILED;
    }

    /** The device line, once the options and the model are known good (bad input gets its one line alone). */
    private void say(PrintWriter err) {
        err.println(selection.line());
        err.flush();
    }

    @SuppressWarnings("unchecked")
    private static void summary(PrintWriter out, Validator.Outcome o) {
        Map<String, Object> acc = (Map<String, Object>) o.json().get("accuracy");
        if (acc != null) {
            out.printf(Locale.ROOT, "reference perplexity %.4f%n", acc.get("reference_ppl"));
            for (String key : List.of("candidate", "baseline_rtn")) {
                if (acc.get(key) instanceof Map<?, ?> m) {
                    out.printf(
                            Locale.ROOT,
                            "%-9s perplexity %.4f (%+.3f%%), KL mean %.5f p99 %.5f, top-1 %.2f%%%n",
                            key.equals("candidate") ? "candidate" : "RTN",
                            m.get("ppl"),
                            m.get("ppl_increase_percent"),
                            m.get("kl_mean"),
                            m.get("kl_p99"),
                            100 * (Double) m.get("top1_agreement"));
                }
            }
        }
        if (!o.throughput().isEmpty()) {
            StringBuilder b = new StringBuilder("decode batch 1:");
            o.throughput().forEach((k, v) -> b.append(String.format(Locale.ROOT, " %s %.1f tok/s;", k, v)));
            out.println(b.substring(0, b.length() - 1));
        }
        if (o.passed()) {
            out.println("PASSED");
        } else {
            out.println("FAILED:");
            o.failures().forEach(f -> out.println("  " + f));
        }
    }

    private Map<String, Object> score(Path modelDir, int[] ids, PrintWriter err) {
        long t0 = System.nanoTime();
        Perplexity.Result r;
        try (Qwen2Model m = Qwen2Model.load(modelDir, selection.kernels())) {
            say(err);
            r = Perplexity.evaluate(m, ids, seqlen);
        }
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("model", modelDir.toString());
        j.put("text", text.toString());
        j.put("tokens", r.tokens());
        j.put("predicted", r.predicted());
        j.put("windows", r.windows());
        j.put("seqlen", seqlen);
        j.put("nll", r.nll());
        j.put("ppl", r.ppl());
        j.put("kernels", selection.kernels().name());
        j.put("seconds", (System.nanoTime() - t0) / 1e9);
        return j;
    }

    private static String sentence(Map<String, Object> j) {
        return String.format(
                Locale.ROOT,
                "perplexity %.4f over %d tokens (%d predictions in %d windows of up to %d) [%s, %s kernels, %.1f s]",
                j.get("ppl"),
                j.get("tokens"),
                j.get("predicted"),
                j.get("windows"),
                j.get("seqlen"),
                j.get("model"),
                j.get("kernels"),
                j.get("seconds"));
    }
}
