package dev.m2q.cli;

import dev.m2q.core.json.Json;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code m2q tokenize --model DIR --text FILE}: the token ids of a text file as a JSON array. */
@Command(
        name = "tokenize",
        mixinStandardHelpOptions = true,
        description = "Print the token ids of a UTF-8 text file as a JSON array (the model's tokenizer.json).")
final class TokenizeCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Option(names = "--text", required = true, paramLabel = "FILE", description = "UTF-8 text file.")
    Path text;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        Tokenizer tok = Tokenizer.load(model.dir().resolve("tokenizer.json"));
        int[] ids = tok.encode(TextFiles.readUtf8(text, "--text"));
        var out = spec.commandLine().getOut();
        out.println(Json.write(ids));
        out.flush();
        return Main.EXIT_OK;
    }
}
