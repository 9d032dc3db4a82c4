package dev.m2q.cli;

import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.eagle.data.DataFile;
import dev.m2q.eagle.data.DataGeneration;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code m2q eagle data}: the target answers the prompts; ids and loss masks into a JSONL data file. */
@Command(
        name = "data",
        mixinStandardHelpOptions = true,
        description = "Render each prompt through the target's chat template, let the target answer (greedy at"
                + " temperature 0, else seeded sampling; stops at its eos or after --max-new-tokens) and write the"
                + " token ids with a loss mask on the answer (JSONL with a header line).")
final class EagleDataCommand implements Callable<Integer> {
    @Option(names = "--target", required = true, paramLabel = "DIR", description = "The target model folder.")
    Path target;

    @Option(
            names = "--prompts",
            required = true,
            paramLabel = "FILE",
            description = "Prompts: one per line, or .jsonl with {\"messages\": [...]} or {\"prompt\": ...} per line;"
                    + " plain, gzip, xz, bzip2 or zstd, or a tar of such files.")
    Path prompts;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "The data file to write (JSONL).")
    Path out;

    @Option(
            names = "--max-new-tokens",
            defaultValue = "128",
            paramLabel = "N",
            description = "Longest answer. Default ${DEFAULT-VALUE}.")
    int maxNewTokens;

    @Option(
            names = "--temperature",
            defaultValue = "0",
            paramLabel = "T",
            description = "0: greedy; else sample from softmax(logits/T). Default ${DEFAULT-VALUE}.")
    double temperature;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "N", description = "Sampling seed. Default 0.")
    long seed;

    @Option(names = "--overwrite", description = "Replace an existing --out (only once the new file is complete).")
    boolean overwrite;

    @Mixin
    KernelOptions kernels;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        EagleCommand.dir(target, "--target");
        EagleCommand.file(prompts, "--prompts");
        DataGeneration job = new DataGeneration(target, prompts, out, maxNewTokens, temperature, seed, overwrite);
        job.checkOutput();
        var err = spec.commandLine().getErr();
        ProgressListener log = ReleaseProgress.forStage(() -> ProgressListener.lines(line -> {
            err.println(line);
            err.flush();
        }));
        DataFile d = job.run(kernels.get(), log);
        var o = spec.commandLine().getOut();
        o.println("wrote " + out + ": " + d.sequences().size() + " sequences, "
                + d.sequences().stream()
                        .mapToInt(DataFile.Sequence::assistantTokens)
                        .sum() + " response tokens");
        o.flush();
        return Main.EXIT_OK;
    }
}
