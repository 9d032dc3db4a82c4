package dev.m2q.validate;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.PromptFile;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.function.Consumer;

/**
 * The speculative-decoding measurements of {@code m2q validate --draft} (ALGORITHMS §6): for each k of the sweep,
 * over all prompts, the acceptance length τ, per-position acceptance, tokens/s with and without the head on the same
 * engine, the measured draft/target cost ratio c, and the formula's speedup beside the measured one.
 *
 * <p>Definitions, per k, summed over the prompts:
 *
 * <ul>
 *   <li>τ = tokens emitted by verify rounds / verify forwards (the first token, chosen from the prefill, is in
 *       neither);
 *   <li>acceptance_j = accepted_j / reached_j, where reached_j counts the rounds in which draft j was verified;
 *   <li>α = Σ_j accepted_j / Σ_j reached_j: the maximum-likelihood acceptance rate under the formula's own model
 *       (each reached draft accepted independently with probability α), so τ's prediction (1 − α^{k+1}) / (1 − α)
 *       beside the measured τ shows how far acceptance is from that model;
 *   <li>tokens/s = tokens after the first / decode time (everything after the prefill), for both engines;
 *   <li>c = (draft time / drafts proposed) / (plain decode time / plain decode forwards): one draft step, with its
 *       share of the accepted rows' draft pass, against one target decode forward;
 *   <li>predicted speedup = (1 − α^{k+1}) / ((1 − α)(k·c + 1)), measured speedup = tokens/s with / without.
 * </ul>
 *
 * Prompt i runs with {@code SplittableRandom(seed + i)} on both engines; at T = 0 each speculative output is also
 * compared with the plain one (they must be equal token for token).
 */
public final class SpecBench {
    /** The unit of progress reported to a {@link ProgressListener} log: one prompt decoded in one pass of the sweep. */
    public static final String PHASE = "speculative run";

    private static final int WARMUP_TOKENS = 64;
    private static final int WARMUP_PASSES = 3;
    private static final int MAX_K = 64;

    private SpecBench() {}

    /**
     * What to measure.
     *
     * @param candidate the target release (its tokenizer, chat template and eos ids are used)
     * @param draft the EAGLE-3 head's folder
     * @param prompts the prompt file ({@link PromptFile})
     * @param ks the drafts per round to sweep, ascending
     * @param specTokens new tokens per prompt and engine
     * @param w4Kernel run the target on the packed W4A16 kernel
     */
    public record Options(
            Path candidate,
            Path draft,
            Path prompts,
            int[] ks,
            double temperature,
            int specTokens,
            long seed,
            boolean w4Kernel,
            Kernels kernels) {
        public Options {
            if (ks.length == 0) {
                throw new InputException("--k needs at least one value");
            }
            if (!(temperature >= 0) || Double.isInfinite(temperature)) {
                throw new InputException("--temperature must be a finite number ≥ 0, got " + temperature);
            }
            if (specTokens < 2) {
                throw new InputException("--spec-tokens must be at least 2, got " + specTokens);
            }
            ks = ks.clone();
        }
    }

    /**
     * The figures of one k.
     *
     * @param proposed [k], reached [k], accepted [k] per draft position, summed over prompts
     * @param greedyIdentical at T = 0, the prompts whose output equals plain decoding's; null when sampling
     */
    public record Row(
            int k,
            int rounds,
            long emitted,
            long[] proposed,
            long[] reached,
            long[] accepted,
            double tokensPerSecond,
            double draftNanosPerStep,
            double targetNanosPerRound,
            double c,
            Integer greedyIdentical) {
        public double tau() {
            return emitted / (double) rounds;
        }

        public double alpha() {
            return alphaOf(reached, accepted);
        }

        public double[] acceptance() {
            double[] a = new double[k];
            for (int j = 0; j < k; j++) {
                a[j] = reached[j] == 0 ? Double.NaN : accepted[j] / (double) reached[j];
            }
            return a;
        }
    }

    /** The baseline: plain decoding of every prompt on the same target. */
    public record Baseline(long tokens, int forwards, long decodeNanos) {
        public double tokensPerSecond() {
            return tokens / (decodeNanos / 1e9);
        }

        public double nanosPerForward() {
            return decodeNanos / (double) forwards;
        }
    }

    /**
     * What a sweep measured.
     *
     * @param json the figures as validation.json's {@code "speculative"} object (after {@link #measure} alone, the
     *     target's and the head's fields are null; {@link #run} fills them)
     */
    public record Outcome(Measurements json, Baseline baseline, List<Row> rows) {}

    /**
     * validation.json's {@code "speculative"} object (FORMATS.md §6).
     *
     * @param candidate the target release
     * @param draft the head's folder
     * @param draftVocabSize the head's draft vocabulary
     * @param taps the target layers the head reads
     * @param promptsFile the prompt file
     * @param candidatePath how the target ran
     * @param kernels the kernels' name
     * @param prompts prompts decoded
     * @param promptTokensMean their mean length in tokens
     * @param temperature 0 greedy, > 0 sampling
     * @param specTokens new tokens per prompt and engine
     * @param seed prompt i samples with seed + i
     * @param alphaEstimator how α is estimated, in words
     * @param plain the plain-decoding baseline
     * @param sweep one row per k, ascending
     */
    public record Measurements(
            String candidate,
            String draft,
            @JsonProperty("draft_vocab_size") Integer draftVocabSize,
            List<Integer> taps,
            @JsonProperty("prompts_file") String promptsFile,
            @JsonProperty("candidate_path") String candidatePath,
            String kernels,
            int prompts,
            @JsonProperty("prompt_tokens_mean") double promptTokensMean,
            double temperature,
            @JsonProperty("spec_tokens") int specTokens,
            long seed,
            @JsonProperty("alpha_estimator") String alphaEstimator,
            Plain plain,
            List<SweepRow> sweep) {
        public Measurements {
            Objects.requireNonNull(plain, "plain");
            taps = taps == null ? null : List.copyOf(taps);
            sweep = List.copyOf(sweep);
        }

        /** The same figures with the target's and the head's fields. */
        Measurements withTarget(
                String candidate,
                String draft,
                int draftVocabSize,
                List<Integer> taps,
                String promptsFile,
                String candidatePath,
                String kernels) {
            return new Measurements(
                    candidate,
                    draft,
                    draftVocabSize,
                    taps,
                    promptsFile,
                    candidatePath,
                    kernels,
                    prompts,
                    promptTokensMean,
                    temperature,
                    specTokens,
                    seed,
                    alphaEstimator,
                    plain,
                    sweep);
        }
    }

    /** Plain decoding of every prompt on the same target: the baseline every speedup is over. */
    public record Plain(
            long tokens,
            int forwards,
            @JsonProperty("tokens_per_second") double tokensPerSecond,
            @JsonProperty("target_forward_ms") double targetForwardMs) {}

    /**
     * One k of the sweep, as written (the definitions are the class's).
     *
     * @param acceptance per draft position j, accepted / reached (NaN, written null, when none was reached)
     * @param greedyIdentical at T = 0 the prompts whose output equals plain decoding's; null when sampling
     */
    public record SweepRow(
            int k,
            int rounds,
            long emitted,
            double tau,
            double alpha,
            @JsonProperty("predicted_tau") double predictedTau,
            List<Double> acceptance,
            List<Long> proposed,
            List<Long> reached,
            List<Long> accepted,
            @JsonProperty("tokens_per_second") double tokensPerSecond,
            @JsonProperty("plain_tokens_per_second") double plainTokensPerSecond,
            double speedup,
            @JsonProperty("predicted_speedup") double predictedSpeedup,
            double c,
            @JsonProperty("draft_step_ms") double draftStepMs,
            @JsonProperty("verify_forward_ms") double verifyForwardMs,
            @JsonProperty("greedy_identical_prompts") Integer greedyIdenticalPrompts) {
        public SweepRow {
            acceptance = ValidationReport.nanForNull(acceptance);
            proposed = List.copyOf(proposed);
            reached = List.copyOf(reached);
            accepted = List.copyOf(accepted);
        }
    }

    /** Parses {@code --k}: a list "1,3,5", a range "1..7", or both mixed ("1..3,5"); returns the ks ascending. */
    public static int[] parseKs(String spec) {
        TreeSet<Integer> ks = new TreeSet<>();
        for (String part : spec.split(",")) {
            String p = part.strip();
            try {
                int dots = p.indexOf("..");
                int lo = Integer.parseInt(dots < 0 ? p : p.substring(0, dots).strip());
                int hi = dots < 0 ? lo : Integer.parseInt(p.substring(dots + 2).strip());
                if (lo < 1 || hi < lo || hi > MAX_K) {
                    throw new InputException(
                            "--k " + spec + ": each k lies in 1.." + MAX_K + " and a range reads lo..hi");
                }
                for (int k = lo; k <= hi; k++) {
                    ks.add(k);
                }
            } catch (NumberFormatException e) {
                throw new InputException("--k " + spec + ": expected a list like 1,3,5 or a range like 1..7", e);
            }
        }
        return ks.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Reads the head in {@code dir} and refuses it unless it fits {@code target}; messages name the folder. */
    public static DraftHead readHead(Path dir, ModelConfig target) {
        if (!Files.isDirectory(dir)) {
            throw new InputException(dir + ": not a directory (--draft takes an EAGLE-3 head's folder)");
        }
        // A head written by m2q (eagle train, eagle attach) lists its files' sha256: a damaged file is named before
        // any tensor is read. Third-party heads have no manifest.
        Manifest.Verification v = Manifest.verify(dir);
        if (v.present() && !v.ok()) {
            throw new InputException(dir + ": the draft head's files do not match its " + Manifest.FILE + ": "
                    + v.problems().getFirst());
        }
        DraftHead head = DraftHead.read(dir);
        try {
            head.checkAgainst(target);
        } catch (InputException e) {
            throw new InputException(dir + ": " + e.getMessage(), e);
        }
        return head;
    }

    /** The eos ids of a model folder: generation_config.json's eos_token_id, else config.json's (int or list). */
    public static int[] eosIds(Path dir) {
        for (String file : List.of("generation_config.json", "config.json")) {
            Path f = dir.resolve(file);
            if (!Files.isRegularFile(f)) {
                continue;
            }
            Object eos;
            try {
                eos = Json.parseObject(Files.readString(f)).get("eos_token_id");
            } catch (IOException | JsonException e) {
                throw new InputException(f + ": cannot read eos_token_id: " + e.getMessage(), e);
            }
            if (eos instanceof Number n) {
                return new int[] {n.intValue()};
            }
            if (eos instanceof List<?> l) {
                return l.stream().mapToInt(x -> ((Number) x).intValue()).toArray();
            }
        }
        return new int[0];
    }

    /** Loads the target and the head and measures the sweep over the prompt file. */
    public static Outcome run(Options o, DraftHead head, Consumer<String> log) {
        ModelConfig cfg = ModelConfig.load(o.candidate());
        List<int[]> prompts = PromptFile.encode(
                o.prompts(), Tokenizer.load(o.candidate().resolve("tokenizer.json")), ChatTemplate.load(o.candidate()));
        int[] eos = eosIds(o.candidate());
        try (Qwen2Model target =
                Qwen2Model.load(o.candidate(), o.kernels(), new Qwen2Model.LoadOptions(o.w4Kernel(), null))) {
            int[] taps = head.config().taps(cfg.numLayers());
            Outcome out;
            try (DraftModel draft = new DraftModel(head, o.kernels());
                    EagleDrafter drafter = new EagleDrafter(draft, target)) {
                SpecDecode spec = new SpecDecode(target, taps, drafter);
                out = measure(spec, prompts, o.ks(), o.temperature(), o.specTokens(), o.seed(), eos, log);
            }
            Measurements j = out.json()
                    .withTarget(
                            o.candidate().toString(),
                            o.draft().toString(),
                            head.config().draftVocabSize(),
                            Arrays.stream(taps).boxed().toList(),
                            o.prompts().toString(),
                            o.w4Kernel() ? "w4a16 kernel (packed)" : "dequantized to fp32",
                            o.kernels().name());
            return new Outcome(j, out.baseline(), out.rows());
        }
    }

    /** One k's counts and times, summed over the prompts as they are decoded. */
    private static final class Tally {
        final int k;
        final long[] proposed;
        final long[] reached;
        final long[] accepted;
        int rounds;
        long emitted;
        long target;
        long draft;
        int identical;

        Tally(int k) {
            this.k = k;
            proposed = new long[k];
            reached = new long[k];
            accepted = new long[k];
        }

        /** Adds one prompt's run; {@code plain} is the same prompt's plain output. */
        void add(SpecDecode.Result r, int[] plain) {
            rounds += r.rounds();
            emitted += r.roundTokens();
            target += r.targetNanos();
            draft += r.draftNanos();
            for (int j = 0; j < k; j++) {
                proposed[j] += r.proposed()[j];
                reached[j] += r.reached()[j];
                accepted[j] += r.accepted()[j];
            }
            if (Arrays.equals(r.tokens(), plain)) {
                identical++;
            }
        }
    }

    /**
     * Decodes the first prompt {@link #WARMUP_PASSES} times plainly and with every k of the sweep, so that each k's
     * verify row count (k + 1, a kernel path of its own) is compiled before any k is timed. Warming only the largest
     * k left the first k's runs to pay for compiling its kernels: on the README demo's release k = 1 measured 0.71×
     * inside the release and 0.96× warm.
     */
    static void warmUp(
            SpecDecode spec, int[] prompt, int[] ks, double temperature, int specTokens, long seed, int[] eos) {
        int tokens = Math.min(specTokens, WARMUP_TOKENS);
        for (int pass = 0; pass < WARMUP_PASSES; pass++) {
            spec.plain(prompt, new SpecDecode.Settings(1, temperature, tokens, eos), new SplittableRandom(seed));
            for (int k : ks) {
                spec.generate(prompt, new SpecDecode.Settings(k, temperature, tokens, eos), new SplittableRandom(seed));
            }
        }
    }

    /**
     * The sweep on a ready engine: the warm-up, then prompt by prompt a plain run, every k, and a second plain run.
     * Each prompt's runs follow one another, so a machine whose load drifts slows the baseline and the speculative
     * runs alike (measured one pass after the other, a shared machine's plain baseline moved by 2× between passes);
     * of a prompt's two plain runs the faster counts, so neither JIT compilation nor noise can flatter the speedup
     * by slowing the baseline.
     */
    public static Outcome measure(
            SpecDecode spec,
            List<int[]> prompts,
            int[] ks,
            double temperature,
            int specTokens,
            long seed,
            int[] eos,
            Consumer<String> log) {
        warmUp(spec, prompts.getFirst(), ks, temperature, specTokens, seed, eos);

        // Progress: each prompt decoded once per run: two plain runs and one per k.
        long runs = (long) prompts.size() * (ks.length + 2);
        long[] ran = {0};
        Runnable tick = () -> ProgressListener.units(log, PHASE, ++ran[0], runs, null);
        List<Tally> tallies = Arrays.stream(ks).mapToObj(Tally::new).toList();
        long plainTokens = 0;
        int plainForwards = 0;
        long plainNanos = 0;
        long firstNanos = 0;
        long secondNanos = 0;
        for (int i = 0; i < prompts.size(); i++) {
            int[] prompt = prompts.get(i);
            SpecDecode.Settings plainSettings = new SpecDecode.Settings(1, temperature, specTokens, eos);
            SpecDecode.PlainResult first = spec.plain(prompt, plainSettings, new SplittableRandom(seed + i));
            tick.run();
            for (Tally t : tallies) {
                SpecDecode.Settings s = new SpecDecode.Settings(t.k, temperature, specTokens, eos);
                t.add(spec.generate(prompt, s, new SplittableRandom(seed + i)), first.tokens());
                tick.run();
            }
            SpecDecode.PlainResult second = spec.plain(prompt, plainSettings, new SplittableRandom(seed + i));
            tick.run();
            plainTokens += first.tokens().length - 1;
            plainForwards += first.forwards();
            plainNanos += Math.min(first.decodeNanos(), second.decodeNanos());
            firstNanos += first.decodeNanos();
            secondNanos += second.decodeNanos();
        }
        Baseline base = new Baseline(plainTokens, plainForwards, plainNanos);
        log.accept(String.format(
                Locale.ROOT,
                "speculative: plain decoding %.1f tok/s (each prompt's faster plain run; first runs %.1f, second"
                        + " runs %.1f), %.3f ms per target forward, %d prompts",
                base.tokensPerSecond(),
                plainTokens / (firstNanos / 1e9),
                plainTokens / (secondNanos / 1e9),
                base.nanosPerForward() / 1e6,
                prompts.size()));

        List<Row> rows = new ArrayList<>();
        for (Tally m : tallies) {
            int k = m.k;
            long steps = Arrays.stream(m.proposed).sum();
            double stepNanos = steps == 0 ? Double.NaN : m.draft / (double) steps;
            Row row = new Row(
                    k,
                    m.rounds,
                    m.emitted,
                    m.proposed,
                    m.reached,
                    m.accepted,
                    m.emitted / ((m.target + m.draft) / 1e9),
                    stepNanos,
                    m.rounds == 0 ? Double.NaN : m.target / (double) m.rounds,
                    stepNanos / base.nanosPerForward(),
                    temperature == 0 ? m.identical : null);
            rows.add(row);
            log.accept(String.format(
                    Locale.ROOT,
                    "speculative k=%d: τ %.3f, α %.3f, %.1f tok/s (%.2f×, predicted %.2f×), c %.3f",
                    k,
                    row.tau(),
                    row.alpha(),
                    row.tokensPerSecond(),
                    row.tokensPerSecond() / base.tokensPerSecond(),
                    predictedSpeedup(row.alpha(), k, row.c()),
                    row.c()));
        }
        return new Outcome(json(prompts, temperature, specTokens, seed, base, rows), base, rows);
    }

    private static Measurements json(
            List<int[]> prompts, double temperature, int specTokens, long seed, Baseline base, List<Row> rows) {
        List<SweepRow> sweep = new ArrayList<>();
        for (Row r : rows) {
            sweep.add(new SweepRow(
                    r.k(),
                    r.rounds(),
                    r.emitted(),
                    r.tau(),
                    r.alpha(),
                    predictedTau(r.alpha(), r.k()),
                    Arrays.stream(r.acceptance()).boxed().toList(),
                    Arrays.stream(r.proposed()).boxed().toList(),
                    Arrays.stream(r.reached()).boxed().toList(),
                    Arrays.stream(r.accepted()).boxed().toList(),
                    r.tokensPerSecond(),
                    base.tokensPerSecond(),
                    r.tokensPerSecond() / base.tokensPerSecond(),
                    predictedSpeedup(r.alpha(), r.k(), r.c()),
                    r.c(),
                    r.draftNanosPerStep() / 1e6,
                    r.targetNanosPerRound() / 1e6,
                    r.greedyIdentical()));
        }
        return new Measurements(
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                prompts.size(),
                prompts.stream().mapToInt(p -> p.length).average().orElse(0),
                temperature,
                specTokens,
                seed,
                "sum of accepted drafts / sum of drafts reached (verified), the MLE under independent acceptance",
                new Plain(base.tokens(), base.forwards(), base.tokensPerSecond(), base.nanosPerForward() / 1e6),
                sweep);
    }

    /** Σ accepted / Σ reached over the draft positions; NaN when no draft was verified. */
    static double alphaOf(long[] reached, long[] accepted) {
        long r = Arrays.stream(reached).sum();
        return r == 0 ? Double.NaN : Arrays.stream(accepted).sum() / (double) r;
    }

    /** (1 − α^{k+1}) / (1 − α), the expected tokens per round at independent acceptance α; k + 1 at α = 1. */
    static double predictedTau(double alpha, int k) {
        if (alpha == 1) {
            return k + 1;
        }
        return (1 - Math.pow(alpha, k + 1)) / (1 - alpha);
    }

    /** (1 − α^{k+1}) / ((1 − α)(k·c + 1)). */
    static double predictedSpeedup(double alpha, int k, double c) {
        return predictedTau(alpha, k) / (k * c + 1);
    }
}
