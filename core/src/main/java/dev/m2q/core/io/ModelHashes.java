package dev.m2q.core.io;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * The sha256 of a model folder's files, by file name: config.json and every weight file of its checkpoint. The
 * input hashes of every manifest m2q writes (FORMATS §6) and of every resume fingerprint, so a rerun can tell
 * whether its input is the one the first run read.
 */
public final class ModelHashes {
    private ModelHashes() {}

    /** The checkpoint in {@code dir}, opened for its file list. */
    public static Map<String, String> of(Path dir) {
        try (Checkpoint ck = Checkpoint.open(dir)) {
            return of(dir, ck);
        }
    }

    /** The checkpoint {@code ck}, already open, of the folder {@code dir}. */
    public static Map<String, String> of(Path dir, Checkpoint ck) {
        Map<String, String> h = new TreeMap<>();
        Path config = dir.resolve("config.json");
        if (Files.isRegularFile(config)) {
            h.put("config.json", Sha256.ofFile(config));
        }
        for (Path f : ck.files()) {
            h.put(f.getFileName().toString(), Sha256.ofFile(f));
        }
        return h;
    }
}
