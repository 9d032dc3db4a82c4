package dev.m2q.cli;

import dev.m2q.core.InputException;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Entry point: exit 0 on success, 1 when a check or gate fails, 2 on bad input (one-line reason on stderr), 70 on
 * an internal error.
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
            EagleCommand.class
        })
public final class Main {
    public static final int EXIT_OK = 0;
    /** A check or quality gate found problems (the report says which). */
    public static final int EXIT_CHECK_FAILED = 1;

    public static final int EXIT_BAD_INPUT = 2;
    public static final int EXIT_INTERNAL = 70;

    public static void main(String[] args) {
        System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    /** Runs the command line with the given streams; returns the exit code (tests call this). */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("m2q: " + ex.getMessage());
            CommandLine.UnmatchedArgumentException.printSuggestions(ex, err);
            err.println("Run '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help' for usage.");
            return EXIT_BAD_INPUT;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof InputException) {
                err.println("m2q: " + ex.getMessage());
                return EXIT_BAD_INPUT;
            }
            err.println("m2q: internal error: " + ex);
            ex.printStackTrace(err);
            return EXIT_INTERNAL;
        });
        return cl.execute(args);
    }
}
