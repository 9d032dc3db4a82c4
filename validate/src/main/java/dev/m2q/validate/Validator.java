package dev.m2q.validate;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.model.LayerObserver;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.GptqLayoutCheck;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/**
 * {@code m2q validate}: first the candidate's integrity (every file and tensor against m2q-manifest.json) and its
 * format (the rules engines load by), then, when both pass, its accuracy against the reference on held-out text
 * (ALGORITHMS.md §6), the optional RTN baseline, batch-1 decode throughput, and the user's gates.
 *
 * <p>The candidate is read only through {@code core}'s readers ({@link Qwen2Model} over {@code PackedLinears}):
 * what is measured is what is on disk. The three models run side by side, layer by layer, on the same window, so
 * the per-layer errors need no stored hidden states and memory stays at one window's activations.
 */
public final class Validator {
    /** Logit rows computed at once (bounds the [rows, vocab] buffers for a 152k vocabulary). */
    private static final int LOGIT_ROWS = 64;

    private static final int PROMPT_TOKENS = 16;

    private Validator() {}

    /**
     * What a run found.
     *
     * @param json the whole report (validation.json)
     * @param failures one line per failed check or gate; empty when the candidate passed
     * @param candidate the candidate's agreement, null when checks failed before accuracy ran
     * @param baseline the RTN baseline's, or null
     * @param throughput decode tokens/s per configuration (empty when not measured)
     */
    public record Outcome(
            Map<String, Object> json,
            List<String> failures,
            Figures candidate,
            Figures baseline,
            Map<String, Double> throughput) {
        public boolean passed() {
            return failures.isEmpty();
        }
    }

    /** The per-token and per-layer series the plots draw. */
    public record Figures(String label, double[] kl, double[] layerErrors) {}

    public static Outcome run(ValidateOptions o, String m2qVersion, Consumer<String> log) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("m2q_version", m2qVersion);
        json.put("reference", o.reference().toString());
        json.put("candidate", o.candidate().toString());
        List<String> failures = new ArrayList<>();

        Manifest.Verification v = Manifest.verify(o.candidate());
        Map<String, Object> integrity = new LinkedHashMap<>();
        integrity.put("manifest", v.present());
        integrity.put("files_checked", v.files());
        integrity.put("tensors_checked", v.tensors());
        integrity.put("problems", v.problems().stream().map(Validator::problem).toList());
        json.put("integrity", integrity);
        log.accept(
                v.present()
                        ? "integrity: " + v.files() + " files checked against " + Manifest.FILE + ", "
                                + v.problems().size() + " problem(s)"
                        : "integrity: no " + Manifest.FILE + " (not an m2q release): file hashes not verified");
        v.problems().forEach(p -> failures.add("integrity: " + p));

        List<GptqLayoutCheck.Violation> violations = GptqLayoutCheck.checkCheckpoint(o.candidate(), o.tpSizes());
        Map<String, Object> format = new LinkedHashMap<>();
        format.put("tp", o.tpSizes());
        format.put("violations", violations.stream().map(Validator::violation).toList());
        json.put("format_checks", format);
        log.accept("format: " + violations.size() + " rule(s) broken at --tp " + o.tpSizes());
        violations.forEach(x -> failures.add("format: " + x));

        if (!failures.isEmpty()) {
            json.put("accuracy", null);
            json.put("skipped", "accuracy was not measured: the candidate failed the integrity or format checks");
            json.put("passed", false);
            json.put("failures", failures);
            return new Outcome(json, List.copyOf(failures), null, null, Map.of());
        }

        ModelConfig refCfg = ModelConfig.load(o.reference());
        ModelConfig candCfg = ModelConfig.load(o.candidate());
        requireSameModel(refCfg, candCfg, o);
        json.put("format", candCfg.quantization().method());
        json.put("group_size", candCfg.quantization().groupSize());
        json.put("candidate_path", o.w4Kernel() ? "w4a16 kernel (packed)" : "dequantized to fp32");
        json.put("kernels", o.kernels().name());
        json.put("text", o.text().toString());
        json.put("tokens", o.ids().length);
        json.put("seqlen", o.seqLen());

        long t0 = System.nanoTime();
        Map<String, Object> accuracy = new LinkedHashMap<>();
        Agreement cand = new Agreement("candidate", refCfg.numLayers());
        Agreement base = o.baselineRtn() ? new Agreement("rtn", refCfg.numLayers()) : null;
        double refNll = 0;
        long predicted = 0;
        int windows = 0;
        try (Qwen2Model ref = Qwen2Model.load(o.reference(), o.kernels());
                Qwen2Model q =
                        Qwen2Model.load(o.candidate(), o.kernels(), new Qwen2Model.LoadOptions(o.w4Kernel(), null));
                Qwen2Model rtn = o.baselineRtn()
                        ? Qwen2Model.load(
                                o.reference(),
                                o.kernels(),
                                new Qwen2Model.LoadOptions(
                                        true,
                                        RtnBaseline.transform(
                                                candCfg.quantization().groupSize())))
                        : null) {
            int[] ids = o.ids();
            for (int start = 0; start + 1 < ids.length; start += o.seqLen()) {
                int[] w = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + o.seqLen()));
                refNll += window(ref, q, rtn, w, cand, base);
                predicted += w.length - 1;
                windows++;
                log.accept(String.format(
                        Locale.ROOT,
                        "window %d: %d tokens, running KL mean %.5f, top-1 %.4f",
                        windows,
                        w.length,
                        cand.klMean(),
                        cand.top1()));
            }
        }
        double refPpl = Math.exp(refNll / predicted);
        accuracy.put("windows", windows);
        accuracy.put("predictions", predicted);
        accuracy.put("reference_ppl", refPpl);
        accuracy.put("candidate", cand.json(refPpl));
        accuracy.put("baseline_rtn", base == null ? null : base.json(refPpl));
        accuracy.put("seconds", (System.nanoTime() - t0) / 1e9);
        json.put("accuracy", accuracy);

        Map<String, Double> throughput = new LinkedHashMap<>();
        if (o.decodeTokens() > 0) {
            json.put("throughput", throughput(o, throughput, log));
        }

        gates(o.gates(), refPpl, cand, failures, json);
        json.put("passed", failures.isEmpty());
        json.put("failures", failures);
        return new Outcome(
                json,
                List.copyOf(failures),
                new Figures("candidate", cand.kl(), cand.layerErrors()),
                base == null ? null : new Figures("RTN", base.kl(), base.layerErrors()),
                throughput);
    }

    /** One window through all models side by side; returns the reference's summed next-token NLL. */
    private static double window(
            Qwen2Model ref, Qwen2Model q, Qwen2Model rtn, int[] w, Agreement cand, Agreement base) {
        int n = w.length;
        float[] xr = ref.embed(w);
        float[] xq = q.embed(w);
        float[] xb = rtn == null ? null : rtn.embed(w);
        for (int i = 0; i < ref.numLayers(); i++) {
            xr = ref.layer(i).forward(xr, 1, n, LayerObserver.NONE);
            xq = q.layer(i).forward(xq, 1, n, LayerObserver.NONE);
            cand.layer(i, xr, xq);
            if (rtn != null) {
                xb = rtn.layer(i).forward(xb, 1, n, LayerObserver.NONE);
                base.layer(i, xr, xb);
            }
        }
        int hd = ref.config().hiddenSize();
        int vocab = ref.config().vocabSize();
        double nll = 0;
        for (int r0 = 0; r0 < n; r0 += LOGIT_ROWS) {
            int rows = Math.min(LOGIT_ROWS, n - r0);
            float[] lr = ref.logits(Arrays.copyOfRange(xr, r0 * hd, (r0 + rows) * hd), rows);
            float[] lq = q.logits(Arrays.copyOfRange(xq, r0 * hd, (r0 + rows) * hd), rows);
            float[] lb = rtn == null ? null : rtn.logits(Arrays.copyOfRange(xb, r0 * hd, (r0 + rows) * hd), rows);
            for (int r = 0; r < rows; r++) {
                int t = r0 + r;
                int target = t + 1 < n ? w[t + 1] : -1;
                Agreement.Row refRow = Agreement.Row.of(lr, r * vocab, vocab);
                cand.position(lr, refRow, lq, r * vocab, vocab, target);
                if (lb != null) {
                    base.position(lr, refRow, lb, r * vocab, vocab, target);
                }
                if (target >= 0) {
                    nll -= refRow.logProb(lr, r * vocab, target);
                }
            }
        }
        return nll;
    }

    private static Map<String, Object> throughput(ValidateOptions o, Map<String, Double> out, Consumer<String> log) {
        int[] prompt = Arrays.copyOf(o.ids(), Math.min(PROMPT_TOKENS, o.ids().length));
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("batch", 1);
        j.put("prompt_tokens", prompt.length);
        j.put("decode_tokens", o.decodeTokens());
        j.put("kernels", o.kernels().name());
        try (Qwen2Model ref = Qwen2Model.load(o.reference(), o.kernels())) {
            out.put("BF16", Decode.tokensPerSecond(ref, prompt, o.decodeTokens()));
        }
        try (Qwen2Model q = Qwen2Model.load(o.candidate(), o.kernels(), new Qwen2Model.LoadOptions(true, null))) {
            out.put("W4A16 kernel", Decode.tokensPerSecond(q, prompt, o.decodeTokens()));
        }
        if (!o.w4Kernel()) {
            try (Qwen2Model q = Qwen2Model.load(o.candidate(), o.kernels())) {
                out.put("W4 dequantized (fp32)", Decode.tokensPerSecond(q, prompt, o.decodeTokens()));
            }
        }
        j.put("tokens_per_second", out);
        j.put("w4_speedup_over_bf16", out.get("W4A16 kernel") / out.get("BF16"));
        log.accept(String.format(
                Locale.ROOT,
                "decode batch 1: BF16 %.1f tok/s, W4A16 kernel %.1f tok/s",
                out.get("BF16"),
                out.get("W4A16 kernel")));
        return j;
    }

    private static void gates(
            ValidateOptions.Gates g, double refPpl, Agreement cand, List<String> failures, Map<String, Object> json) {
        List<Map<String, Object>> list = new ArrayList<>();
        double increase = 100 * (cand.ppl() / refPpl - 1);
        if (g.maxPplIncreasePercent() != null) {
            gate(
                    list,
                    failures,
                    "--max-ppl-increase",
                    "%",
                    increase,
                    g.maxPplIncreasePercent(),
                    increase <= g.maxPplIncreasePercent());
        }
        if (g.maxKl() != null) {
            gate(list, failures, "--max-kl", "", cand.klMean(), g.maxKl(), cand.klMean() <= g.maxKl());
        }
        if (g.minTop1() != null) {
            gate(list, failures, "--min-top1", "", cand.top1(), g.minTop1(), cand.top1() >= g.minTop1());
        }
        json.put("gates", list);
    }

    private static void gate(
            List<Map<String, Object>> list,
            List<String> failures,
            String option,
            String unit,
            double value,
            double limit,
            boolean passed) {
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("gate", option);
        j.put("limit", limit);
        j.put("value", value);
        j.put("passed", passed);
        list.add(j);
        if (!passed) {
            String what =
                    switch (option) {
                        case "--max-ppl-increase" -> "perplexity increase";
                        case "--max-kl" -> "mean KL";
                        default -> "top-1 agreement";
                    };
            failures.add(String.format(
                    Locale.ROOT, "gate %s: %s is %.6g%s, limit %.6g%s", option, what, value, unit, limit, unit));
        }
    }

    private static void requireSameModel(ModelConfig ref, ModelConfig cand, ValidateOptions o) {
        if (ref.quantization() != null) {
            throw new InputException(o.reference() + ": --reference is itself quantized ("
                    + ref.quantization().method() + "); pass the BF16 checkpoint");
        }
        if (cand.quantization() == null) {
            throw new InputException(o.candidate() + ": config.json has no quantization_config; --candidate must be a"
                    + " quantized release");
        }
        if (ref.numLayers() != cand.numLayers()
                || ref.hiddenSize() != cand.hiddenSize()
                || ref.intermediateSize() != cand.intermediateSize()
                || ref.vocabSize() != cand.vocabSize()
                || ref.numHeads() != cand.numHeads()
                || ref.numKvHeads() != cand.numKvHeads()) {
            throw new InputException(o.candidate() + " is not a release of " + o.reference() + ": layers/hidden/"
                    + "intermediate/vocab/heads differ (" + ref.numLayers() + "/" + ref.hiddenSize() + "/"
                    + ref.intermediateSize() + "/" + ref.vocabSize() + "/" + ref.numHeads() + "/" + ref.numKvHeads()
                    + " vs " + cand.numLayers() + "/" + cand.hiddenSize() + "/" + cand.intermediateSize() + "/"
                    + cand.vocabSize() + "/" + cand.numHeads() + "/" + cand.numKvHeads() + ")");
        }
    }

    private static Map<String, Object> problem(Manifest.Problem p) {
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("name", p.name());
        j.put("rule", p.rule());
        j.put("detail", p.detail());
        return j;
    }

    private static Map<String, Object> violation(GptqLayoutCheck.Violation x) {
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("tensor", x.tensor());
        j.put("rule", x.rule());
        j.put("detail", x.detail());
        return j;
    }
}
