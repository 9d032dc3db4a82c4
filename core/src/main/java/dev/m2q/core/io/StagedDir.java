package dev.m2q.core.io;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * An output that replaces an older one only once it is complete, written by one process at a time.
 *
 * <p>The new output is built in {@code OUT.m2q-partial/} beside {@code OUT} (a folder output is that folder; a
 * single-file output is the file of {@code OUT}'s name inside it). {@link #commit} swaps it in: the old
 * {@code OUT} is moved to {@code OUT.m2q-old}, the new one moved to {@code OUT}, then the old one deleted; a failure
 * of the second move puts the old one back. Until {@code commit}, {@code OUT} is not touched, so any failure while
 * building leaves the previous output exactly as it was.
 *
 * <p>The partial folder holds a lock file ({@code .m2q-lock}, with the writer's pid) locked for the whole run: a
 * second run on the same {@code OUT} is refused with exit 2 before it deletes or writes anything there (a lock held
 * in this JVM counts too). The lock ends with the process, so a killed run never blocks its {@code --resume}.
 */
public final class StagedDir implements AutoCloseable {
    public static final String PARTIAL_SUFFIX = ".m2q-partial";
    public static final String OLD_SUFFIX = ".m2q-old";
    /** The lock file in the partial folder; deleted at commit, so it never ships with an output. */
    public static final String LOCK = ".m2q-lock";

    /** How the swap moves a path; tests pass one that fails at a chosen step. */
    @FunctionalInterface
    interface Mover {
        void move(Path from, Path to) throws IOException;
    }

    private final Path out;
    private final Path partial;
    private final boolean singleFile;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final Mover mover;
    private boolean done;

    private StagedDir(Path out, Path partial, boolean singleFile, FileChannel lockChannel, FileLock lock, Mover mover) {
        this.out = out;
        this.partial = partial;
        this.singleFile = singleFile;
        this.lockChannel = lockChannel;
        this.lock = lock;
        this.mover = mover;
    }

    /** Where a run writing {@code out} builds it: {@code OUT.m2q-partial} beside it. */
    public static Path partialOf(Path out) {
        Path abs = out.toAbsolutePath().normalize();
        return abs.resolveSibling(abs.getFileName() + PARTIAL_SUFFIX);
    }

    /** Where the previous {@code out} waits while the new one is moved in: {@code OUT.m2q-old}. */
    public static Path oldOf(Path out) {
        Path abs = out.toAbsolutePath().normalize();
        return abs.resolveSibling(abs.getFileName() + OLD_SUFFIX);
    }

    /**
     * Refuses, changing nothing on disk: an existing output without {@code overwrite}; a {@code resume} with nothing
     * to resume (no {@code resumeMarker} file in the partial folder); an interrupted run that a fresh run without
     * {@code overwrite} would discard; a previous output stranded in {@code OUT.m2q-old} by a swap that was killed
     * between its two moves; an output whose nearest existing ancestor is a file.
     *
     * @param resumeMarker the file, relative to the partial folder, that an interrupted run leaves when it can be
     *     resumed (e.g. {@code progress.json}); null when the writer cannot resume
     */
    public static void check(Path out, boolean overwrite, boolean resume, String resumeMarker) {
        Path abs = out.toAbsolutePath().normalize();
        Path partial = partialOf(abs);
        Path old = oldOf(abs);
        if (Files.exists(old, LinkOption.NOFOLLOW_LINKS) && !Files.exists(abs, LinkOption.NOFOLLOW_LINKS)) {
            throw new InputException(old + ": holds the previous " + abs.getFileName() + " from a replacement that"
                    + " was interrupted; move it back to " + abs + " (or delete it) and run again");
        }
        if (Files.exists(abs, LinkOption.NOFOLLOW_LINKS) && !overwrite) {
            throw new InputException(abs + ": already exists; pass --overwrite to replace it (it is replaced only"
                    + " once the new output is complete)");
        }
        if (resume && (resumeMarker == null || !Files.isRegularFile(partial.resolve(resumeMarker)))) {
            throw new InputException(partial + ": no interrupted run to resume"
                    + (resumeMarker == null ? "" : " (no " + resumeMarker + ")") + "; run without --resume");
        }
        if (!resume && Files.exists(partial, LinkOption.NOFOLLOW_LINKS) && !overwrite) {
            throw new InputException(partial + ": holds an interrupted run; "
                    + (resumeMarker == null ? "" : "pass --resume to continue it or ")
                    + "pass --overwrite to start over");
        }
        Path parent = abs.getParent();
        while (parent != null && !Files.exists(parent)) {
            parent = parent.getParent();
        }
        if (parent != null && !Files.isDirectory(parent)) {
            throw new InputException(abs + ": cannot be written: " + parent + " is a file, not a folder");
        }
    }

    /**
     * Checks ({@link #check}), locks and prepares the partial folder of the folder output {@code out}: kept as it
     * is for {@code resume}, emptied (but for the lock) otherwise.
     *
     * @throws InputException for what {@link #check} refuses, when another process (or another run in this JVM)
     *     is writing {@code out}, or when the partial folder cannot be created (read-only disk, no permission)
     */
    public static StagedDir open(Path out, boolean overwrite, boolean resume, String resumeMarker) {
        return open(out, overwrite, resume, resumeMarker, false, Files::move);
    }

    /**
     * Like {@link #open} for an output that is one file ({@code eagle data}'s JSONL): write it at {@link #path()},
     * inside the partial folder; {@link #commit} moves it to {@code out}. Such a writer cannot resume.
     */
    public static StagedDir openFile(Path out, boolean overwrite) {
        return open(out, overwrite, false, null, true, Files::move);
    }

    static StagedDir open(
            Path out, boolean overwrite, boolean resume, String resumeMarker, boolean singleFile, Mover mover) {
        check(out, overwrite, resume, resumeMarker);
        Path abs = out.toAbsolutePath().normalize();
        if (singleFile && Files.isDirectory(abs)) {
            throw new InputException(abs + ": is a folder; the output is one file");
        }
        Path partial = partialOf(abs);
        if (Files.exists(partial, LinkOption.NOFOLLOW_LINKS)
                && !Files.isDirectory(partial, LinkOption.NOFOLLOW_LINKS)) {
            throw new InputException(partial + ": is a file where m2q builds its output folder; remove it");
        }
        FileChannel ch;
        try {
            Files.createDirectories(partial);
            ch = FileChannel.open(
                    partial.resolve(LOCK),
                    StandardOpenOption.CREATE,
                    StandardOpenOption.READ,
                    StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new OutputException(
                    partial + ": cannot create (" + AtomicFile.reason(e) + "); choose a writable" + " location for "
                            + abs.getFileName(),
                    e);
        }
        FileLock lock;
        try {
            lock = ch.tryLock();
        } catch (OverlappingFileLockException e) {
            lock = null;
        } catch (IOException e) {
            closeQuietly(ch);
            throw new OutputException(partial.resolve(LOCK) + ": cannot lock (" + AtomicFile.reason(e) + ")", e);
        }
        if (lock == null) {
            String pid = readPid(ch);
            closeQuietly(ch);
            throw new OutputException(abs + " is being written by pid " + pid + " (its " + partial.getFileName()
                    + " folder is locked); wait for that run to finish or stop it");
        }
        StagedDir staged = new StagedDir(abs, partial, singleFile, ch, lock, mover);
        try {
            ch.truncate(0);
            ch.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)), 0);
            if (!resume) {
                staged.clearPartial();
            }
        } catch (IOException | RuntimeException e) {
            staged.close();
            if (e instanceof InputException ie) {
                throw ie;
            }
            throw new OutputException(partial + ": cannot prepare (" + e.getMessage() + ")", e);
        }
        return staged;
    }

    /** The final output path. */
    public Path out() {
        return out;
    }

    /** The partial folder the run builds in. */
    public Path dir() {
        return partial;
    }

    /** Where to write: the partial folder, or for a single-file output the file of {@code OUT}'s name inside it. */
    public Path path() {
        return singleFile ? partial.resolve(out.getFileName()) : partial;
    }

    /** Writes {@code text} atomically as {@code name} in the partial folder ({@link AtomicFile}); returns sha256. */
    public String writeAtomically(String name, String text) {
        return AtomicFile.writeText(partial.resolve(name), text);
    }

    /**
     * Refuses to start when the partial folder's file system has less than {@code bytes} free (a rough check: a run
     * that would fill the disk half-way is stopped before computing anything).
     *
     * @param what what needs the space, for the message (e.g. "the release's tensors")
     */
    public void requireSpace(long bytes, String what) {
        long free;
        try {
            FileStore store = Files.getFileStore(partial);
            free = store.getUsableSpace();
        } catch (IOException e) {
            return; // the store cannot say: the writes themselves will report a full disk
        }
        if (free < bytes) {
            throw new OutputException(out.getParent() + ": " + what + " need about " + human(bytes) + ", but only "
                    + human(free) + " is free there; free some space or choose another location for "
                    + out.getFileName());
        }
    }

    /**
     * Swaps the finished output in: the old {@code OUT} (if any) to {@code OUT.m2q-old}, the new one to {@code OUT},
     * then the old one deleted. When the new one cannot be moved in, the old one is moved back and the new one stays
     * in the partial folder. Releases the lock.
     *
     * @throws OutputException when a move fails (the message says where each version is)
     */
    public void commit() {
        if (done) {
            throw new IllegalStateException(out + ": already committed or discarded");
        }
        Path old = oldOf(out);
        Path built = path();
        boolean hadOld = Files.exists(out, LinkOption.NOFOLLOW_LINKS);
        try {
            if (hadOld) {
                Dirs.deleteTree(old);
                mover.move(out, old);
            }
        } catch (IOException | UncheckedIOException e) {
            close();
            throw new OutputException(
                    out + ": cannot move the previous output aside to " + old + " (" + message(e)
                            + "); it is unchanged, the new one is in " + partial,
                    e);
        }
        try {
            mover.move(built, out);
        } catch (IOException | RuntimeException e) {
            String where = "the new one is in " + partial;
            if (hadOld) {
                try {
                    mover.move(old, out);
                    where = "the previous one is back in place, " + where;
                } catch (IOException | RuntimeException back) {
                    e.addSuppressed(back);
                    where = "the previous one is in " + old + ", " + where;
                }
            }
            close();
            throw new OutputException(
                    out + ": cannot move the new output into place (" + message(e) + "); " + where, e);
        }
        done = true;
        try {
            if (singleFile) {
                Dirs.deleteTree(partial);
            } else {
                Files.deleteIfExists(out.resolve(LOCK));
            }
            Dirs.deleteTree(old);
        } catch (IOException | UncheckedIOException e) {
            // The new output is complete and in place; a leftover lock file or old copy is removed by the next run.
        } finally {
            release();
        }
    }

    /** Deletes the partial folder (a run that produced nothing worth resuming) and releases the lock. */
    public void discard() {
        if (done) {
            return;
        }
        done = true;
        try {
            Dirs.deleteTree(partial);
        } catch (UncheckedIOException e) {
            // What is left is unlocked and a rerun with --overwrite clears it; the run's own error matters more.
        } finally {
            release();
        }
    }

    /**
     * Ends a run that failed with {@code e} and returns what to throw. The partial folder is kept (unlocked) when
     * {@code keep} — it was given to --resume, or holds finished work that --resume can continue — and deleted
     * otherwise, so bad input found after work started leaves nothing behind. An I/O failure (a read-only or full
     * disk, a folder in the way) becomes one {@link OutputException} line that says what was kept; any other
     * failure is returned as it is, after {@code log} has said what was kept. An Error is rethrown here.
     *
     * @param whatIsKept how the kept work is continued, or null when there is none worth continuing
     */
    public RuntimeException failed(Throwable e, boolean keep, String whatIsKept, Consumer<String> log) {
        if (keep) {
            close();
        } else {
            discard();
        }
        if (e instanceof UncheckedIOException || e instanceof OutputException) {
            return new OutputException(e.getMessage() + (whatIsKept == null ? "" : "; " + whatIsKept), e);
        }
        if (whatIsKept != null) {
            log.accept("stopped; " + whatIsKept);
        }
        if (e instanceof Error err) {
            throw err;
        }
        return (RuntimeException) e;
    }

    /** Whether {@code e} is bad input (found after work started), as opposed to an output-side or internal failure. */
    public static boolean isBadInput(Throwable e) {
        return e instanceof InputException && !(e instanceof OutputException);
    }

    /** Releases the lock and keeps the partial folder as it is (for --resume); nothing after commit or discard. */
    @Override
    public void close() {
        if (!done) {
            done = true;
            release();
        }
    }

    private void release() {
        try {
            if (lock.isValid()) {
                lock.release();
            }
        } catch (IOException ignored) {
            // Closing the channel below releases it too.
        }
        closeQuietly(lockChannel);
    }

    /** Empties the partial folder of a previous run (for a fresh start), keeping the lock file. */
    private void clearPartial() throws IOException {
        try (Stream<Path> list = Files.list(partial)) {
            for (Path p : list.toList()) {
                if (!p.getFileName().toString().equals(LOCK)) {
                    if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                        Dirs.deleteTree(p);
                    } else {
                        Files.delete(p);
                    }
                }
            }
        }
    }

    private static String readPid(FileChannel ch) {
        try {
            ByteBuffer b = ByteBuffer.allocate(32);
            ch.read(b, 0);
            String s = new String(b.array(), 0, b.position(), StandardCharsets.US_ASCII).strip();
            return s.isEmpty() ? "?" : s;
        } catch (IOException e) {
            return "?";
        }
    }

    private static String message(Exception e) {
        return e instanceof IOException io ? AtomicFile.reason(io) : e.getMessage();
    }

    static String human(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
        }
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // Nothing more to release.
        }
    }
}
