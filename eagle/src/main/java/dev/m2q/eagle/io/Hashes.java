package dev.m2q.eagle.io;

import dev.m2q.core.io.Checkpoint;
import dev.m2q.core.io.Sha256;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/** The sha256 of a model folder's files, for headers and manifests (FORMATS §6: input checkpoint hashes). */
public final class Hashes {
    private Hashes() {}

    /** config.json and every weight file of the checkpoint in {@code dir}, by file name. */
    public static Map<String, String> ofModel(Path dir) {
        Map<String, String> h = new TreeMap<>();
        Path config = dir.resolve("config.json");
        if (Files.isRegularFile(config)) {
            h.put("config.json", Sha256.ofFile(config));
        }
        try (Checkpoint ck = Checkpoint.open(dir)) {
            for (Path f : ck.files()) {
                h.put(f.getFileName().toString(), Sha256.ofFile(f));
            }
        }
        return h;
    }
}
