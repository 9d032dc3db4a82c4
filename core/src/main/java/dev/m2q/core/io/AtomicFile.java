package dev.m2q.core.io;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * A text file replaced all at once: written under a hidden temporary name beside it ({@code .NAME.m2q-tmp}) and
 * renamed over it with {@code ATOMIC_MOVE}, so a reader (or a run killed half-way) sees the old file or the new
 * one, never a torn one. A failed write deletes the temporary and leaves the old file as it was.
 */
public final class AtomicFile {
    private AtomicFile() {}

    /** Writes the body of a file through a buffered UTF-8 writer. */
    @FunctionalInterface
    public interface Body {
        void write(BufferedWriter w) throws IOException;
    }

    /**
     * Replaces {@code file} with {@code text} (UTF-8); returns the new file's sha256.
     *
     * @throws OutputException naming the file when it cannot be written (read-only or full disk, a folder in the
     *     way): an output-side failure the user fixes, exit 2
     */
    public static String writeText(Path file, String text) {
        return write(file, w -> w.write(text));
    }

    /** Replaces {@code file} with what {@code body} writes (UTF-8); returns the new file's sha256. */
    public static String write(Path file, Body body) {
        Path abs = file.toAbsolutePath();
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".m2q-tmp");
        try {
            try (BufferedWriter w = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8)) {
                body.write(w);
            }
            move(tmp, abs);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new OutputException(abs + ": cannot write (" + reason(e) + ")", e);
        }
        return Sha256.ofFile(abs);
    }

    /** Replaces {@code file} with {@code bytes} (an encoded image, say); returns the new file's sha256. */
    public static String writeBytes(Path file, byte[] bytes) {
        Path abs = file.toAbsolutePath();
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".m2q-tmp");
        try {
            Files.write(tmp, bytes);
            move(tmp, abs);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new OutputException(abs + ": cannot write (" + reason(e) + ")", e);
        }
        return Sha256.ofFile(abs);
    }

    private static void move(Path tmp, Path abs) throws IOException {
        try {
            Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * What went wrong, without repeating the path (the caller's message starts with it): the file system's reason
     * ("Read-only file system", "No space left on device") or the kind of failure.
     */
    static String reason(IOException e) {
        if (e instanceof FileSystemException f) {
            if (f.getReason() != null) {
                return f.getReason();
            }
            return switch (e) {
                case AccessDeniedException a -> "permission denied";
                case NoSuchFileException n -> "no such file or folder";
                case FileAlreadyExistsException x -> "something is already there";
                case DirectoryNotEmptyException d -> "a folder that is not empty is in the way";
                case NotDirectoryException n -> "a file is where a folder is needed";
                default -> e.getClass().getSimpleName();
            };
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // The write already failed; that error is the one reported, and the stray temporary is hidden.
        }
    }
}
