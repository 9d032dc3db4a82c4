package dev.m2q.core.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/** Folder helpers for outputs built under a temporary name. */
public final class Dirs {
    private Dirs() {}

    /** Deletes {@code dir} and everything under it; nothing when it does not exist. */
    public static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot delete: " + e.getMessage(), e);
        }
    }

    /** Copies the regular file {@code from} to {@code to} (replacing it) and returns the copy's sha256. */
    public static String copy(Path from, Path to) {
        try {
            Files.copy(from, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException(to + ": cannot copy " + from + ": " + e.getMessage(), e);
        }
        return Sha256.ofFile(to);
    }
}
