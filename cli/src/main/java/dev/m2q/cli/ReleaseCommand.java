package dev.m2q.cli;

import dev.m2q.core.InputException;
import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.StagedDir;
import dev.m2q.core.json.Json;
import dev.m2q.core.pipeline.QuantizeJob;
import dev.m2q.eagle.attach.DraftAttach;
import dev.m2q.eagle.train.DraftTraining;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/**
 * {@code m2q release}: quantize, then a draft head (trained from prompts, attached, or none), then validate with its
 * gates, each stage the single command run with the recipe's options. Each stage's inputs (its options, the files
 * they name, the model's files and the outputs of the stages before it) are hashed into a key kept in
 * {@code OUT.m2q-release/state.json}: a rerun skips a finished stage whose key and output are unchanged, continues a
 * killed stage with the command's own {@code --resume} where it has one, and redoes a stage whose key changed,
 * saying what changed. The effective recipe (every option's value, defaults filled in, and the inputs' sha256) is
 * written into the release as {@code m2q-recipe.yaml}. Progress: every stage reports its units to a
 * {@link ReleaseProgress} (a redrawn line with the stage's bar and the whole run's time left on a terminal, plain
 * lines otherwise), whose time left comes from {@link RunEta} and, for stages not run yet, {@link StageCost}.
 */
@Command(
        name = "release",
        mixinStandardHelpOptions = true,
        description = {
            "The whole release in one resumable command: quantize -> draft head (eagle data + train from --prompts,"
                    + " or attach --draft HEAD, or none) -> validate (text, tasks, speculative decoding) -> gates.",
            "Options of the stages are given by their own names (--nsamples 64, --steps 300); a name two stages"
                    + " share takes the stage as a prefix (--quantize.lr, --eagle-train.lr, --validate.prompts)."
                    + " A command-line option overrides the recipe's value.",
            "Exit 0 when the release is complete and its gates pass, 1 when a gate fails (the release stays, marked"
                    + " failed in validation.md), 2 on bad input; a stage's own failure ends the run with its code,"
                    + " and a rerun of the same command continues from there."
        })
final class ReleaseCommand implements Callable<Integer> {
    /** The state and work folder beside --out. */
    static final String WORK_SUFFIX = ".m2q-release";
    /** The effective recipe inside the release. */
    static final String RECIPE_FILE = dev.m2q.validate.ModelCard.RECIPE_FILE;

    static final String STATE_FILE = "state.json";

    @Option(names = "--model", paramLabel = "DIR", description = "The BF16 model folder (or the recipe's model).")
    Path model;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "The release folder to build.")
    Path out;

    @Option(
            names = "--recipe",
            paramLabel = "FILE",
            description = "A recipe (YAML): model, draft, and the options of quantize, eagle-data, eagle-train and"
                    + " validate; a release's own m2q-recipe.yaml reproduces it.")
    Path recipeFile;

    @Option(
            names = "--prompts",
            paramLabel = "FILE",
            description = "Train an EAGLE-3 head from these prompts (the recipe's eagle-data.prompts).")
    Path prompts;

    @Option(names = "--draft", paramLabel = "HEAD", description = "Attach this trained head instead of training one.")
    Path draft;

    @Option(names = "--no-draft", description = "No draft head, whatever the recipe says.")
    boolean noDraft;

    @Option(
            names = "--overwrite",
            description = "Replace an --out that m2q release did not build (a release it built is continued or"
                    + " redone stage by stage without this).")
    boolean overwrite;

    @Option(
            names = "--dry-run",
            description = "Check the recipe and options, then say for each stage whether it would be skipped,"
                    + " continued, redone or run, and with which command; runs and writes nothing.")
    boolean dryRun;

    @Unmatched
    List<String> stageOptions = new ArrayList<>();

    @Spec
    CommandSpec spec;

    /** A stage: its recipe section, the command it runs and the options the release sets itself. */
    enum Stage {
        QUANTIZE("quantize", List.of("quantize"), QuantizeCommand::new, Set.of("--model", "--out", "--resume")),
        EAGLE_DATA("eagle-data", List.of("eagle", "data"), EagleDataCommand::new, Set.of("--target", "--out")),
        EAGLE_TRAIN(
                "eagle-train",
                List.of("eagle", "train"),
                EagleTrainCommand::new,
                Set.of("--target", "--quantized", "--data", "--out", "--resume")),
        ATTACH("attach", List.of("eagle", "attach"), EagleAttachCommand::new, Set.of("--draft", "--release")),
        VALIDATE(
                "validate",
                List.of("validate"),
                ValidateCommand::new,
                Set.of("--reference", "--candidate", "--draft", "--report-dir", "--out", "--no-report", "--json"));

        final String section;
        final List<String> command;
        final Supplier<Object> factory;
        /** Options m2q release sets (besides --overwrite, help and version): not in the recipe. */
        final Set<String> wired;

        Stage(String section, List<String> command, Supplier<Object> factory, Set<String> wired) {
            this.section = section;
            this.command = command;
            this.factory = factory;
            this.wired = wired;
        }

        CommandSpec spec() {
            return new CommandLine(factory.get()).getCommandSpec();
        }

        /** The options a recipe may set, by long name. */
        Map<String, OptionSpec> options() {
            Map<String, OptionSpec> m = new LinkedHashMap<>();
            for (OptionSpec o : spec().options()) {
                String name = o.longestName();
                if (o.usageHelp() || o.versionHelp() || "--overwrite".equals(name) || wired.contains(name)) {
                    continue;
                }
                m.put(name, o);
            }
            return m;
        }

        static Stage ofSection(String section) {
            for (Stage s : values()) {
                if (s.section.equals(section)) {
                    return s;
                }
            }
            return null;
        }
    }

    /** Where each stage stands, kept in OUT.m2q-release/state.json. */
    record State(int version, Map<String, StageState> stages, Map<String, FileHash> hashes) {}

    /**
     * @param key the hash of the stage's inputs when it last started
     * @param status "started" or "finished"
     * @param args the stage's options then (for saying what changed)
     * @param inputs the sha256 of each input then
     * @param output the sha256 of the stage's output file when it finished
     * @param exit the stage's exit code when it finished (validate: 1 when a gate failed)
     * @param seconds how long it ran when it finished
     */
    record StageState(
            String key,
            String status,
            List<String> args,
            Map<String, String> inputs,
            String output,
            int exit,
            double seconds) {}

    /** A file's sha256 with the size and modification time it was computed at (rehashed when either changes). */
    record FileHash(long size, long mtime, String sha256) {}

    /** A planned stage run. */
    private record Planned(
            Stage stage, List<String> args, Map<String, String> inputs, Path output, Path resumeMarker) {}

    /**
     * Tests' stand-in for a kill: true for a stage ends the run right after the stage is recorded as started (its
     * command not run), with {@link #KILLED}, as a kill -9 there would. Always false outside tests.
     */
    static java.util.function.Predicate<Stage> killAfterStart = s -> false;

    /** The exit code of a run ended by {@link #killAfterStart} (a shell's for SIGKILL). */
    static final int KILLED = 137;

    /** Stderr as given; {@link #err} writes above the progress line once the run has one. */
    private PrintWriter rawErr;

    private PrintWriter err;
    private ReleaseProgress display;
    private State state;
    private Path stateFile;

    @Override
    public Integer call() {
        rawErr = spec.commandLine().getErr();
        err = rawErr;
        Recipe recipe = recipeFile == null ? Recipe.empty() : Recipe.read(recipeFile);
        Map<Stage, Map<String, Recipe.Value>> values = stageValues(recipe);
        Path modelDir = model != null ? model : path(recipe.top().get("model"), "model");
        if (modelDir == null) {
            throw new InputException("m2q release needs --model DIR (or model: in the recipe)");
        }
        EagleCommand.dir(modelDir, "--model");
        Path outDir = out.toAbsolutePath().normalize();
        Path work = workDir(outDir);
        String draftMode = draftMode(recipe, values);
        Path head =
                "train".equals(draftMode) ? work.resolve("head") : "none".equals(draftMode) ? null : Path.of(draftMode);
        if (head != null && !"train".equals(draftMode)) {
            EagleCommand.dir(head, "--draft");
        }
        Map<String, Recipe.Value> validate = values.get(Stage.VALIDATE);
        if (head != null && !validate.containsKey("prompts")) {
            throw new InputException("a release with a draft head validates it by speculative decoding: set"
                    + " validate.prompts in the recipe or pass --validate.prompts FILE (the prompts to decode), or build"
                    + " it with --no-draft");
        }
        if (head == null) {
            List<String> unused =
                    SPECULATIVE_ONLY.stream().filter(validate::containsKey).toList();
            if (!unused.isEmpty()) {
                unused.forEach(validate::remove);
                err.println("release: no draft head, so validate runs without its speculative options ("
                        + String.join(", ", unused) + ")");
            }
        }
        List<PathGuard.Named> inputs = PathGuard.all(
                PathGuard.of("--model", modelDir),
                PathGuard.of("--recipe", recipeFile),
                "train".equals(draftMode) ? List.of() : PathGuard.of("--draft", head));
        for (Map.Entry<Stage, Map<String, Recipe.Value>> e : values.entrySet()) {
            Map<String, OptionSpec> opts = e.getKey().options();
            e.getValue().forEach((name, v) -> {
                if (StageOptions.isPath(opts.get("--" + name)) && v.scalar() != null) {
                    inputs.add(new PathGuard.Named(e.getKey().section + "." + name, Path.of(v.scalar())));
                }
            });
        }
        PathGuard.check(
                PathGuard.all(
                        PathGuard.staged("--out", outDir),
                        PathGuard.of("--out (its " + WORK_SUFFIX + " folder)", work)),
                inputs);
        stateFile = work.resolve(STATE_FILE);
        state = loadState(outDir, work);

        Map<String, String> modelHashes = hashTree("model", modelDir);
        List<Stage> stages = new ArrayList<>(List.of(Stage.QUANTIZE));
        if ("train".equals(draftMode)) {
            stages.addAll(List.of(Stage.EAGLE_DATA, Stage.EAGLE_TRAIN));
        }
        if (head != null) {
            stages.add(Stage.ATTACH);
        }
        stages.add(Stage.VALIDATE);
        warnChangedInputs(recipe, modelHashes, values);

        Instant start = Instant.now();
        if (!dryRun) {
            display = new ReleaseProgress(
                    rawErr,
                    ConsoleProgress.isTerminal(),
                    () -> System.nanoTime() / 1e9,
                    new RunEta(costs(stages, values, modelDir, outDir, work, head)));
            err = display.lines(rawErr);
        }
        Map<Stage, String> outputs = new LinkedHashMap<>();
        int verdict = Main.EXIT_OK;
        for (int i = 0; i < stages.size(); i++) {
            Stage s = stages.get(i);
            if (s == Stage.VALIDATE && !dryRun) {
                // Before validate, so that the model card it writes can point at the recipe.
                writeRecipe(outDir, modelDir, draftMode, values, modelHashes, stages);
            }
            Planned p =
                    plan(s, values.getOrDefault(s, Map.of()), modelDir, modelHashes, outDir, work, head, outputs, true);
            int rc = runStage(p, i, stages.size());
            if (rc != Main.EXIT_OK && !(s == Stage.VALIDATE && rc == Main.EXIT_CHECK_FAILED)) {
                err.println(
                        "release: stopped at " + s.section + " (exit " + rc + "); finished stages are kept (state in "
                                + stateFile + "): rerun the same command to continue");
                err.flush();
                return rc;
            }
            StageState done = state.stages().get(s.section);
            outputs.put(s, done == null ? "(not run yet)" : done.output());
            if (s == Stage.VALIDATE) {
                verdict = rc;
            }
        }
        if (dryRun) {
            return Main.EXIT_OK;
        }
        PrintWriter o = spec.commandLine().getOut();
        o.println("release " + outDir + ": "
                + (verdict == Main.EXIT_OK
                        ? "complete, gates passed"
                        : "complete, GATES FAILED" + " (see " + outDir.resolve("validation.md") + ")")
                + " in " + human(Duration.between(start, Instant.now()))
                + "; recipe in " + outDir.resolve(RECIPE_FILE));
        o.flush();
        return verdict;
    }

    /**
     * The run's stages for its ETA: each one's work in the cost model ({@link StageCost}) and its time in the last
     * run that finished it (from the state, NaN when none).
     */
    private List<RunEta.Stage> costs(
            List<Stage> stages,
            Map<Stage, Map<String, Recipe.Value>> values,
            Path modelDir,
            Path outDir,
            Path work,
            Path head) {
        StageCost cost;
        try {
            cost = new StageCost(dev.m2q.core.model.ModelConfig.load(modelDir), modelDir);
        } catch (RuntimeException e) {
            cost = null; // the quantize stage names a bad config itself
        }
        List<RunEta.Stage> out = new ArrayList<>();
        for (Stage s : stages) {
            Planned p =
                    plan(s, values.getOrDefault(s, Map.of()), modelDir, Map.of(), outDir, work, head, Map.of(), false);
            StageState st = state.stages().get(s.section);
            double previous =
                    st != null && "finished".equals(st.status()) && st.seconds() > 0 ? st.seconds() : Double.NaN;
            out.add(new RunEta.Stage(
                    s.section,
                    cost == null ? Map.of(s.section, Double.NaN) : cost.phases(s, p.args()),
                    previous,
                    s != Stage.QUANTIZE));
        }
        return out;
    }

    static Path workDir(Path out) {
        Path abs = out.toAbsolutePath().normalize();
        return abs.resolveSibling(abs.getFileName() + WORK_SUFFIX);
    }

    // ---- the recipe and the command line -------------------------------------------------------------------------

    /** Each stage's values: the recipe's, then the command line's over them; every one checked against the stage. */
    private Map<Stage, Map<String, Recipe.Value>> stageValues(Recipe recipe) {
        Map<Stage, Map<String, Recipe.Value>> values = new LinkedHashMap<>();
        Map<Stage, Map<String, OptionSpec>> options = new LinkedHashMap<>();
        for (Stage s : Stage.values()) {
            if (s != Stage.ATTACH) {
                options.put(s, s.options());
                values.put(s, new LinkedHashMap<>());
            }
        }
        for (Map.Entry<String, Map<String, Recipe.Value>> sec :
                recipe.sections().entrySet()) {
            Stage s = Stage.ofSection(sec.getKey());
            if (s == null) {
                continue; // inputs
            }
            for (Map.Entry<String, Recipe.Value> e : sec.getValue().entrySet()) {
                String key = sec.getKey() + "." + e.getKey();
                OptionSpec o = options.get(s).get("--" + e.getKey());
                if (o == null) {
                    throw Recipe.error(
                            recipe.file(), e.getValue().line(), StageOptions.unknown(s, e.getKey(), options.get(s)));
                }
                String bad = StageOptions.typeError(s, o, e.getValue());
                if (bad != null) {
                    throw Recipe.error(recipe.file(), e.getValue().line(), key + ": " + bad);
                }
                values.get(s).put(e.getKey(), e.getValue());
            }
        }
        // The command line: --name [value] or --stage.name [value], in the order given.
        List<String> toks = stageOptions;
        for (int i = 0; i < toks.size(); i++) {
            String tok = toks.get(i);
            if (!tok.startsWith("--")) {
                throw new InputException(tok + ": unexpected argument (m2q release takes options only)");
            }
            String name = tok;
            String inline = null;
            int eq = tok.indexOf('=');
            if (eq > 0) {
                name = tok.substring(0, eq);
                inline = tok.substring(eq + 1);
            }
            List<Stage> targets = new ArrayList<>();
            String opt = name;
            int dot = name.indexOf('.');
            boolean negated = false;
            if (dot > 2) {
                Stage s = Stage.ofSection(name.substring(2, dot));
                opt = "--" + name.substring(dot + 1);
                if (s == null || s == Stage.ATTACH) {
                    throw new InputException(name + ": no stage " + name.substring(2, dot) + " (the stages are "
                            + String.join(", ", Recipe.STAGE_SECTIONS) + ")");
                }
                targets.add(s);
            } else {
                for (Stage s : options.keySet()) {
                    if (options.get(s).containsKey(opt) || StageOptions.negatedOf(options.get(s), opt) != null) {
                        targets.add(s);
                    }
                }
                if (targets.isEmpty()) {
                    List<String> all = new ArrayList<>();
                    options.values().forEach(m -> all.addAll(m.keySet()));
                    String best = StageOptions.nearest(opt, all);
                    throw new InputException(name + ": not an option of m2q release or of any of its stages (quantize,"
                            + " eagle data, eagle train, validate)"
                            + (best == null ? "" : "; did you mean " + best + "?"));
                }
                if (targets.size() > 1 && !SHARED.contains(opt)) {
                    String bare = name.substring(2);
                    throw new InputException(name + ": an option of "
                            + targets.stream().map(s -> s.section).toList()
                            + "; say which with the stage as a prefix ("
                            + String.join(
                                    " or ",
                                    targets.stream()
                                            .map(s -> "--" + s.section + "." + bare)
                                            .toList())
                            + ") or set it in the recipe");
                }
            }
            OptionSpec first = options.get(targets.get(0)).get(opt);
            if (first == null) {
                OptionSpec pos = StageOptions.negatedOf(options.get(targets.get(0)), opt);
                if (pos == null) {
                    throw new InputException(
                            name + ": not an option of m2q " + String.join(" ", targets.get(0).command));
                }
                first = pos;
                opt = pos.longestName();
                negated = true;
            }
            Recipe.Value v;
            if (first.typeInfo().isBoolean() && first.arity().max() == 0) {
                if (inline != null) {
                    throw new InputException(name + ": a switch takes no value");
                }
                v = new Recipe.Value(List.of(negated ? "false" : "true"), false, Recipe.Value.Kind.BOOLEAN, 0);
            } else {
                String val = inline;
                if (val == null) {
                    if (i + 1 >= toks.size()) {
                        throw new InputException(name + ": needs a value");
                    }
                    val = toks.get(++i);
                }
                v = new Recipe.Value(List.of(val), false, Recipe.Value.Kind.STRING, 0);
            }
            for (Stage s : targets) {
                OptionSpec o = options.get(s).get(opt);
                if (o == null) {
                    throw new InputException(name + ": not an option of m2q " + String.join(" ", s.command));
                }
                String bad = StageOptions.typeError(s, o, v);
                if (bad != null) {
                    throw new InputException(name + ": " + bad);
                }
                values.get(s).put(opt.substring(2), v);
            }
        }
        if (prompts != null) {
            values.get(Stage.EAGLE_DATA)
                    .put("prompts", new Recipe.Value(List.of(prompts.toString()), false, Recipe.Value.Kind.STRING, 0));
        }
        return values;
    }

    /** Validate's options for speculative decoding, which apply only when the release has a draft head. */
    private static final List<String> SPECULATIVE_ONLY = List.of("prompts", "k", "temperature", "spec-tokens");

    /** Options that mean the same in every stage that has them: one command-line value sets them all. */
    private static final Set<String> SHARED = Set.of("--kernels", "--device");

    private static Path path(Recipe.Value v, String key) {
        if (v == null || v.scalar() == null) {
            return null;
        }
        if (v.list() || v.kind() != Recipe.Value.Kind.STRING) {
            throw new InputException("--recipe: " + key + " (line " + v.line() + ") must be a path");
        }
        return Path.of(v.scalar());
    }

    /** "train", "none" or the head folder to attach. */
    private String draftMode(Recipe recipe, Map<Stage, Map<String, Recipe.Value>> values) {
        int given = (noDraft ? 1 : 0) + (draft != null ? 1 : 0) + (prompts != null ? 1 : 0);
        if (given > 1) {
            throw new InputException("--prompts, --draft and --no-draft each choose the draft head: give one");
        }
        String mode;
        if (noDraft) {
            mode = "none";
        } else if (draft != null) {
            mode = draft.toString();
        } else if (prompts != null) {
            mode = "train";
        } else {
            Recipe.Value v = recipe.top().get("draft");
            mode = v == null || v.scalar() == null
                    ? (values.get(Stage.EAGLE_DATA).containsKey("prompts") ? "train" : "none")
                    : v.scalar();
        }
        if ("train".equals(mode) && !values.get(Stage.EAGLE_DATA).containsKey("prompts")) {
            throw new InputException("a trained draft head needs prompts: pass --prompts FILE or set eagle-data.prompts"
                    + " in the recipe (or --no-draft)");
        }
        return mode;
    }

    // ---- stages ----------------------------------------------------------------------------------------------------

    private Planned plan(
            Stage s,
            Map<String, Recipe.Value> vals,
            Path modelDir,
            Map<String, String> modelHashes,
            Path outDir,
            Path work,
            Path head,
            Map<Stage, String> upstream,
            boolean withInputs) {
        List<String> args = new ArrayList<>();
        Map<String, String> inputs = new TreeMap<>();
        Path output;
        Path marker = null;
        Path data = work.resolve("eagle-data.jsonl");
        switch (s) {
            case QUANTIZE -> {
                args.addAll(List.of("--model", modelDir.toString(), "--out", outDir.toString()));
                inputs.putAll(modelHashes);
                output = outDir.resolve("m2q-manifest.json");
                marker = StagedDir.partialOf(outDir).resolve(QuantizeJob.PROGRESS);
            }
            case EAGLE_DATA -> {
                args.addAll(List.of("--target", modelDir.toString(), "--out", data.toString()));
                inputs.putAll(modelHashes);
                output = data;
            }
            case EAGLE_TRAIN -> {
                args.addAll(List.of(
                        "--target", modelDir.toString(),
                        "--quantized", outDir.toString(),
                        "--data", data.toString(),
                        "--out", head.toString()));
                inputs.putAll(modelHashes);
                output = head.resolve("m2q-manifest.json");
                marker = StagedDir.partialOf(head).resolve(DraftTraining.RESUME_MARKER);
            }
            case ATTACH -> {
                args.addAll(List.of("--draft", head.toString(), "--release", outDir.toString()));
                if (withInputs && !upstream.containsKey(Stage.EAGLE_TRAIN)) {
                    inputs.putAll(hashTree("draft", head));
                }
                output = outDir.resolve(DraftAttach.DIR).resolve("m2q-manifest.json");
            }
            case VALIDATE -> {
                args.addAll(List.of("--reference", modelDir.toString(), "--candidate", outDir.toString()));
                if (head != null) {
                    args.addAll(
                            List.of("--draft", outDir.resolve(DraftAttach.DIR).toString()));
                }
                inputs.putAll(modelHashes);
                output = outDir.resolve("validation.json");
            }
            default -> throw new IllegalStateException(s.toString());
        }
        Map<String, OptionSpec> opts = s == Stage.ATTACH ? Map.of() : s.options();
        for (Map.Entry<String, Recipe.Value> e : vals.entrySet()) {
            OptionSpec o = opts.get("--" + e.getKey());
            args.addAll(StageOptions.tokens(o, e.getValue()));
            if (withInputs && StageOptions.isPath(o) && e.getValue().scalar() != null) {
                for (String item : e.getValue().list()
                        ? e.getValue().items()
                        : List.of(e.getValue().scalar())) {
                    inputs.putAll(hashTree(s.section + "." + e.getKey(), Path.of(item)));
                }
            }
        }
        upstream.forEach((st, h) -> inputs.put("output of " + st.section, h));
        return new Planned(s, args, inputs, output, marker);
    }

    /** Runs, resumes or skips stage {@code i} (0-based); returns its exit code (0 when skipped as unchanged). */
    private int runStage(Planned p, int i, int count) {
        String name = p.stage().section;
        String key = Sha256.ofText(String.join("\0", p.args()) + "\n" + p.inputs());
        StageState prev = state.stages().get(name);
        String head = "release: [" + (i + 1) + "/" + count + "] " + name;
        if (prev != null && key.equals(prev.key()) && "finished".equals(prev.status())) {
            String now = Files.isRegularFile(p.output()) ? hashFile(p.output()) : null;
            if (prev.output().equals(now)) {
                err.println(head + ": unchanged, skipped"
                        + (prev.exit() != 0 ? " (it ended with exit " + prev.exit() + ")" : ""));
                err.flush();
                if (display != null) {
                    display.stageSkipped(i);
                }
                return prev.exit();
            }
            err.println(head + ": its output " + p.output() + (now == null ? " is gone" : " changed") + "; running it"
                    + " again");
        } else if (prev != null && !key.equals(prev.key())) {
            err.println(head + ": redo, " + whatChanged(prev, p));
        }
        List<String> argv = new ArrayList<>(p.stage().command);
        if (dryRun) {
            argv.addAll(p.args());
            err.println(head + ": would run" + (prev != null && key.equals(prev.key()) ? " (interrupted before)" : ""));
            err.println("  m2q " + String.join(" ", argv));
            err.flush();
            return Main.EXIT_OK;
        }
        argv.addAll(p.args());
        boolean resume = prev != null
                && key.equals(prev.key())
                && "started".equals(prev.status())
                && p.resumeMarker() != null
                && Files.isRegularFile(p.resumeMarker());
        if (resume) {
            argv.add("--resume");
        }
        if (p.stage() != Stage.VALIDATE) {
            argv.add("--overwrite");
        }
        err.println(
                head + (resume ? ": continuing the interrupted run" : ": running") + " (" + display.runLeft() + ")");
        err.println("  m2q " + String.join(" ", argv));
        err.flush();
        putStage(name, new StageState(key, "started", p.args(), p.inputs(), "", -1, 0));
        if (killAfterStart.test(p.stage())) {
            return KILLED;
        }
        Instant t0 = Instant.now();
        display.stageStarted(i, count, name);
        int rc;
        try {
            rc = display.around(() -> Main.run(
                    display.lines(spec.commandLine().getOut()), display.lines(rawErr), argv.toArray(String[]::new)));
        } finally {
            display.stageFinished();
        }
        double secs = Duration.between(t0, Instant.now()).toMillis() / 1e3;
        if (rc == Main.EXIT_OK || (p.stage() == Stage.VALIDATE && rc == Main.EXIT_CHECK_FAILED)) {
            if (!Files.isRegularFile(p.output())) {
                throw new IllegalStateException(name + " exited " + rc + " without writing " + p.output());
            }
            putStage(name, new StageState(key, "finished", p.args(), p.inputs(), hashFile(p.output()), rc, secs));
            err.println(head + ": done in " + human(Duration.ofMillis((long) (secs * 1e3))));
            err.flush();
        }
        return rc;
    }

    private static String whatChanged(StageState prev, Planned p) {
        List<String> said = new ArrayList<>();
        Map<String, String> was = options(prev.args());
        Map<String, String> now = options(p.args());
        for (Map.Entry<String, String> e : now.entrySet()) {
            String before = was.get(e.getKey());
            if (before == null) {
                said.add(e.getKey() + (e.getValue().isEmpty() ? "" : " " + e.getValue()) + " added");
            } else if (!before.equals(e.getValue())) {
                said.add(e.getKey() + " " + before + " -> " + e.getValue());
            }
        }
        for (String k : was.keySet()) {
            if (!now.containsKey(k)) {
                said.add(k + " dropped");
            }
        }
        for (Map.Entry<String, String> e : p.inputs().entrySet()) {
            String before = prev.inputs().get(e.getKey());
            if (!e.getValue().equals(before)) {
                said.add(e.getKey() + (before == null ? " is new" : " changed"));
            }
        }
        for (String k : prev.inputs().keySet()) {
            if (!p.inputs().containsKey(k)) {
                said.add(k + " is no longer an input");
            }
        }
        return said.isEmpty() ? "its inputs changed" : String.join("; ", said);
    }

    /** Option to value ("" for a switch) from a stage's arguments, in order. */
    private static Map<String, String> options(List<String> args) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            boolean hasValue = i + 1 < args.size() && !args.get(i + 1).startsWith("--");
            m.merge(a, hasValue ? args.get(++i) : "", (x, y) -> x + " " + y);
        }
        return m;
    }

    // ---- state, hashes, recipe -------------------------------------------------------------------------------------

    private State loadState(Path outDir, Path work) {
        boolean outExists = Files.exists(outDir, LinkOption.NOFOLLOW_LINKS);
        if (Files.isRegularFile(stateFile)) {
            try {
                State s = Json.read(stateFile, State.class);
                return new State(s.version(), new LinkedHashMap<>(s.stages()), new LinkedHashMap<>(s.hashes()));
            } catch (IOException | RuntimeException e) {
                throw new InputException(stateFile + ": the release state cannot be read (" + e.getMessage()
                        + "); move " + work + " away to start the release over");
            }
        }
        if (dryRun) {
            return new State(1, new LinkedHashMap<>(), new LinkedHashMap<>());
        }
        if (outExists && !overwrite) {
            throw new InputException(outDir + ": already exists and was not built by m2q release (no " + stateFile
                    + "); pass --overwrite to replace it (it is replaced only once the new release is built)");
        }
        try {
            Files.createDirectories(work);
        } catch (IOException e) {
            throw new UncheckedIOException(work + ": cannot create the release's work folder: " + e.getMessage(), e);
        }
        State s = new State(1, new LinkedHashMap<>(), new LinkedHashMap<>());
        saveState(s);
        return s;
    }

    private void putStage(String name, StageState st) {
        state.stages().put(name, st);
        saveState(state);
    }

    private void saveState(State s) {
        AtomicFile.writeText(stateFile, Json.writePretty(s) + "\n");
    }

    /** sha256 of each regular file under {@code root} (or of root itself), labelled label/relative-path. */
    private Map<String, String> hashTree(String label, Path root) {
        Map<String, String> m = new TreeMap<>();
        if (Files.isRegularFile(root)) {
            m.put(label, hashFile(root));
            return m;
        }
        if (!Files.isDirectory(root)) {
            return m; // the stage names it missing with its own message
        }
        try (Stream<Path> files = Files.walk(root)) {
            for (Path f : files.filter(Files::isRegularFile).sorted().toList()) {
                m.put(label + "/" + root.relativize(f).toString().replace('\\', '/'), hashFile(f));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(root + ": cannot list for hashing: " + e.getMessage(), e);
        }
        return m;
    }

    /** A file's sha256, from the state's cache when its size and modification time are unchanged. */
    private String hashFile(Path f) {
        String key = f.toAbsolutePath().normalize().toString();
        try {
            long size = Files.size(f);
            long mtime = Files.getLastModifiedTime(f).toMillis();
            FileHash h = state.hashes().get(key);
            if (h != null && h.size() == size && h.mtime() == mtime) {
                return h.sha256();
            }
            String sha = Sha256.ofFile(f);
            state.hashes().put(key, new FileHash(size, mtime, sha));
            return sha;
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": cannot read for hashing: " + e.getMessage(), e);
        }
    }

    private void warnChangedInputs(
            Recipe recipe, Map<String, String> modelHashes, Map<Stage, Map<String, Recipe.Value>> v) {
        Map<String, Recipe.Value> recorded = recipe.sections().get(Recipe.INPUTS);
        if (recorded == null) {
            return;
        }
        Map<String, String> now = new TreeMap<>(modelHashes);
        v.forEach((s, vals) -> {
            Map<String, OptionSpec> opts = s.options();
            vals.forEach((k, val) -> {
                if (StageOptions.isPath(opts.get("--" + k)) && val.scalar() != null) {
                    now.putAll(hashTree(s.section + "." + k, Path.of(val.scalar())));
                }
            });
        });
        recorded.forEach((k, val) -> {
            String was = val.scalar();
            String is = now.get(k);
            if (is == null) {
                err.println("release: note: the recipe's input " + k + " is not an input of this run");
            } else if (!is.equals(was)) {
                err.println("release: note: input " + k + " differs from the recipe's (sha256 " + is + ", recipe " + was
                        + "): the release will differ from the one the recipe came from");
            }
        });
        err.flush();
    }

    /** The effective recipe, into the release: every option's value (defaults filled in) and the inputs' sha256. */
    private void writeRecipe(
            Path outDir,
            Path modelDir,
            String draftMode,
            Map<Stage, Map<String, Recipe.Value>> values,
            Map<String, String> modelHashes,
            List<Stage> stages) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("m2q-recipe", 1L);
        r.put("model", modelDir.toString());
        r.put("draft", draftMode);
        Map<String, Object> inputs = new TreeMap<>(modelHashes);
        for (Stage s : stages) {
            if (s == Stage.ATTACH) {
                continue;
            }
            Map<String, Object> sec = new LinkedHashMap<>();
            Map<String, Recipe.Value> given = values.get(s);
            for (Map.Entry<String, OptionSpec> e : s.options().entrySet()) {
                String key = e.getKey().substring(2);
                Object v = StageOptions.effective(e.getValue(), given.get(key));
                if (v != null) {
                    sec.put(key, v);
                }
                if (StageOptions.isPath(e.getValue())
                        && given.containsKey(key)
                        && given.get(key).scalar() != null) {
                    inputs.putAll(hashTree(
                            s.section + "." + key, Path.of(given.get(key).scalar())));
                }
            }
            r.put(s.section, sec);
        }
        if (!"train".equals(draftMode) && !"none".equals(draftMode)) {
            inputs.putAll(hashTree("draft", Path.of(draftMode)));
        }
        r.put(Recipe.INPUTS, inputs);
        String header = "m2q release recipe, written by m2q " + Version.get() + " with the release it describes.\n"
                + "Rerun: m2q release --recipe " + outDir.resolve(RECIPE_FILE) + " --out NEW_DIR\n"
                + "Keys are the stages' option names; inputs: holds the sha256 of every input file.";
        AtomicFile.writeText(outDir.resolve(RECIPE_FILE), Recipe.write(header, r));
        saveState(state);
    }

    static String human(Duration d) {
        long s = Math.max(0, d.toSeconds());
        if (s < 60) {
            return String.format(Locale.ROOT, "%.1fs", d.toMillis() / 1e3);
        }
        return s < 3600 ? (s / 60) + "m" + (s % 60) + "s" : (s / 3600) + "h" + (s % 3600 / 60) + "m";
    }
}
