package dev.m2q.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Entry point: exit 0 on success, 1 when a check or gate fails, 2 on bad input or an I/O failure (one-line reason
 * on stderr), 70 on an internal error or an Error such as OutOfMemoryError (one line saying what to try; the stack
 * trace goes to a crash file). {@link Failures} maps every failure that escapes a command.
 */
@Command(
        name = "m2q",
        mixinStandardHelpOptions = true,
        versionProvider = Version.class,
        description = "BF16 Qwen2-family checkpoints to W4 releases that engines load.",
        subcommands = {
            QuantizeCommand.class,
            InspectCommand.class,
            TokenizeCommand.class,
            ValidateCommand.class,
            BenchCommand.class,
            EagleCommand.class,
            ReleaseCommand.class
        })
public final class Main {
    public static final int EXIT_OK = 0;
    /** A check or quality gate found problems (the report says which). */
    public static final int EXIT_CHECK_FAILED = 1;

    /** Bad input, or an I/O failure such as a read-only or full disk. */
    public static final int EXIT_BAD_INPUT = 2;

    /** A bug or an exhausted resource (out of memory): the line says what to try. */
    public static final int EXIT_INTERNAL = 70;

    public static void main(String[] args) {
        PrintWriter err = new PrintWriter(System.err, true);
        // A failure in a thread nobody joins would otherwise print the JVM's stack trace and leave the command
        // running or exiting 1: it ends the run the same way as a failure of the command itself.
        Thread.setDefaultUncaughtExceptionHandler((thread, e) -> {
            int code = Failures.report(e, err, crashDir(), List.of(args));
            System.exit(code);
        });
        System.exit(run(new PrintWriter(System.out, true), err, args));
    }

    /** Runs the command line with the given streams; returns the exit code (tests call this). */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        try {
            CommandLine cl = new CommandLine(new Main());
            cl.setOut(out);
            cl.setErr(err);
            cl.setParameterExceptionHandler((ex, a) -> {
                err.println("m2q: " + ex.getMessage());
                CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
                err.println("Run '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help' for usage.");
                return EXIT_BAD_INPUT;
            });
            cl.setExecutionExceptionHandler((ex, cmd, parsed) -> Failures.report(ex, err, crashDir(), List.of(args)));
            return cl.execute(args);
        } catch (Throwable e) { // picocli hands only Exceptions to the handler: an Error arrives here
            return Failures.report(e, err, crashDir(), List.of(args));
        }
    }

    /** Where an internal error's stack trace is written: the JVM's temporary directory. */
    private static Path crashDir() {
        return Path.of(System.getProperty("java.io.tmpdir"));
    }
}
