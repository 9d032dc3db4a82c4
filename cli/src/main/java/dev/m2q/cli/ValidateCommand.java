package dev.m2q.cli;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.Perplexity;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code m2q validate --model DIR --text FILE}: perplexity of a model over a held-out text. */
@Command(
        name = "validate",
        mixinStandardHelpOptions = true,
        description = "Perplexity of a model over a held-out text, in non-overlapping windows of --seqlen tokens.")
final class ValidateCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Mixin
    KernelOptions kernels;

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
            description = "A quantized release of --model (GPTQ layout) to score on the same tokens; prints both"
                    + " perplexities and the increase.")
    Path candidate;

    @Option(names = "--json", description = "Print JSON instead of a sentence.")
    boolean json;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private Map<String, Object> score(Path modelDir, int[] ids) {
        long t0 = System.nanoTime();
        Perplexity.Result r;
        try (Qwen2Model m = Qwen2Model.load(modelDir, kernels.get())) {
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
        j.put("kernels", kernels.get().name());
        j.put("seconds", (System.nanoTime() - t0) / 1e9);
        return j;
    }

    private static String sentence(Map<String, Object> j) {
        return String.format(
                java.util.Locale.ROOT,
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

    @Override
    public Integer call() {
        if (seqlen < 2) {
            throw new InputException("--seqlen must be at least 2, got " + seqlen);
        }
        if (maxTokens != null && maxTokens < 2) {
            throw new InputException("--max-tokens must be at least 2, got " + maxTokens);
        }
        Path dir = model.dir();
        String content = TextFiles.readUtf8(text, "--text");
        int[] ids = Tokenizer.load(dir.resolve("tokenizer.json")).encode(content);
        if (maxTokens != null && ids.length > maxTokens) {
            ids = Arrays.copyOf(ids, maxTokens);
        }
        if (ids.length < 2) {
            throw new InputException(text + ": has " + ids.length + " token(s); perplexity needs at least 2");
        }
        var out = spec.commandLine().getOut();
        Map<String, Object> ref = score(dir, ids);
        if (candidate == null) {
            if (json) {
                out.print(Json.writePretty(ref));
            } else {
                out.println(sentence(ref));
            }
        } else {
            if (!java.nio.file.Files.isDirectory(candidate)) {
                throw new InputException(candidate + ": not a directory (--candidate)");
            }
            Map<String, Object> cand = score(candidate, ids);
            double increase = 100.0 * ((Double) cand.get("ppl") / (Double) ref.get("ppl") - 1);
            if (json) {
                Map<String, Object> j = new LinkedHashMap<>();
                j.put("reference", ref);
                j.put("candidate", cand);
                j.put("ppl_increase_percent", increase);
                out.print(Json.writePretty(j));
            } else {
                out.println("reference: " + sentence(ref));
                out.println("candidate: " + sentence(cand));
                out.printf("perplexity increase: %+.2f%%%n", increase);
            }
        }
        out.flush();
        return Main.EXIT_OK;
    }
}
