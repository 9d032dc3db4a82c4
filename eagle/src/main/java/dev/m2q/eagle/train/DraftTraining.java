package dev.m2q.eagle.train;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.io.Dirs;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.ModelHashes;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.StagedDir;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.eagle.data.DataFile;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.Consumer;

/**
 * {@code m2q eagle train}: the whole run. Reads the data, splits off the held-out sequences (seeded, by sequence),
 * builds the draft vocabulary from the training split's assistant tokens, initializes the head ({@link HeadInit}),
 * trains it with {@link DraftTrainer} on features the target computes online for each sequence (the quantized
 * release when given, so the head learns the model it will draft for), and exports the head.
 *
 * <p>The run folder is {@code OUT.m2q-partial/} beside {@code out} ({@link StagedDir}, locked against a second
 * run): while training it holds {@code train-log.jsonl} and {@code checkpoint/}; at the end the head and its
 * manifest are written there, the checkpoint deleted, and the folder swapped in as {@code out}. An existing
 * {@code out} is refused unless {@code overwrite}, and stays as it is until the new head is complete: a run that
 * fails leaves it untouched, and keeps its run folder for {@code --resume} once it has written a checkpoint.
 *
 * @param quantized the release whose forward gives the features and target logits, or null for {@code target}
 * @param draftVocab V_d, or 0 for min(32000, V)
 * @param auxLayers pinned taps ("state entering layer j"), or null for 2, L/2, L−3
 * @param maxSeqLen sequences are cut to this many tokens
 * @param holdout the fraction of sequences held out for evaluation
 * @param objectiveName what the objective is, for the manifest and the resume fingerprint
 */
public record DraftTraining(
        Path target,
        Path quantized,
        Path data,
        Path out,
        int draftVocab,
        int[] auxLayers,
        int maxSeqLen,
        double holdout,
        DraftTrainer.Options trainer,
        Map<String, Object> objectiveName,
        boolean resume,
        boolean overwrite,
        List<String> commandLine,
        String m2qVersion) {
    public static final int DEFAULT_DRAFT_VOCAB = 32000;
    public static final String FORMAT = "eagle3-draft";

    /** Builds the objective once the head's config and vocabulary are known. */
    @FunctionalInterface
    public interface ObjectiveFactory {
        DraftObjective create(DraftConfig config, DraftVocab vocab, Kernels kernels);
    }

    public DraftTraining {
        if (maxSeqLen < 2) {
            throw new InputException("--max-seq-len must be at least 2, got " + maxSeqLen);
        }
        if (!(holdout >= 0 && holdout < 1)) {
            throw new InputException("--holdout must be in [0, 1), got " + holdout);
        }
        if (draftVocab < 0) {
            throw new InputException("--draft-vocab must be positive, got " + draftVocab);
        }
    }

    /** The file an interrupted run leaves in its run folder when it can be resumed. */
    /** The file in the partial folder that marks a run --resume can continue. */
    public static final String RESUME_MARKER = TrainCheckpoint.DIR + "/" + TrainCheckpoint.STATE;

    /**
     * Refuses, before any work: an output that is, contains or lies inside --target, --quantized or --data
     * ({@link PathGuard}); an output that exists without --overwrite; a --resume with no checkpoint to resume from.
     */
    public void checkOutput() {
        List<PathGuard.Named> inputs = new ArrayList<>(PathGuard.of("--target", target));
        inputs.addAll(PathGuard.of("--quantized", quantized));
        inputs.addAll(PathGuard.of("--data", data));
        PathGuard.check(PathGuard.staged("--out", out), inputs);
        StagedDir.check(out, overwrite, resume, RESUME_MARKER);
    }

    /** What the run produced. */
    public record Summary(Path out, DraftHead head, DraftTrainer.Evaluation evaluation, Map<String, String> files) {}

    public Summary run(ObjectiveFactory objectives, Kernels kernels, Consumer<String> log) {
        checkOutput();
        Path abs = out.toAbsolutePath().normalize();
        DataFile d = DataFile.read(data);
        ModelConfig cfg = ModelConfig.load(target);
        d.checkVocab(cfg.vocabSize(), data);
        if (quantized != null) {
            checkSameModel(cfg, ModelConfig.load(quantized));
        }
        int n = d.sequences().size();
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            order.add(i);
        }
        Collections.shuffle(order, new Random(trainer.seed()));
        int held = (int) Math.round(holdout * n);
        if (holdout > 0 && held == 0 && n >= 2) {
            held = 1;
        }
        List<Integer> heldOut = order.subList(0, held).stream().sorted().toList();
        List<Integer> train = order.subList(held, n).stream().sorted().toList();
        if (train.isEmpty()) {
            throw new InputException(data + ": " + n + " sequences leave none for training at --holdout " + holdout);
        }
        long[] counts = new long[cfg.vocabSize()];
        for (int i : train) {
            DataFile.Sequence s = d.sequences().get(i);
            for (int t = 0; t < s.length(); t++) {
                if (s.lossMask()[t]) {
                    counts[s.ids()[t]]++;
                }
            }
        }
        int vd = draftVocab == 0 ? Math.min(DEFAULT_DRAFT_VOCAB, cfg.vocabSize()) : draftVocab;
        if (vd > cfg.vocabSize()) {
            throw new InputException("--draft-vocab " + vd + " exceeds the target's vocabulary of " + cfg.vocabSize());
        }
        DraftVocab vocab = DraftVocab.mostFrequent(counts, vd);
        DraftConfig dc = DraftConfig.forTarget(cfg, rawRopeScaling(target), vd, auxLayers);
        int[] taps = dc.taps(cfg.numLayers());

        Map<String, String> targetHashes = ModelHashes.of(target);
        Map<String, String> quantHashes = quantized == null ? null : ModelHashes.of(quantized);
        if (d.header().targetSha256() != null && !d.header().targetSha256().equals(targetHashes)) {
            // Allowed (another model's answers still teach the head), but not what ALGORITHMS §5 prescribes.
            log.accept("eagle train: warning: " + data + " was generated by another model (its target_sha256 differs"
                    + " from " + target + "'s files): the head learns that model's answers, not the target's own");
        }
        String dataSha = Sha256.ofFile(data);
        Map<String, Object> fingerprint = new TreeMap<>();
        fingerprint.put("target_sha256", targetHashes);
        fingerprint.put("quantized_sha256", quantHashes);
        fingerprint.put("data_sha256", dataSha);
        fingerprint.put("draft_vocab_size", vd);
        fingerprint.put("taps", taps);
        fingerprint.put("max_seq_len", maxSeqLen);
        fingerprint.put("holdout", holdout);
        fingerprint.put("objective", objectiveName);

        DraftObjective objective = objectives.create(dc, vocab, kernels);
        StagedDir staged = StagedDir.open(abs, overwrite, resume, RESUME_MARKER);
        Path runDir = staged.dir();
        try {
            log.accept("eagle train: " + train.size() + " training and " + heldOut.size() + " held-out sequences, draft"
                    + " vocabulary " + vd + " of " + cfg.vocabSize() + ", taps " + Arrays.toString(taps)
                    + ", features from "
                    + (quantized == null ? target : quantized));
            Map<String, Tensor> init = HeadInit.init(dc, vocab, target, trainer.seed());
            DraftTrainer.Result result;
            try (Qwen2Model model = Qwen2Model.load(quantized == null ? target : quantized, kernels)) {
                SequenceSource source = i -> online(model, d.sequences().get(i), taps, maxSeqLen);
                result = new DraftTrainer(trainer, objective, source, train, heldOut, runDir, log)
                        .run(init, fingerprint, resume);
            }
            DraftHead head = new DraftHead(dc, vocab, HeadInit.weights(result.params()));
            Map<String, String> files = export(head, staged, targetHashes, quantHashes, dataSha, d, result, vd, taps);
            staged.commit();
            return new Summary(staged.out(), head, result.evaluation(), files);
        } catch (RuntimeException | Error e) {
            boolean resumable = !StagedDir.isBadInput(e) && Files.isRegularFile(runDir.resolve(RESUME_MARKER));
            throw staged.failed(
                    e,
                    resume || resumable,
                    resumable
                            ? "the run folder " + runDir + " keeps its last checkpoint: rerun with the same options"
                                    + " plus --resume to continue, or with --overwrite to start over"
                            : null,
                    m -> log.accept("eagle train: " + m));
        }
    }

    /** One sequence through the target: its embeddings, tapped residual streams and logits, cut to maxSeqLen. */
    static TrainingSequence online(Qwen2Model model, DataFile.Sequence s, int[] taps, int maxSeqLen) {
        int t = Math.min(s.length(), maxSeqLen);
        int[] ids = Arrays.copyOf(s.ids(), t);
        Qwen2Model.Tapped tapped = model.forwardTapped(ids, null, taps);
        return new TrainingSequence(
                ids, Arrays.copyOf(s.lossMask(), t), model.embed(ids), tapped.features(), tapped.logits());
    }

    /**
     * Writes the head and its manifest (last) into the run folder and deletes the checkpoint. The files need no
     * temporary names of their own: the whole folder becomes the output only after this returns.
     */
    private Map<String, String> export(
            DraftHead head,
            StagedDir staged,
            Map<String, String> targetHashes,
            Map<String, String> quantHashes,
            String dataSha,
            DataFile d,
            DraftTrainer.Result result,
            int vd,
            int[] taps) {
        Path runDir = staged.dir();
        Map<String, String> files = new TreeMap<>(head.write(runDir));
        files.put(DraftTrainer.LOG, Sha256.ofFile(runDir.resolve(DraftTrainer.LOG)));
        HeadManifest m = new HeadManifest(
                m2qVersion,
                FORMAT,
                1,
                commandLine,
                new HeadManifest.Input(
                        target.toAbsolutePath().normalize().toString(),
                        targetHashes,
                        quantized == null
                                ? null
                                : quantized.toAbsolutePath().normalize().toString(),
                        quantHashes),
                new HeadManifest.Data(
                        data.toAbsolutePath().normalize().toString(),
                        dataSha,
                        d.sequences().size(),
                        d.header()),
                trainer.seed(),
                vd,
                taps,
                trainer,
                objectiveName,
                "midlayer norms 1; norm and lm_head from the target (its final norm, its lm_head rows of the"
                        + " draft vocabulary); fc and the layer's linears N(0, " + HeadInit.STD + "^2)",
                files);
        staged.writeAtomically(Manifest.FILE, Json.writePretty(m));
        Dirs.deleteTree(runDir.resolve(TrainCheckpoint.DIR));
        return files;
    }

    /**
     * A trained head's {@code m2q-manifest.json}.
     *
     * @param input the target (and the quantized release whose features it was trained on, if any) with their hashes
     * @param data the training data file, its hash, sequence count and generation header
     * @param training the trainer's options as given
     * @param objective the objective's name and settings
     * @param init how the parameters were initialized
     * @param files the sha256 of each file of the head
     */
    record HeadManifest(
            @JsonProperty("m2q_version") String m2qVersion,
            String format,
            @JsonProperty("format_version") int formatVersion,
            @JsonProperty("command_line") List<String> commandLine,
            Input input,
            Data data,
            long seed,
            @JsonProperty("draft_vocab_size") int draftVocabSize,
            int[] taps,
            DraftTrainer.Options training,
            Map<String, Object> objective,
            String init,
            Map<String, String> files) {
        /** @param quantized, quantizedSha256 null (and not written) without --quantized */
        @JsonInclude(JsonInclude.Include.NON_NULL)
        record Input(
                String target,
                Map<String, String> sha256,
                String quantized,
                @JsonProperty("quantized_sha256") Map<String, String> quantizedSha256) {}

        record Data(String file, String sha256, int sequences, DataFile.Header generation) {}
    }

    /** The quantized release must be the same architecture as the target: every size the head depends on. */
    static void checkSameModel(ModelConfig target, ModelConfig q) {
        List<String> bad = new ArrayList<>();
        int[][] pairs = {
            {target.hiddenSize(), q.hiddenSize()},
            {target.intermediateSize(), q.intermediateSize()},
            {target.numLayers(), q.numLayers()},
            {target.numHeads(), q.numHeads()},
            {target.numKvHeads(), q.numKvHeads()},
            {target.headDim(), q.headDim()},
            {target.vocabSize(), q.vocabSize()},
            {target.maxPositionEmbeddings(), q.maxPositionEmbeddings()}
        };
        String[] names = {
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "vocab_size",
            "max_position_embeddings"
        };
        for (int i = 0; i < pairs.length; i++) {
            if (pairs[i][0] != pairs[i][1]) {
                bad.add(names[i] + " " + pairs[i][1] + " vs the target's " + pairs[i][0]);
            }
        }
        if (!target.arch().equals(q.arch())
                || target.ropeTheta() != q.ropeTheta()
                || !target.ropeScaling().equals(q.ropeScaling())) {
            bad.add("architecture, rope_theta or rope_scaling differ");
        }
        if (!bad.isEmpty()) {
            throw new InputException("--quantized is not a release of --target: " + String.join("; ", bad));
        }
    }

    /** The target's {@code rope_scaling} as written in its config.json (null when absent). */
    static Object rawRopeScaling(Path dir) {
        Path f = dir.resolve("config.json");
        try {
            return Json.parseObject(Files.readString(f, StandardCharsets.UTF_8)).get("rope_scaling");
        } catch (IOException e) {
            throw new InputException(f + ": cannot read: " + e.getMessage(), e);
        } catch (JsonException e) {
            throw new InputException(f + ": malformed JSON: " + e.getMessage(), e);
        }
    }
}
