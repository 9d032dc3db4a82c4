package dev.m2q.cli;

import dev.m2q.core.InputException;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --model DIR}: a Hugging Face model directory (config.json + safetensors + tokenizer.json). */
final class ModelOptions {
    @Option(
            names = "--model",
            required = true,
            paramLabel = "DIR",
            description = "Hugging Face model directory (config.json, *.safetensors, tokenizer.json).")
    Path model;

    Path dir() {
        return check(model);
    }

    /** {@code dir} when it is a directory; otherwise an InputException that names the option. */
    static Path check(Path model) {
        if (!Files.isDirectory(model)) {
            throw new InputException(model + ": not a directory (--model takes a Hugging Face model directory)");
        }
        return model;
    }
}
