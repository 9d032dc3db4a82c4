package dev.m2q.eagle.attach;

import dev.m2q.core.InputException;
import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.io.Dirs;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.ModelConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code m2q eagle attach}: puts a trained draft head into a release as {@code QDIR/draft/}. The head is read with
 * every invariant checked ({@link DraftHead#read}: config keys, tensor names, shapes and dtypes, d2t/t2d) and
 * checked against the release's config ({@link DraftHead#checkAgainst}); only then are its files copied, byte for
 * byte, into {@code QDIR/.draft.m2q-partial/} with a {@code m2q-manifest.json} listing their sha256 and the source,
 * and that folder renamed to {@code draft/}. Any refusal leaves the release as it was.
 */
public final class DraftAttach {
    public static final String DIR = "draft";

    private DraftAttach() {}

    /** Files of a head folder that are copied (the head's own manifest and training log go along when present). */
    private static final List<String> FILES =
            List.of(DraftConfig.FILE, DraftHead.FILE, Manifest.FILE, "train-log.jsonl");

    /** Attaches {@code draft} to {@code release}; returns the copied files with their sha256. */
    public static Map<String, String> attach(Path draft, Path release, boolean overwrite, String m2qVersion) {
        Path rel = release.toAbsolutePath().normalize();
        Path dest = rel.resolve(DIR);
        if (Files.exists(dest) && !overwrite) {
            throw new InputException(dest + ": already exists; pass --overwrite to replace it");
        }
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
        Path partial = rel.resolve(".draft.m2q-partial");
        Path old = rel.resolve(".draft.m2q-old");
        Dirs.deleteTree(partial);
        Map<String, String> files = new TreeMap<>();
        Map<String, String> source = new TreeMap<>();
        try {
            Files.createDirectories(partial);
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
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("m2q_version", m2qVersion);
            m.put("format", "eagle3-draft");
            m.put("format_version", 1);
            m.put("source", draft.toAbsolutePath().normalize().toString());
            m.put("source_sha256", source);
            m.put("draft_vocab_size", head.config().draftVocabSize());
            m.put("taps", head.config().taps(target.numLayers()));
            m.put("files", files);
            Path mtmp = partial.resolve("." + Manifest.FILE + ".tmp");
            Files.writeString(mtmp, Json.writePretty(m), StandardCharsets.UTF_8);
            Files.move(mtmp, partial.resolve(Manifest.FILE));
            Dirs.deleteTree(old);
            if (Files.exists(dest)) {
                Files.move(dest, old);
            }
            Files.move(partial, dest);
            Dirs.deleteTree(old);
        } catch (IOException e) {
            Dirs.deleteTree(partial);
            throw new InputException(dest + ": cannot write: " + e.getMessage(), e);
        }
        return files;
    }
}
