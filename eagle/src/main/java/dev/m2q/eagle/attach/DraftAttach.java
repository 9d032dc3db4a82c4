package dev.m2q.eagle.attach;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.io.Dirs;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.StagedDir;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.eagle.train.DraftTraining;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code m2q eagle attach}: puts a trained draft head into a release as {@code QDIR/draft/}. The head is read with
 * every invariant checked ({@link DraftHead#read}: config keys, tensor names, shapes and dtypes, d2t/t2d) and
 * checked against the release's config ({@link DraftHead#checkAgainst}); only then are its files copied, byte for
 * byte, into {@code QDIR/draft.m2q-partial/} with a {@code m2q-manifest.json} listing their sha256 and the source,
 * and that folder swapped in as {@code draft/} ({@link StagedDir}). Any refusal or failure leaves the release as it
 * was. The head may not be, contain or lie inside the {@code draft/} folder it would replace ({@link PathGuard}).
 */
public final class DraftAttach {
    /**
     * {@code QDIR/draft/m2q-manifest.json}.
     *
     * @param source the head's folder it was copied from
     * @param sourceSha256 the sha256 of each file as found there (its manifest as {@code source-m2q-manifest.json})
     * @param taps the target layers whose outputs the head reads
     * @param files the sha256 of each file in {@code draft/}
     */
    record AttachedManifest(
            @JsonProperty("m2q_version") String m2qVersion,
            String format,
            @JsonProperty("format_version") int formatVersion,
            String source,
            @JsonProperty("source_sha256") Map<String, String> sourceSha256,
            @JsonProperty("draft_vocab_size") int draftVocabSize,
            int[] taps,
            Map<String, String> files) {}

    public static final String DIR = "draft";

    private DraftAttach() {}

    /** Files of a head folder that are copied (the head's own manifest and training log go along when present). */
    private static final List<String> FILES =
            List.of(DraftConfig.FILE, DraftHead.FILE, Manifest.FILE, "train-log.jsonl");

    /** Attaches {@code draft} to {@code release}; returns the copied files with their sha256. */
    public static Map<String, String> attach(Path draft, Path release, boolean overwrite, String m2qVersion) {
        Path rel = release.toAbsolutePath().normalize();
        Path dest = rel.resolve(DIR);
        PathGuard.check(PathGuard.staged("--release (its " + DIR + "/ folder)", dest), PathGuard.of("--draft", draft));
        StagedDir.check(dest, overwrite, false, null);
        if (Files.isRegularFile(draft.resolve("model.safetensors.index.json"))) {
            throw new InputException(draft + ": a sharded head; attach takes a single model.safetensors");
        }
        DraftHead head = DraftHead.read(draft);
        ModelConfig target = ModelConfig.load(rel);
        try {
            head.checkAgainst(target);
        } catch (InputException e) {
            throw new InputException(draft + " does not fit " + rel + ": " + e.getMessage(), e);
        }
        StagedDir staged = StagedDir.open(dest, overwrite, false, null);
        Path partial = staged.dir();
        Map<String, String> files = new TreeMap<>();
        Map<String, String> source = new TreeMap<>();
        try {
            for (String f : FILES) {
                Path from = draft.resolve(f);
                if (Files.isRegularFile(from)) {
                    source.put(f, Sha256.ofFile(from));
                    String name = f.equals(Manifest.FILE) ? "source-" + f : f;
                    files.put(name, Dirs.copy(from, partial.resolve(name)));
                    if (!files.get(name).equals(source.get(f))) {
                        throw new IllegalStateException(from + " changed while it was copied");
                    }
                }
            }
            AttachedManifest m = new AttachedManifest(
                    m2qVersion,
                    DraftTraining.FORMAT,
                    1,
                    draft.toAbsolutePath().normalize().toString(),
                    source,
                    head.config().draftVocabSize(),
                    head.config().taps(target.numLayers()),
                    files);
            staged.writeAtomically(Manifest.FILE, Json.writePretty(m));
            staged.commit();
        } catch (RuntimeException | Error e) {
            staged.discard();
            throw e;
        }
        return files;
    }
}
