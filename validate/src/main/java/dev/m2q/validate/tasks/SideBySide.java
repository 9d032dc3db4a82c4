package dev.m2q.validate.tasks;

import dev.m2q.core.io.AtomicFile;
import dev.m2q.core.json.Json;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.PromptFile;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

/**
 * {@code m2q validate --generate PROMPTS --out FILE}: both models' greedy answers to the same prompts, side by side,
 * one JSON object per line ({@code id}, {@code prompt}, {@code reference}, {@code candidate}), for grading outside
 * m2q (rubric-graded benchmarks need a grader model). Prompts are a PromptFile (plain lines or JSON lines with
 * {@code text} or chat {@code messages}), rendered through the reference's chat template when it has one; decoding
 * stops before an eos id or after {@code maxNewTokens}. The file is written whole, atomically.
 */
public final class SideBySide {
    private SideBySide() {}

    /**
     * One line of the output: the prompt's conversation and both models' greedy answers.
     *
     * @param id the prompt's 1-based position in the prompt file
     */
    public record Line(int id, List<Turn> prompt, String reference, String candidate) {
        public Line {
            prompt = List.copyOf(prompt);
        }
    }

    /** One message of a prompt. */
    public record Turn(String role, String content) {}

    /**
     * Generates and writes {@code out}; returns the number of prompts answered.
     *
     * @param eos the ids that end an answer (generation_config's eos_token_id)
     */
    public static int run(
            Qwen2Model reference,
            Qwen2Model candidate,
            Path referenceDir,
            Path prompts,
            int maxNewTokens,
            int[] eos,
            Path out,
            Consumer<String> log) {
        Tokenizer tok = Tokenizer.load(referenceDir.resolve("tokenizer.json"));
        ChatTemplate chat = ChatTemplate.load(referenceDir);
        List<List<ChatTemplate.Message>> conversations = PromptFile.read(prompts);
        List<int[]> ids = PromptFile.encode(prompts, tok, chat);
        TaskScorer.Options o = new TaskScorer.Options(null, maxNewTokens, eos, null);
        int capacity = maxNewTokens + ids.stream().mapToInt(a -> a.length).max().orElse(1);
        StringBuilder lines = new StringBuilder();
        try (KvCache rc = reference.newCache(capacity);
                KvCache cc = candidate.newCache(capacity)) {
            for (int i = 0; i < ids.size(); i++) {
                List<Turn> prompt = conversations.get(i).stream()
                        .map(m -> new Turn(m.role(), m.content()))
                        .toList();
                Line line = new Line(
                        i + 1,
                        prompt,
                        tok.decode(TaskScorer.greedy(reference, rc, ids.get(i), o)),
                        tok.decode(TaskScorer.greedy(candidate, cc, ids.get(i), o)));
                lines.append(Json.write(line)).append('\n');
                ProgressListener.units(
                        log, "prompt", i + 1, ids.size(), "generate: prompt " + (i + 1) + " of " + ids.size());
            }
        }
        AtomicFile.writeText(out, lines.toString());
        return ids.size();
    }
}
