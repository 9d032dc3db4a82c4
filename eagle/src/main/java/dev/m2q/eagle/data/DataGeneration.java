package dev.m2q.eagle.data;

import dev.m2q.core.InputException;
import dev.m2q.core.io.ModelHashes;
import dev.m2q.core.io.PathGuard;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.io.StagedDir;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.PromptFile;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * {@code m2q eagle data}: renders each prompt through the target's chat template with an open assistant turn, lets
 * the target answer ({@link ResponseGenerator}) and writes the {@link DataFile}.
 *
 * @param target the target model folder (BF16 or a quantized release)
 * @param prompts a {@link PromptFile}
 * @param out the data file to write
 */
public record DataGeneration(
        Path target, Path prompts, Path out, int maxNewTokens, double temperature, long seed, boolean overwrite) {

    /** The unit of progress: an answered prompt. */
    public static final String PHASE = "prompt";

    /**
     * Refuses, before any work: an output that is, contains or lies inside --target or --prompts ({@link PathGuard}),
     * an existing output unless {@code overwrite}, and a folder as the output.
     */
    public void checkOutput() {
        List<PathGuard.Named> inputs = new ArrayList<>(PathGuard.of("--target", target));
        inputs.addAll(PathGuard.of("--prompts", prompts));
        PathGuard.check(PathGuard.staged("--out", out), inputs);
        StagedDir.check(out, overwrite, false, null);
        if (Files.isDirectory(out)) {
            throw new InputException(out + ": is a folder; --out names the data file to write");
        }
    }

    /**
     * Generates every response and writes the file, built in {@code OUT.m2q-partial/} and moved over {@code out} only
     * when complete ({@link StagedDir}: a failure leaves the previous file as it was and nothing else behind);
     * {@code log} receives one line per progress report (every 16 prompts and the last), and when it is a
     * {@link ProgressListener} every answered prompt as a {@link #PHASE} unit.
     */
    public DataFile run(Kernels kernels, Consumer<String> log) {
        checkOutput();
        Tokenizer tok = Tokenizer.load(target.resolve("tokenizer.json"));
        ChatTemplate chat = ChatTemplate.load(target);
        var conversations = PromptFile.read(prompts);
        int[] stops = ResponseGenerator.stopIds(target, tok);
        List<DataFile.Sequence> seqs = new ArrayList<>();
        StagedDir staged = StagedDir.openFile(out, overwrite);
        try (Qwen2Model model = Qwen2Model.load(target, kernels)) {
            ResponseGenerator gen = new ResponseGenerator(model, stops, maxNewTokens, temperature, seed);
            long tokens = 0;
            for (int i = 0; i < conversations.size(); i++) {
                int[] prompt = tok.encode(chat.render(conversations.get(i), true));
                DataFile.Sequence s = gen.answer(prompt, prompts + " prompt " + (i + 1));
                seqs.add(s);
                tokens += s.assistantTokens();
                boolean line = (i + 1) % 16 == 0 || i + 1 == conversations.size();
                ProgressListener.units(
                        log,
                        PHASE,
                        i + 1,
                        conversations.size(),
                        line
                                ? "eagle data: " + (i + 1) + "/" + conversations.size() + " prompts answered, " + tokens
                                        + " response tokens"
                                : null);
            }
            DataFile.Header header = DataFile.Header.generated(
                    target.toAbsolutePath().normalize().toString(),
                    ModelHashes.of(target),
                    model.config().vocabSize(),
                    prompts.toAbsolutePath().normalize().toString(),
                    Sha256.ofFile(prompts),
                    temperature,
                    seed,
                    maxNewTokens,
                    stops,
                    seqs.size());
            DataFile data = new DataFile(header, seqs);
            data.write(staged.path());
            staged.commit();
            return data;
        } catch (RuntimeException | Error e) {
            staged.discard();
            throw e;
        }
    }
}
