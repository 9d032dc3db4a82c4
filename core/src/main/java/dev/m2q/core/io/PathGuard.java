package dev.m2q.core.io;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Inputs are never written over: before a command does any work, every path it will write, replace or delete is
 * compared with every path it reads. An output that is an input, contains one (replacing it would delete the input)
 * or lies inside one (writing it would change the input folder) is refused with exit 2, naming both options.
 *
 * <p>Paths are compared as the file system resolves them: the deepest existing ancestor is resolved to its real
 * path (following symlinks), the not-yet-existing rest appended, and the result normalized. So a symlink to the
 * model folder, a {@code ..} detour or a relative path all compare equal to the folder itself.
 */
public final class PathGuard {
    private PathGuard() {}

    /**
     * A path a command reads or writes, with the option that named it (for the message).
     *
     * @param option the command-line option, e.g. "--model"; "--out.m2q-partial" style labels name staging siblings
     * @param path the path as the user gave it
     */
    public record Named(String option, Path path) {
        public Named {
            if (option == null || path == null) {
                throw new IllegalArgumentException("a guarded path needs its option and its path");
            }
        }
    }

    /** {@code path} under {@code option}, or nothing when the option was not given (null). */
    public static List<Named> of(String option, Path path) {
        return path == null ? List.of() : List.of(new Named(option, path));
    }

    /** Each of {@code paths} under {@code option} (null or empty: nothing). */
    public static List<Named> ofEach(String option, List<Path> paths) {
        List<Named> out = new ArrayList<>();
        if (paths != null) {
            paths.forEach(p -> out.add(new Named(option, p)));
        }
        return out;
    }

    /** The lists joined, in order. */
    @SafeVarargs
    public static List<Named> all(List<Named>... lists) {
        List<Named> out = new ArrayList<>();
        for (List<Named> l : lists) {
            out.addAll(l);
        }
        return out;
    }

    /**
     * What a staged writer of {@code out} touches: {@code out} itself and the siblings it builds in and moves the old
     * output to ({@link StagedDir#partialOf}, {@link StagedDir#oldOf}), which it creates and deletes.
     */
    public static List<Named> staged(String option, Path out) {
        return List.of(
                new Named(option, out),
                new Named(option + " (its " + StagedDir.PARTIAL_SUFFIX + " folder)", StagedDir.partialOf(out)),
                new Named(option + " (its " + StagedDir.OLD_SUFFIX + " folder)", StagedDir.oldOf(out)));
    }

    /**
     * Refuses, with an {@link InputException} naming both paths and options, the first output that is, contains or
     * lies inside an input. Changes nothing on disk.
     */
    public static void check(List<Named> outputs, List<Named> inputs) {
        for (Named o : outputs) {
            Path ro = real(o.path());
            for (Named i : inputs) {
                Path ri = real(i.path());
                String how;
                if (ro.equals(ri)) {
                    how = "is the same path as";
                } else if (ri.startsWith(ro)) {
                    how = "contains";
                } else if (ro.startsWith(ri)) {
                    how = "lies inside";
                } else {
                    continue;
                }
                String where = ro.equals(o.path().toAbsolutePath().normalize()) ? "" : " (" + ro + ")";
                String whereIn = ri.equals(i.path().toAbsolutePath().normalize()) ? "" : " (" + ri + ")";
                throw new InputException(o.option() + " " + o.path() + where + " " + how + " " + i.option() + " "
                        + i.path() + whereIn + ": m2q never writes over, replaces or deletes its inputs; choose an"
                        + " output outside every input");
            }
        }
    }

    /**
     * {@code p} as the file system resolves it: the real path of its deepest existing ancestor (symlinks followed)
     * with the rest appended, normalized.
     */
    static Path real(Path p) {
        Path abs = p.toAbsolutePath().normalize();
        Path existing = abs;
        while (existing != null && !Files.exists(existing, LinkOption.NOFOLLOW_LINKS)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            return abs;
        }
        Path resolved;
        try {
            resolved = existing.toRealPath();
        } catch (IOException e) {
            // A dangling symlink: compare by the link's own location, which is still what would be written.
            resolved = existing;
        }
        return resolved.resolve(existing.relativize(abs)).normalize();
    }
}
