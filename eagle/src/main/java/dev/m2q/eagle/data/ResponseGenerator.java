package dev.m2q.eagle.data;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;

/**
 * The target answers its own prompts (ALGORITHMS §5's data): decoding with the KV cache, greedy at temperature 0
 * (ties to the lower id), else sampling from softmax(logits / T) ({@link Sampler}) with one seeded {@link Random} consumed in prompt
 * order; a response ends at a stop id (generated and kept) or after {@code maxNewTokens}.
 */
public final class ResponseGenerator {
    private final Qwen2Model model;
    private final int[] stopIds;
    private final int maxNewTokens;
    private final double temperature;
    private final Random rng;

    public ResponseGenerator(Qwen2Model model, int[] stopIds, int maxNewTokens, double temperature, long seed) {
        if (maxNewTokens < 1) {
            throw new InputException("--max-new-tokens must be at least 1, got " + maxNewTokens);
        }
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new InputException("--temperature must be a finite number ≥ 0, got " + temperature);
        }
        this.model = model;
        this.stopIds = stopIds.clone();
        this.maxNewTokens = maxNewTokens;
        this.temperature = temperature;
        this.rng = new Random(seed);
    }

    /**
     * The prompt followed by the target's response; the loss mask is true on the response's tokens. {@code where}
     * names the prompt in errors.
     */
    public DataFile.Sequence answer(int[] prompt, String where) {
        int positions = model.config().maxPositionEmbeddings();
        if (prompt.length + maxNewTokens > positions) {
            throw new InputException(where + ": the prompt's " + prompt.length + " tokens plus --max-new-tokens "
                    + maxNewTokens + " exceed the target's " + positions + " positions");
        }
        int[] ids = new int[prompt.length + maxNewTokens];
        System.arraycopy(prompt, 0, ids, 0, prompt.length);
        int n = prompt.length;
        try (KvCache cache = model.newCache(ids.length)) {
            float[] logits = model.forward(prompt, cache, true);
            while (true) {
                int next = Sampler.choose(logits, temperature, rng);
                ids[n++] = next;
                if (isStop(next) || n - prompt.length == maxNewTokens) {
                    break;
                }
                logits = model.forward(new int[] {next}, cache, true);
            }
        }
        boolean[] mask = new boolean[n];
        for (int t = prompt.length; t < n; t++) {
            mask[t] = true;
        }
        return new DataFile.Sequence(java.util.Arrays.copyOf(ids, n), mask);
    }

    private boolean isStop(int id) {
        for (int s : stopIds) {
            if (s == id) {
                return true;
            }
        }
        return false;
    }

    /**
     * The ids that end a response: {@code eos_token_id} of config.json and of generation_config.json (a number or a
     * list), and ChatML's {@code <|im_end|>} when the tokenizer has it (the turn's end in the chat template).
     */
    public static int[] stopIds(Path targetDir, Tokenizer tok) {
        TreeSet<Integer> ids = new TreeSet<>();
        for (String f : List.of("config.json", "generation_config.json")) {
            Path file = targetDir.resolve(f);
            if (!Files.isRegularFile(file)) {
                continue;
            }
            try {
                Object eos = Json.parseObject(Files.readString(file, StandardCharsets.UTF_8))
                        .get("eos_token_id");
                if (eos instanceof Number n) {
                    ids.add(n.intValue());
                } else if (eos instanceof List<?> l) {
                    for (Object o : l) {
                        if (o instanceof Number n) {
                            ids.add(n.intValue());
                        }
                    }
                }
            } catch (IOException e) {
                throw new InputException(file + ": cannot read: " + e.getMessage(), e);
            } catch (JsonException e) {
                throw new InputException(file + ": malformed JSON: " + e.getMessage(), e);
            }
        }
        tok.tokenId("<|im_end|>").ifPresent(ids::add);
        if (ids.isEmpty()) {
            throw new InputException(targetDir + ": no eos_token_id in config.json or generation_config.json and no"
                    + " <|im_end|> token: responses would have no end");
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }
}
