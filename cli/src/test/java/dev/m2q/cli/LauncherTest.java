package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The launchers' stderr filter (tools/launch-java.sh, used by ./m2q and the dist's bin/m2q) around a stand-in for
 * the JVM, a bash one-liner, so the test needs no JVM start: the incubator warning is dropped, every other byte of
 * stderr and stdout passes in order, and the exit status is the stand-in's.
 */
class LauncherTest {
    static final Path SCRIPT =
            Path.of("..", "tools", "launch-java.sh").toAbsolutePath().normalize();
    static final String WARNING = "WARNING: Using incubator modules: jdk.incubator.vector";

    record Result(int code, String out, String err) {}

    /** Runs {@code fakeJava} (bash) through m2q_run_java. */
    static Result launch(String fakeJava) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(
                        "bash",
                        "-c",
                        "set -euo pipefail; source \"$1\"; m2q_run_java bash -c \"$2\"",
                        "launcher",
                        SCRIPT.toString(),
                        fakeJava)
                .start();
        p.getOutputStream().close();
        byte[] out = p.getInputStream().readAllBytes();
        byte[] err = p.getErrorStream().readAllBytes();
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("the launcher did not finish");
        }
        return new Result(
                p.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err, StandardCharsets.UTF_8));
    }

    static String err(String line) {
        return "echo '" + line + "' >&2; ";
    }

    @Test
    void theWarningIsDroppedAndEverythingElseKept() throws Exception {
        Result r = launch(err(WARNING) + "echo out; " + err("m2q: bad input") + "exit 2");
        assertEquals(new Result(2, "out\n", "m2q: bad input\n"), r);

        // Progress redrawn with \r and a last line without a newline pass unchanged; the status is kept.
        r = launch(err(WARNING) + "printf 'layer 1\\rlayer 2\\r' >&2; printf 'last' >&2; exit 70");
        assertEquals(new Result(70, "", "layer 1\rlayer 2\rlast"), r);

        r = launch(err(WARNING) + "echo ok");
        assertEquals(new Result(0, "ok\n", ""), r);
    }

    @Test
    void onlyTheJvmsOwnStartupLineIsDropped() throws Exception {
        // The JVM's notes and warnings before it stay; a second copy later is the program's own and stays too.
        Result r = launch(err("NOTE: Picked up JDK_JAVA_OPTIONS: -Xmx1g")
                + err(WARNING)
                + err("m2q: one line")
                + err(WARNING)
                + "exit 1");
        assertEquals(
                new Result(1, "", "NOTE: Picked up JDK_JAVA_OPTIONS: -Xmx1g\nm2q: one line\n" + WARNING + "\n"), r);

        // Without the warning first (a JVM that fails to start, say), nothing is dropped.
        r = launch(err("Error: Could not create the Java Virtual Machine.") + err(WARNING) + "exit 1");
        assertEquals(new Result(1, "", "Error: Could not create the Java Virtual Machine.\n" + WARNING + "\n"), r);

        r = launch("exit 3");
        assertEquals(new Result(3, "", ""), r);
    }

    /** The collector flag m2q_gc_flag prints with {@code M2Q_JAVA_OPTS} set to {@code opts}. */
    static String gcFlag(String opts) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(
                "bash", "-c", "set -euo pipefail; source \"$1\"; m2q_gc_flag", "launcher", SCRIPT.toString());
        pb.environment().put("M2Q_JAVA_OPTS", opts);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor());
        return out;
    }

    @Test
    void g1UnlessTheUserNamesACollector() throws Exception {
        assertEquals("-XX:+UseG1GC", gcFlag(""));
        assertEquals("-XX:+UseG1GC", gcFlag("-Xmx4g -Xlog:gc"));
        assertEquals("", gcFlag("-XX:+UseParallelGC"));
        assertEquals("", gcFlag("-Xmx13g -XX:+UseZGC -Xlog:gc"));
    }

    /**
     * The flag m2q_thp_flag prints with {@code M2Q_JAVA_OPTS} set to {@code opts} and the kernel's THP mode file
     * holding {@code mode} (null: no such file, as on a system without transparent huge pages).
     */
    static String thpFlag(String opts, String mode) throws IOException, InterruptedException {
        Path file = Files.createTempFile("thp-enabled", "");
        try {
            if (mode == null) {
                Files.delete(file);
            } else {
                Files.writeString(file, mode + "\n");
            }
            ProcessBuilder pb = new ProcessBuilder(
                    "bash",
                    "-c",
                    "set -euo pipefail; source \"$1\"; m2q_thp_flag \"$2\"",
                    "launcher",
                    SCRIPT.toString(),
                    file.toString());
            pb.environment().put("M2Q_JAVA_OPTS", opts);
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.waitFor());
            return out;
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    void hugePagesAskedForOnlyWhereTheKernelWaitsToBeAsked() throws Exception {
        assertEquals("-XX:+UseTransparentHugePages", thpFlag("", "always [madvise] never"));
        assertEquals("-XX:+UseTransparentHugePages", thpFlag("-Xmx13g", "always [madvise] never"));
        assertEquals("", thpFlag("", "[always] madvise never"), "the kernel already gives them");
        assertEquals("", thpFlag("", "always madvise [never]"), "the JVM would only warn");
        assertEquals("", thpFlag("", null), "no such file: not Linux, or no THP");
        assertEquals("", thpFlag("-XX:-UseTransparentHugePages", "always [madvise] never"), "the user's choice");
    }
}
