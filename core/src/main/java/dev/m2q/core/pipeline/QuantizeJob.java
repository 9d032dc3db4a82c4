package dev.m2q.core.pipeline;

import dev.m2q.core.InputException;
import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.CheckpointWriter;
import dev.m2q.core.io.ModelHashes;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.io.ShardPlan;
import dev.m2q.core.io.StagedDir;
import dev.m2q.core.io.TensorSpec;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.kernels.ScalarKernels;
import dev.m2q.core.kernels.VectorKernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.quant.GptqLayoutCheck;
import dev.m2q.core.quant.QuantScheme;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The layer-sequential pipeline (ALGORITHMS.md §0) writing a release in a {@link ReleaseFormat}: the GPTQ layout
 * (FORMATS.md §2) labelled as GPTQ or as AutoRound's "auto_round:auto_gptq" (§3), or compressed-tensors (§4).
 * Propagating the calibration set through each quantized layer also calibrates its activation ranges (§4 of
 * ALGORITHMS.md, {@link RangeCalibrator}): every release records them in m2q-report.jsonl, and a compressed-tensors
 * release of an 8-bit scheme stores the static input scales and the KV-cache scales they give.
 *
 * <p>Everything is built in {@code OUT.m2q-partial/} beside the output ({@link StagedDir}: one writer at a time,
 * the old output replaced only by a complete new one) and swapped in only once the release passes the loadability
 * check {@code m2q inspect --check} runs. After each layer its tensors are synced and {@code progress.json}
 * ({@link ResumeState}) records it; {@code --resume} reopens the partial shards, replays the finished layers from
 * what was written (dequantized, so the calibration activations are bit-identical to the interrupted run's) and
 * continues with the next layer. A fresh run that stops before finishing a layer, or on bad input, deletes its
 * partial folder; one that stops later for another reason keeps it for {@code --resume}.
 *
 * <p>This class checks and opens the run; {@link LayerLoop} runs the layers and {@link ReleaseWriter} finishes the
 * release.
 */
public final class QuantizeJob {
    /** The file in the partial folder that marks a run --resume can continue. */
    public static final String PROGRESS = ResumeState.FILE;

    private final QuantizeOptions opts;
    private final ReleaseFormat format;
    private final QuantScheme scheme;
    private final LayerMethod method;
    private final Kernels kernels;
    private final ProgressListener progress;
    /** The Java kernels that --verify-device recomputes each layer with; null when off. */
    private Kernels verifyOn;

    private ReleaseCheck releaseCheck = dir -> GptqLayoutCheck.checkCheckpoint(dir, List.of(1)).stream()
            .map(Object::toString)
            .toList();

    /**
     * The loadability check a finished release must pass before it replaces anything: the violations found in the
     * release folder {@code dir} (empty when it loads). The command line passes what {@code m2q inspect --check}
     * runs, at the user's {@code --tp}.
     */
    @FunctionalInterface
    public interface ReleaseCheck {
        List<String> violations(Path dir);
    }

    /** A W4A16 release in the GPTQ layout. */
    public QuantizeJob(QuantizeOptions opts, LayerMethod method, Kernels kernels, ProgressListener progress) {
        this(opts, GptqRelease.GPTQ, QuantScheme.W4A16, method, kernels, progress);
    }

    /**
     * A release of {@code scheme} in {@code format}. 8-bit activations need compressed-tensors (the GPTQ config has
     * no activation scheme); an FP8 KV cache in the GPTQ layout is calibrated and reported, but its scales are not
     * written, since engines ignore them there (the run says so).
     *
     * @throws InputException for a scheme the format cannot carry ({@link ReleaseFormat#check})
     */
    public QuantizeJob(
            QuantizeOptions opts,
            ReleaseFormat format,
            QuantScheme scheme,
            LayerMethod method,
            Kernels kernels,
            ProgressListener progress) {
        format.check(scheme, opts.bits());
        this.opts = opts;
        this.format = format;
        this.scheme = scheme;
        this.method = method;
        this.kernels = kernels;
        this.progress = progress;
    }

    /** Checks the finished release with {@code check} (default: {@link GptqLayoutCheck} at tp 1) before the swap. */
    public QuantizeJob checkedBy(ReleaseCheck check) {
        this.releaseCheck = check;
        return this;
    }

    /**
     * {@code --verify-device}: after each fresh layer, quantizes it again with {@code cpu} (the Java kernels) on the
     * same calibration inputs and stops with a {@link dev.m2q.core.CheckFailedException} when too many codes differ
     * ({@link DeviceVerify}). Nothing to do when the job's kernels are the Java ones.
     */
    public QuantizeJob verifiedOn(Kernels cpu) {
        this.verifyOn = cpu;
        return this;
    }

    /** Where an interrupted run of {@code out} keeps its work. */
    public static Path partialDir(Path out) {
        return StagedDir.partialOf(out);
    }

    /**
     * What the run wrote.
     *
     * @param violations what the release check found; when not empty nothing was replaced, {@code out} is as it was
     *     and the release as written stays in {@link #partialDir} for inspection
     */
    public record Summary(
            Path out, Map<String, String> files, List<ReportLine> report, int resumedLayers, List<String> violations) {}

    /**
     * Quantizes the model over {@code samples} (each exactly seqlen token ids) and writes the release.
     *
     * @param calibration a description of the calibration set for the manifest (files, hash, tokens)
     */
    public Summary run(List<int[]> samples, Map<String, Object> calibration) {
        Path out = opts.out().toAbsolutePath().normalize();
        PathGuard.check(PathGuard.staged("--out", out), PathGuard.of("--model", opts.model()));
        checkOutput(out, opts.overwrite(), opts.resume());
        ModelConfig cfg = ModelConfig.load(opts.model());
        format.warning(scheme).ifPresent(progress::info);
        if (scheme.staticActivations()) {
            progress.info("note: static input scales (input_scale) are consumed by vLLM's W8A8 kernels; its W4A8"
                    + " kernels quantize activations per token at run time and ignore them");
        }
        // Locked before the long reads (hashing the weights): a second run on the same output stops at once.
        StagedDir staged = StagedDir.open(out, opts.overwrite(), opts.resume(), PROGRESS);
        Path partial = staged.dir();
        LayerLoop loop = null;
        CheckpointWriter writer = null;
        try (Qwen2Model model = Qwen2Model.load(opts.model(), kernels);
                Checkpoint src = Checkpoint.open(opts.model())) {
            Map<String, String> inputHashes = ModelHashes.of(opts.model(), src);
            List<TensorSpec> specs = format.plan(cfg, src::tensor, opts.groupSize(), scheme, opts.bits());
            ShardPlan plan = ShardPlan.of(specs, opts.maxShardBytes());
            String kernelsId = kernelsFingerprint(kernels);
            ResumeState.Fingerprint fingerprint =
                    ResumeState.Fingerprint.of(opts, format, scheme, method, kernelsId, inputHashes, calibration);
            ResumeState state;
            if (opts.resume()) {
                state = ResumeState.load(partial.resolve(PROGRESS), fingerprint);
                if (state.layersDone() > cfg.numLayers()) {
                    throw new InputException(partial.resolve(PROGRESS) + ": records " + state.layersDone()
                            + " finished layers, the model has " + cfg.numLayers() + "; start over with"
                            + " --overwrite instead of --resume");
                }
                writer = CheckpointWriter.resume(partial, plan, CheckpointWriter.PT_METADATA, state.written(cfg, plan));
                progress.info("resuming " + partial + " after layer " + (state.layersDone() - 1));
            } else {
                staged.requireSpace(plan.totalBytes(), "the release's tensors");
                state = ResumeState.fresh(fingerprint);
                writer = CheckpointWriter.create(partial, plan, CheckpointWriter.PT_METADATA);
            }
            loop = new LayerLoop(
                    opts, format, scheme, method, kernels, verifyOn, progress, cfg, model, src, writer, partial, state);
            int resumed = loop.run(samples);
            List<ReportLine> report = loop.state().report();
            ReleaseWriter.Written w = new ReleaseWriter(opts, format, scheme, method.name(), kernelsId)
                    .write(writer, report, staged, inputHashes, calibration, releaseCheck);
            return new Summary(out, w.files(), report, resumed, w.violations());
        } catch (RuntimeException | Error e) {
            if (writer != null) {
                writer.detach();
            }
            boolean hasProgress = Files.isRegularFile(partial.resolve(PROGRESS));
            // What a --resume run was given is never deleted; a fresh run keeps only finished layers.
            boolean resumable = hasProgress
                    && !StagedDir.isBadInput(e)
                    && (opts.resume() || (loop != null && loop.state().layersDone() > 0));
            throw staged.failed(
                    e,
                    opts.resume() || resumable,
                    resumable
                            ? "the finished layers are kept in " + partial + ": rerun with the same options plus"
                                    + " --resume to continue, or with --overwrite to start over"
                            : null,
                    progress::info);
        }
    }

    /**
     * Refuses, before any work, an existing output without --overwrite, a --resume with nothing to resume, and an
     * interrupted run that would be silently discarded. Changes nothing on disk.
     */
    public static void checkOutput(Path out, boolean overwrite, boolean resume) {
        StagedDir.check(out, overwrite, resume, PROGRESS);
    }

    /**
     * Which results the kernels reproduce, for the manifest and for --resume, which replays the finished layers and
     * needs bit-identical activations: the Java kernels agree with each other bit for bit (the Kernels contract), so
     * a run may resume on either; another backend (CUDA) reproduces only its own results, named by its name.
     */
    static final String JAVA_KERNELS = "deterministic-java";

    static String kernelsFingerprint(Kernels k) {
        return k instanceof VectorKernels || k instanceof ScalarKernels ? JAVA_KERNELS : k.name();
    }
}
