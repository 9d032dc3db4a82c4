package dev.m2q.cli;

import dev.m2q.core.InputException;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Command;

/** {@code m2q eagle data|train|attach}: an EAGLE-3 draft head for a target, from data to the release. */
@Command(
        name = "eagle",
        mixinStandardHelpOptions = true,
        description = "EAGLE-3 draft heads: generate training data with the target, train a head, attach it to a"
                + " release.",
        subcommands = {EagleDataCommand.class, EagleTrainCommand.class, EagleAttachCommand.class})
final class EagleCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    /** {@code dir} when it is a folder, else exit 2 naming {@code option}. */
    static Path dir(Path dir, String option) {
        if (!Files.isDirectory(dir)) {
            throw new InputException(dir + ": not a directory (" + option + " takes a folder)");
        }
        return dir;
    }

    /** {@code file} when it is a regular file, else exit 2 naming {@code option}. */
    static Path file(Path file, String option) {
        if (!Files.isRegularFile(file)) {
            throw new InputException(file + ": no such file (" + option + ")");
        }
        return file;
    }

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(
                spec.commandLine(), "m2q eagle needs a subcommand: data, train or attach");
    }
}
