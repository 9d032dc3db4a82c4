package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Parallel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The exit-code contract: every class of failure gives its code and exactly one line, by calling the mapping with
 * synthetic failures (and with failures really thrown in worker threads), and through {@link Main#run} on real
 * inputs.
 */
class FailuresTest {
    static final Pattern CRASH_FILE = Pattern.compile("the stack trace is in (\\S+\\.txt)");

    static Failures.Outcome classify(Throwable t, Path crashDir) {
        Failures.Outcome o = Failures.classify(t, crashDir, List.of("quantize", "--model", "M"));
        assertFalse(o.line().contains("\n") || o.line().contains("\r"), "one line: " + o.line());
        assertTrue(o.line().startsWith("m2q: "), o.line());
        return o;
    }

    static void assertOutcome(int code, String expectedLine, Throwable t, Path crashDir) {
        Failures.Outcome o = classify(t, crashDir);
        assertEquals(code, o.code(), o.line());
        assertEquals(expectedLine, o.line());
    }

    /** An exit-70 outcome: the line names a crash file that holds the stack trace and the command line. */
    static String assertInternal(Throwable t, Path crashDir, String... lineParts) throws IOException {
        Failures.Outcome o = classify(t, crashDir);
        assertEquals(Main.EXIT_INTERNAL, o.code(), o.line());
        for (String p : lineParts) {
            assertTrue(o.line().contains(p), "expected \"" + p + "\" in: " + o.line());
        }
        Matcher m = CRASH_FILE.matcher(o.line());
        assertTrue(m.find(), o.line());
        Path file = Path.of(m.group(1));
        assertEquals(crashDir.toAbsolutePath(), file.getParent());
        String trace = Files.readString(file);
        assertTrue(trace.contains("command: m2q quantize --model M"), trace);
        assertTrue(trace.contains(t.getClass().getName()), trace);
        assertTrue(trace.contains("\tat dev.m2q.cli.FailuresTest"), trace);
        return o.line();
    }

    @Test
    void badInputIsTwoWithItsMessageWhereverItIsWrapped(@TempDir Path tmp) {
        InputException bad = new InputException("config.json: \"hidden_size\" must be a positive integer");
        String line = "m2q: " + bad.getMessage();
        assertOutcome(2, line, bad, tmp);
        assertOutcome(2, line, new CompletionException(bad), tmp);
        assertOutcome(2, line, new ExecutionException(bad), tmp);
        assertOutcome(2, line, new IllegalStateException(new RuntimeException(bad)), tmp);
    }

    @Test
    void aFailedCheckOfOurOwnResultsIsOneWithItsMessage(@TempDir Path tmp) {
        dev.m2q.core.CheckFailedException failed = new dev.m2q.core.CheckFailedException(
                "--verify-device: layer 3: 51 of 1000 codes (5.100%) differ from the CPU's on the same inputs");
        String line = "m2q: " + failed.getMessage();
        assertOutcome(1, line, failed, tmp);
        assertOutcome(1, line, new CompletionException(failed), tmp);
        assertOutcome(1, line, new IllegalStateException(new RuntimeException(failed)), tmp);
    }

    @Test
    void ioFailuresAreTwoWithThePathAndThePlainReason(@TempDir Path tmp) {
        String denied = "permission denied (read-only, or owned by another user?)";
        // m2q's wrappers say what they were doing; only the JVM's reason is translated.
        assertOutcome(
                2,
                "m2q: /x/out.m2q-partial: cannot create the output directory: " + denied,
                new UncheckedIOException(
                        "/x/out.m2q-partial: cannot create the output directory: "
                                + new AccessDeniedException("/x/out.m2q-partial"),
                        new AccessDeniedException("/x/out.m2q-partial")),
                tmp);
        // A wrapper about another path keeps the failing path too.
        AccessDeniedException inner = new AccessDeniedException("/x/out/config.json");
        assertOutcome(
                2,
                "m2q: /x/out: cannot finish: /x/out/config.json: " + denied,
                new UncheckedIOException("/x/out: cannot finish: " + inner.getMessage(), inner),
                tmp);
        assertOutcome(2, "m2q: /x/out: " + denied, new AccessDeniedException("/x/out"), tmp);
        assertOutcome(
                2,
                "m2q: /x/.model.safetensors.partial: write failed: no space left on device (free some space or write"
                        + " elsewhere)",
                new UncheckedIOException(
                        "/x/.model.safetensors.partial: write failed: No space left on device",
                        new IOException("No space left on device")),
                tmp);
        assertOutcome(
                2,
                "m2q: /x/out: read-only file system (write elsewhere)",
                new FileSystemException("/x/out", null, "Read-only file system"),
                tmp);
        assertOutcome(
                2,
                "m2q: /x/report.json/validate: not a directory (a file is where a folder is expected)",
                new CompletionException(new FileSystemException("/x/report.json/validate", null, "Not a directory")),
                tmp);
        assertOutcome(
                2,
                "m2q: /x/report: not a directory (a file is where a folder is expected)",
                new NotDirectoryException("/x/report"),
                tmp);
        assertOutcome(2, "m2q: /x/in: no such file or directory", new NoSuchFileException("/x/in"), tmp);
        assertOutcome(
                2,
                "m2q: /x/a -> /x/b: already exists",
                new UncheckedIOException(new FileAlreadyExistsException("/x/a", "/x/b", null)),
                tmp);
        assertOutcome(2, "m2q: input/output error", new UncheckedIOException(new IOException()), tmp);
        assertOutcome(
                2,
                "m2q: /x/report.json: is a directory (a folder is where a file is expected)",
                new java.io.FileNotFoundException("/x/report.json (Is a directory)"),
                tmp);
    }

    @Test
    void errorsAndBugsAreSeventyWithOneLineAndTheTraceInAFile(@TempDir Path tmp) throws IOException {
        String oom = assertInternal(
                new OutOfMemoryError("Java heap space"),
                tmp,
                "m2q: out of memory (Java heap space) with a Java heap of ",
                "M2Q_JAVA_OPTS=-Xmx",
                "--max-memory",
                "--nsamples",
                "--seqlen",
                "--batch-size");
        // An OOM wrapped by the fork-join pool (a copy whose cause is the original) or a future is the same.
        OutOfMemoryError copy = new OutOfMemoryError();
        copy.initCause(new OutOfMemoryError("Java heap space"));
        assertTrue(assertInternal(copy, tmp).startsWith("m2q: out of memory"));
        assertTrue(assertInternal(new ExecutionException(new OutOfMemoryError("Java heap space")), tmp)
                .startsWith("m2q: out of memory (Java heap space)"));
        assertTrue(oom.contains("-Xmx"), oom);

        assertInternal(new StackOverflowError(), tmp, "m2q: internal error: stack overflow", "-Xss");
        assertInternal(new AssertionError("w4 codes out of range"), tmp, "internal error", "w4 codes out of range");
        assertInternal(
                new IllegalStateException("layer 3 returned no weights"),
                tmp,
                "m2q: internal error: java.lang.IllegalStateException: layer 3 returned no weights; the stack trace is"
                        + " in ",
                "please report it");
        assertInternal(
                new CompletionException(new ArithmeticException("/ by zero")),
                tmp,
                "m2q: internal error: java.lang.ArithmeticException: / by zero");
        assertInternal(
                new IllegalStateException(
                        "alloc 512 MiB",
                        new RuntimeException("cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)")),
                tmp,
                "m2q: the GPU ran out of memory (cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory))",
                "--device cpu");
        // Every crash gets its own file, even several in one second.
        try (var files = Files.list(tmp)) {
            assertEquals(
                    8,
                    files.filter(p -> p.getFileName().toString().startsWith("m2q-crash-"))
                            .count());
        }
    }

    @Test
    void anUnwritableCrashDirectoryStillGivesOneLine(@TempDir Path tmp) throws IOException {
        Path file = Files.writeString(tmp.resolve("not-a-dir"), "x");
        Failures.Outcome o = classify(new IllegalStateException("boom"), file);
        assertEquals(70, o.code());
        assertTrue(o.line().contains("boom") && o.line().contains("is not writable"), o.line());
    }

    /** Failures really thrown inside worker threads, as core's Parallel and the fork-join pool deliver them. */
    @Test
    void failuresFromWorkerThreadsKeepTheirCode(@TempDir Path tmp) throws IOException {
        InputException bad = new InputException("calibration.txt:3: not valid UTF-8");
        Throwable t = thrownBy(() -> Parallel.forRange(64, 1 << 20, (a, b) -> {
            throw bad;
        }));
        assertOutcome(2, "m2q: " + bad.getMessage(), t, tmp);
        assertOutcome(
                2,
                "m2q: " + bad.getMessage(),
                thrownBy(() -> CompletableFuture.runAsync(() -> {
                            throw bad;
                        })
                        .join()),
                tmp);

        // A task that ran on a pool thread and is joined from this one: the pool rethrows a copy of the exception
        // with the original as its cause when the class has a public (Throwable) or no-argument constructor.
        ForkJoinPool pool = new ForkJoinPool(1);
        try {
            Throwable ise = joinAfterDone(pool, new IllegalStateException("from a worker"));
            assertNotNull(ise.getCause(), "the pool wrapped it");
            assertInternal(ise, tmp, "IllegalStateException: from a worker");
            Throwable oom = joinAfterDone(pool, new OutOfMemoryError("Java heap space"));
            assertTrue(oom instanceof OutOfMemoryError);
            assertNotSame(null, oom.getCause());
            assertInternal(oom, tmp, "m2q: out of memory (Java heap space)");
            assertSame(bad, joinAfterDone(pool, bad), "no such constructor: rethrown as is");
        } finally {
            pool.shutdownNow();
        }
    }

    private static Throwable joinAfterDone(ForkJoinPool pool, Throwable toThrow) {
        ForkJoinTask<?> task = pool.submit((Runnable) () -> {
            if (toThrow instanceof RuntimeException r) {
                throw r;
            }
            throw (Error) toThrow;
        });
        while (!task.isDone()) {
            Thread.onSpinWait();
        }
        return thrownBy(task::join);
    }

    private static Throwable thrownBy(Runnable r) {
        try {
            r.run();
        } catch (Throwable t) {
            return t;
        }
        return fail("expected a failure");
    }

    // ---- through Main.run, on real inputs ----

    /** A model folder that is a file, and --out beneath a file: exit 2, and the failure is one line. */
    @Test
    void realBadInputAndIoFailuresExitTwoWithOneLine(@TempDir Path tmp) throws IOException {
        Path file = Files.writeString(tmp.resolve("model.bin"), "not a model");
        CliTest.Run r = CliTest.run(
                "quantize",
                "--model",
                file.toString(),
                "--out",
                tmp.resolve("o").toString());
        assertEquals(2, r.code(), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().startsWith("m2q: ") && r.err().contains(file.toString()), r.err());

        Path out = file.resolve("release");
        r = CliTest.run(
                "quantize",
                "--model",
                CliTest.FIXTURE.toString(),
                "--out",
                out.toString(),
                "--nsamples",
                "2",
                "--seqlen",
                "16");
        assertEquals(2, r.code(), r.err());
        assertFalse(r.err().contains("\tat "), r.err());
        String last = r.err().lines().reduce((a, b) -> b).orElseThrow();
        assertTrue(last.startsWith("m2q: ") && last.contains(file.toString()), r.err());
    }

    /** A NaN planted in a copy of the fixture: exit 2 naming tensor[row, col], and nothing written. */
    @Test
    void nonFiniteSourceWeightsAreRefusedBeforeAnythingIsWritten(@TempDir Path tmp) throws IOException {
        Path model = tmp.resolve("model");
        Files.createDirectories(model);
        try (var files = Files.list(CliTest.FIXTURE)) {
            for (Path f : files.toList()) {
                Files.copy(f, model.resolve(f.getFileName()));
            }
        }
        // down_proj of layer 3 is W [256, 768]: element [17, 700].
        plantBf16(model.resolve("model.safetensors"), "model.layers.3.mlp.down_proj.weight", 17L * 768 + 700, 0x7FC0);
        Path out = tmp.resolve("out");
        CliTest.Run r = CliTest.run(
                "quantize", "--model", model.toString(), "--out", out.toString(), "--nsamples", "2", "--seqlen", "16");
        assertEquals(2, r.code(), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().startsWith("m2q: model.layers.3.mlp.down_proj.weight[17, 700] is NaN"), r.err());
        assertFalse(Files.exists(out), "no output");
        assertFalse(Files.exists(tmp.resolve("out.m2q-partial")), "no partial folder");
    }

    /** Overwrites element {@code index} of a BF16 tensor with {@code bits}, located through the file's own header. */
    @SuppressWarnings("unchecked")
    static void plantBf16(Path file, String tensor, long index, int bits) throws IOException {
        byte[] header = CliTest.readHeader(file);
        Map<String, Object> h = Json.parseObject(new String(header, java.nio.charset.StandardCharsets.UTF_8));
        Map<String, Object> t = (Map<String, Object>) h.get(tensor);
        assertEquals("BF16", t.get("dtype"));
        long begin = (Long) ((List<Object>) t.get("data_offsets")).getFirst();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort((short) bits);
            ch.write(b.flip(), 8L + header.length + begin + 2 * index);
        }
    }
}
