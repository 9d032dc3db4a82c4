package dev.m2q.cli;

import dev.m2q.core.CheckFailedException;
import dev.m2q.core.InputException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.lang.reflect.InvocationTargetException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.FileSystemLoopException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * The one place that turns a failure escaping a command into an exit code and exactly one line on stderr:
 *
 * <ul>
 *   <li>an {@link InputException} anywhere in the cause chain: exit 2 with its message (it names the file, tensor
 *       or option and the fix);
 *   <li>a {@link CheckFailedException} (a check of m2q's own results failed mid-run, e.g. --verify-device): exit
 *       1, as for a failed gate, with its message;
 *   <li>an {@link Error} (OutOfMemoryError, StackOverflowError, …): exit 70, with what to try;
 *   <li>an I/O failure ({@link IOException} or {@link UncheckedIOException} anywhere in the chain: a read-only or full
 *       disk, a file where a folder is expected): exit 2, naming the path and the reason in plain words; m2q's own
 *       wrappers already say what it was doing ("OUT: cannot create the output directory: …"), so their message is
 *       kept and only the JVM's reason is translated;
 *   <li>anything else: exit 70, an internal error; a GPU that ran out of memory (CUDA_ERROR_OUT_OF_MEMORY) says
 *       what to try, as an OutOfMemoryError does.
 * </ul>
 *
 * The cause chain is searched, not just the top, because a failure inside a worker thread can reach the command
 * wrapped: the fork-join pool (core's {@code Parallel}) rethrows a task's exception as is when the exception class
 * has no public {@code (Throwable)} constructor (InputException, UncheckedIOException) and otherwise as a copy of
 * the same class whose cause is the original (OutOfMemoryError, IllegalStateException); futures wrap it in a
 * {@link CompletionException} or {@link ExecutionException}.
 *
 * <p>A stack trace never reaches stderr: for exit 70 it is written, with the command line and the runtime, to
 * {@code m2q-crash-<UTC time>-<n>.txt} in the crash directory (the JVM's temporary directory), and the line names
 * that file.
 */
final class Failures {
    private static final DateTimeFormatter STAMP =
            DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC);

    private Failures() {}

    /** The exit code and the one stderr line, "m2q: " included. */
    record Outcome(int code, String line) {}

    /**
     * Prints the one line for {@code failure} on {@code err} and returns the exit code; for exit 70 writes the crash
     * file first.
     *
     * @param crashDir where the stack trace goes for an internal error
     * @param args the command line, recorded in the crash file
     */
    static int report(Throwable failure, PrintWriter err, Path crashDir, List<String> args) {
        Outcome o = classify(failure, crashDir, args);
        err.println(o.line());
        err.flush();
        return o.code();
    }

    /** What {@link #report} prints and returns; writes the crash file for exit 70. */
    static Outcome classify(Throwable failure, Path crashDir, List<String> args) {
        List<Throwable> chain = chain(failure);
        for (Throwable t : chain) {
            if (t instanceof InputException) {
                return new Outcome(Main.EXIT_BAD_INPUT, "m2q: " + t.getMessage());
            }
        }
        for (Throwable t : chain) {
            if (t instanceof CheckFailedException) {
                return new Outcome(Main.EXIT_CHECK_FAILED, "m2q: " + t.getMessage());
            }
        }
        Error error = null; // the innermost: a fork-join copy of an OutOfMemoryError has no message, its cause has
        for (Throwable t : chain) {
            if (t instanceof Error e) {
                error = e;
            }
        }
        if (error != null) {
            String file = crashFile(failure, crashDir, args);
            return new Outcome(Main.EXIT_INTERNAL, "m2q: " + errorLine(error, file));
        }
        for (int i = 0; i < chain.size(); i++) {
            if (chain.get(i) instanceof IOException) {
                return new Outcome(Main.EXIT_BAD_INPUT, "m2q: " + ioLine(chain, i));
            }
        }
        String file = crashFile(failure, crashDir, args);
        for (Throwable t : chain) {
            if (String.valueOf(t.getMessage()).contains("CUDA_ERROR_OUT_OF_MEMORY")) {
                return new Outcome(
                        Main.EXIT_INTERNAL,
                        "m2q: the GPU ran out of memory (" + oneLine(t.getMessage()) + "): lower --nsamples, --seqlen"
                                + " or --batch-size, or run with --device cpu; the stack trace is in " + file);
            }
        }
        Throwable shown = unwrapped(failure);
        return new Outcome(
                Main.EXIT_INTERNAL,
                "m2q: internal error: " + oneLine(shown.toString()) + "; the stack trace is in " + file
                        + " (please report it with that file)");
    }

    /** {@code t} and its causes, outermost first, each once. */
    private static List<Throwable> chain(Throwable t) {
        List<Throwable> out = new ArrayList<>();
        Set<Throwable> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        for (Throwable c = t; c != null && seen.add(c); c = c.getCause()) {
            out.add(c);
        }
        return out;
    }

    /** The exception a wrapper (CompletionException, ExecutionException, reflection) stands for. */
    private static Throwable unwrapped(Throwable t) {
        Throwable c = t;
        while ((c instanceof CompletionException
                        || c instanceof ExecutionException
                        || c instanceof InvocationTargetException)
                && c.getCause() != null) {
            c = c.getCause();
        }
        return c;
    }

    private static String errorLine(Error e, String crashFile) {
        if (e instanceof OutOfMemoryError) {
            long maxMiB = Runtime.getRuntime().maxMemory() >> 20;
            String what = e.getMessage() == null ? "" : " (" + e.getMessage() + ")";
            return "out of memory" + what + " with a Java heap of " + maxMiB + " MiB: raise the heap with"
                    + " M2Q_JAVA_OPTS=-Xmx<size> (e.g. -Xmx" + suggestedHeapGiB(maxMiB) + "g), or lower --max-memory,"
                    + " --nsamples, --seqlen or --batch-size; the stack trace is in " + crashFile;
        }
        if (e instanceof StackOverflowError) {
            return "internal error: stack overflow; the stack trace is in " + crashFile
                    + " (please report it; M2Q_JAVA_OPTS=-Xss16m may get past it)";
        }
        return "internal error: " + oneLine(e.toString()) + "; the stack trace is in " + crashFile
                + " (please report it with that file)";
    }

    /** Twice the current heap, in whole GiB, at least 2: a first step, not a promise. */
    private static long suggestedHeapGiB(long maxMiB) {
        return Math.max(2, (2 * maxMiB + 1023) / 1024);
    }

    /**
     * The line for the I/O failure at {@code chain[at]}: the message of the outermost wrapper that quotes it (m2q's
     * wrappers read "PATH: cannot …: REASON"), with the reason in plain words; or the path and the reason alone.
     */
    private static String ioLine(List<Throwable> chain, int at) {
        IOException io = (IOException) chain.get(at);
        String plain;
        String where;
        if (io instanceof FileSystemException fse) {
            plain = plainReason(fse);
            where = fse.getFile() == null
                    ? null
                    : fse.getFile() + (fse.getOtherFile() == null ? "" : " -> " + fse.getOtherFile());
        } else if (io.getMessage() != null && io.getMessage().matches("(?s).+ \\([^()]+\\)")) {
            // java.io's "PATH (Reason)", as FileNotFoundException words it
            String m = io.getMessage();
            int open = m.lastIndexOf(" (");
            where = m.substring(0, open);
            plain = plainReason(m.substring(open + 2, m.length() - 1));
        } else {
            plain = plainReason(io.getMessage());
            where = null;
        }
        for (int i = 0; i < at; i++) {
            String m = chain.get(i).getMessage();
            if (m == null) {
                continue;
            }
            // The wrapper quotes io's toString() or its message; what precedes the quote is the wrapper's own words
            // (none when the wrapper is just "new X(cause)").
            String quoted = m.endsWith(io.toString())
                    ? io.toString()
                    : io.getMessage() != null && !io.getMessage().isEmpty() && m.endsWith(io.getMessage())
                            ? io.getMessage()
                            : null;
            String head = quoted == null ? "" : strip(m.substring(0, m.length() - quoted.length()));
            if (!head.isEmpty()) {
                boolean named = where == null || head.startsWith(where + ":") || head.startsWith(where + " ");
                return oneLine(head + ": " + (named ? "" : where + ": ") + plain);
            }
        }
        return oneLine((where == null ? "" : where + ": ") + plain);
    }

    private static String strip(String head) {
        String h = head.strip();
        while (h.endsWith(":")) {
            h = h.substring(0, h.length() - 1).strip();
        }
        return h;
    }

    /** The reason of a file-system error in plain words, by class first, then by the OS's reason text. */
    static String plainReason(FileSystemException e) {
        if (e instanceof AccessDeniedException) {
            return "permission denied (read-only, or owned by another user?)";
        }
        if (e instanceof NoSuchFileException) {
            return "no such file or directory";
        }
        if (e instanceof NotDirectoryException) {
            return "not a directory (a file is where a folder is expected)";
        }
        if (e instanceof FileAlreadyExistsException) {
            return "already exists";
        }
        if (e instanceof DirectoryNotEmptyException) {
            return "the folder is not empty";
        }
        if (e instanceof FileSystemLoopException) {
            return "symbolic links loop";
        }
        return plainReason(e.getReason());
    }

    /** The OS's reason text (strerror) in plain words, with what to do where there is something to do. */
    static String plainReason(String reason) {
        if (reason == null || reason.isBlank()) {
            return "input/output error";
        }
        String r = reason.strip();
        String lower = r.toLowerCase(Locale.ROOT);
        if (lower.contains("no space left on device")) {
            return "no space left on device (free some space or write elsewhere)";
        }
        if (lower.contains("disk quota exceeded")) {
            return "disk quota exceeded (free some space or write elsewhere)";
        }
        if (lower.contains("read-only file system")) {
            return "read-only file system (write elsewhere)";
        }
        if (lower.contains("permission denied") || lower.contains("operation not permitted")) {
            return "permission denied (read-only, or owned by another user?)";
        }
        if (lower.contains("not a directory")) {
            return "not a directory (a file is where a folder is expected)";
        }
        if (lower.contains("is a directory")) {
            return "is a directory (a folder is where a file is expected)";
        }
        if (lower.contains("no such file or directory")) {
            return "no such file or directory";
        }
        if (lower.contains("file too large")) {
            return "file too large for this file system";
        }
        return r.substring(0, 1).toLowerCase(Locale.ROOT) + r.substring(1);
    }

    /** A message on one line: line breaks become "; ". */
    private static String oneLine(String s) {
        return s == null ? "" : s.strip().replaceAll("\\s*\\R\\s*", "; ");
    }

    /**
     * Writes the stack trace, the command line and the runtime to a new file in {@code dir}; returns its path, or a
     * note saying why there is none (the line stays one line either way).
     */
    private static String crashFile(Throwable failure, Path dir, List<String> args) {
        StringWriter text = new StringWriter();
        try (PrintWriter w = new PrintWriter(text)) {
            w.println("m2q " + Version.get() + " internal error at " + Instant.now());
            w.println("command: m2q " + String.join(" ", args));
            w.println("java: " + Runtime.version() + " (" + System.getProperty("java.vm.name") + "), "
                    + System.getProperty("os.name") + " " + System.getProperty("os.arch") + ", heap max "
                    + (Runtime.getRuntime().maxMemory() >> 20) + " MiB, "
                    + Runtime.getRuntime().availableProcessors()
                    + " processors");
            w.println();
            failure.printStackTrace(w);
        }
        String stamp = STAMP.format(Instant.now());
        try {
            Files.createDirectories(dir);
            for (int n = 0; ; n++) {
                Path file = dir.resolve("m2q-crash-" + stamp + (n == 0 ? "" : "-" + n) + ".txt");
                try {
                    Files.writeString(
                            file,
                            text.toString(),
                            StandardCharsets.UTF_8,
                            java.nio.file.StandardOpenOption.CREATE_NEW,
                            java.nio.file.StandardOpenOption.WRITE);
                    return file.toAbsolutePath().toString();
                } catch (FileAlreadyExistsException e) {
                    if (n >= 1000) {
                        throw e;
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            return "(nowhere: " + dir + " is not writable: " + oneLine(e.toString()) + ")";
        }
    }
}
