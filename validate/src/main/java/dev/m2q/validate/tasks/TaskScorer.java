package dev.m2q.validate.tasks;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Backend;
import dev.m2q.core.kernels.Backend.Buf;
import dev.m2q.core.kernels.PackedRows;
import dev.m2q.core.kernels.Parallel;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.model.Sampler;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Scores one model on one task, item by item.
 *
 * <p><b>Multiple choice</b>, as lm-evaluation-harness does: each choice's score is the log-likelihood of its
 * continuation tokens given the context. The continuation of choice {@code c} is {@code " " + c} (the harness's
 * target delimiter; left out when the context already ends in, or {@code c} starts with, whitespace). At the
 * boundary the harness's {@code _encode_pair} is followed exactly: whitespace at the end of the context is moved to
 * the start of the continuation; the context's tokens are {@code encode(context)}, and the continuation's are the
 * tokens of {@code encode(context + continuation)} after the first {@code encode(context).length} (so when BPE
 * merges across the boundary, the sequence scored is the context's own tokens followed by that tail). Under chat
 * rendering the context is the chat template's rendering of the prompt as the user's message with the assistant's
 * turn opened, and the continuation is the choice's text (no delimiter, nothing moved). Metrics: {@code acc} picks
 * the highest total log-likelihood, {@code acc_norm} the highest log-likelihood per character of the choice (code
 * points, Python's {@code len}, as the harness divides by), {@code acc_bytes} per UTF-8 byte of the choice; ties go
 * to the lowest index.
 *
 * <p>Speed: items are packed ({@link #packedLogLikelihoods}): each item's context once, followed by each choice's
 * continuation, several items to one forward of up to {@link Options#packRows()} rows, every row attending to its
 * item's context and its own continuation only ({@link PackedRows}), and lm_head run only on the rows whose
 * log-probabilities are needed. A continuation row sees the keys it sees from a KV cache after its context, in the
 * same order, so its log-likelihood is the per-item cached one ({@link #logLikelihoods}) bit for bit on the Java
 * backend. With {@code packRows} 0 items run one at a time instead: the context once into a {@link KvCache}, each
 * continuation from that cache, then rolled back. Log-softmax is taken in double.
 *
 * <p><b>Generative</b>: greedy decoding up to {@link Options#maxNewTokens()} tokens or an eos token; the answer is
 * extracted from the output ({@link #extract}), normalized ({@link #normalize}) and compared exactly. An item's
 * {@link ItemResult#chosen()} is then the index of the option the answer names (a letter A, B, … names a choice of an
 * item that has choices), {@code options.size()} for an answer that names none, and −1 when nothing was extracted.
 */
public final class TaskScorer {
    /** "answer is" followed by the answer, to the end of its line. */
    private static final Pattern ANSWER_IS = Pattern.compile("(?i)answer is\\s*:?\\s*([^\\n]+)");

    /** A letter standing alone at the start of an answer: "C", "(C)", "C.", "C) aspirin". */
    private static final Pattern LEADING_LETTER = Pattern.compile("^\\(?([A-Z])\\)?(?=[\\s.,:;)]|$)");

    /** The first standalone option letter A–E. */
    private static final Pattern OPTION_LETTER = Pattern.compile("\\b([A-E])\\b");

    /** Characters a normalized answer does not start or end with. */
    private static final String EDGE_PUNCTUATION = ".,;:!?\"'()[]`*";

    /**
     * How items are rendered and generated.
     *
     * @param chat the chat template to render prompts with, or null for plain text (generative items given as chat
     *     messages use plain ChatML when null)
     * @param maxNewTokens the most tokens a generative item may produce
     * @param eos token ids that end a generation (not part of the output)
     * @param extract a pattern whose first match in the output is the answer (its group 1 if it has one, else the
     *     whole match), or null for {@link #extract}'s default
     * @param packRows the most rows of one packed forward of multiple-choice items (an item with more runs alone),
     *     or 0 to score them one at a time from a KV cache
     */
    public record Options(ChatTemplate chat, int maxNewTokens, int[] eos, Pattern extract, int packRows) {
        /**
         * Rows per packed forward by default: a few items per forward (the fixture task's items take about 110 rows
         * each), so that a device runs one forward where the per-item path runs five of 20 rows, while a pack's
         * activations stay small. Measured on the 2-core CPU (vector kernels, the fixture task's first 100 items,
         * alternating runs): 256-row packs as fast as one item at a time, 512 and 2048 rows half as fast (the
         * forward's working set of [rows, intermediate] buffers then leaves the caches); on the CPU packing saves
         * no arithmetic, only weight traffic and launches.
         */
        public static final int PACK_ROWS = 256;

        /** Plain text, 32 new tokens, no eos, the default extraction, {@link #PACK_ROWS}. */
        public static final Options DEFAULT = new Options(null, 32, new int[0], null);

        public Options {
            if (maxNewTokens <= 0) {
                throw new IllegalArgumentException("maxNewTokens must be positive, got " + maxNewTokens);
            }
            if (packRows < 0) {
                throw new IllegalArgumentException(
                        "packRows must be 0 (one item at a time) or positive, got " + packRows);
            }
            eos = eos.clone();
        }

        /** Packed by {@link #PACK_ROWS}. */
        public Options(ChatTemplate chat, int maxNewTokens, int[] eos, Pattern extract) {
            this(chat, maxNewTokens, eos, extract, PACK_ROWS);
        }

        /** A copy of the eos ids. */
        @Override
        public int[] eos() {
            return eos.clone();
        }
    }

    private TaskScorer() {}

    /** {@link #run(Qwen2Model, Tokenizer, TaskFile, String, Options)} with {@link Options#DEFAULT}. */
    public static List<TaskRun> run(Qwen2Model model, Tokenizer tok, TaskFile task, String modelName) {
        return run(model, tok, task, modelName, Options.DEFAULT);
    }

    /**
     * Scores every item of {@code task}.
     *
     * @param modelName the name the runs carry ("reference", "candidate", "rtn")
     * @return the runs of acc, acc_norm and acc_bytes (multiple choice) or of exact_match (generative), each with
     *     the task's total wall time
     * @throws InputException naming the file and line of an item whose context tokenizes to nothing or whose choice
     *     adds no token
     */
    public static List<TaskRun> run(Qwen2Model model, Tokenizer tok, TaskFile task, String modelName, Options o) {
        long t0 = System.nanoTime();
        return task.generative()
                ? generate(model, tok, task, modelName, o, t0)
                : choose(model, tok, task, modelName, o, t0);
    }

    /** Items per second of a run. */
    public static double itemsPerSecond(TaskRun run) {
        return run.items().size() / run.seconds();
    }

    /**
     * An item's context and continuation tokens, split as lm-evaluation-harness splits them.
     *
     * @param context [contextLength] token ids, at least one
     * @param continuations per choice, at least one token each
     */
    record Encoded(int[] context, int[][] continuations) {}

    /** Tokenizes a multiple-choice item's context and choices (see the class comment for the boundary). */
    static Encoded encode(Tokenizer tok, TaskFile task, TaskItem.Choice item, ChatTemplate chat) {
        String context = item.context();
        List<String> continuations = new ArrayList<>();
        if (chat != null) {
            context = chat.render(List.of(new ChatTemplate.Message("user", context)), true);
            continuations.addAll(item.choices());
        } else {
            for (String c : item.choices()) {
                boolean space = context.isEmpty()
                        || Character.isWhitespace(context.charAt(context.length() - 1))
                        || Character.isWhitespace(c.charAt(0));
                continuations.add(space ? c : " " + c);
            }
            String stripped = context.stripTrailing();
            String moved = context.substring(stripped.length());
            continuations.replaceAll(c -> moved + c);
            context = stripped;
        }
        int[] ctx = tok.encode(context);
        if (ctx.length == 0) {
            throw new InputException(task.where() + ":" + item.line() + ": item " + item.id()
                    + ": the context tokenizes to nothing; a choice needs a context to be scored after");
        }
        int[][] conts = new int[continuations.size()][];
        for (int i = 0; i < conts.length; i++) {
            int[] whole = tok.encode(context + continuations.get(i));
            if (whole.length <= ctx.length) {
                throw new InputException(task.where() + ":" + item.line() + ": item " + item.id() + ": choice " + i
                        + " adds no token after the context");
            }
            conts[i] = Arrays.copyOfRange(whole, ctx.length, whole.length);
        }
        return new Encoded(ctx, conts);
    }

    /**
     * The log-likelihood of each continuation given the context: the context runs once into {@code cache} (cleared
     * first), each continuation from there, the cache rolled back to the context after each.
     *
     * @param cache a cache of capacity at least context length + the longest continuation
     */
    static double[] logLikelihoods(Qwen2Model model, KvCache cache, int[] context, int[][] continuations) {
        int vocab = model.config().vocabSize();
        cache.clear();
        float[] last = model.forward(context, cache, true);
        double[] out = new double[continuations.length];
        for (int i = 0; i < continuations.length; i++) {
            int[] c = continuations[i];
            double ll = logSoftmax(last, 0, vocab, c[0]);
            if (c.length > 1) {
                float[] rows = model.forward(Arrays.copyOf(c, c.length - 1), cache, false);
                for (int j = 1; j < c.length; j++) {
                    ll += logSoftmax(rows, (j - 1) * vocab, vocab, c[j]);
                }
                cache.truncate(context.length);
            }
            out[i] = ll;
        }
        return out;
    }

    /** The packed forward's rows, in the order {@link #packedLogLikelihoods} lays them out. */
    private static int rows(Encoded e) {
        int n = e.context().length;
        for (int[] c : e.continuations()) {
            n += c.length - 1;
        }
        return n;
    }

    /**
     * Most logits [rows, vocab] fp32 held on the host at once: lm_head runs on the needed rows in chunks of this
     * many values (128 MiB; a 152k vocabulary gives 220 rows per chunk).
     */
    private static final int LOGIT_CHUNK_VALUES = 1 << 25;

    /**
     * The log-likelihood of each continuation given its context, for several items in one packed forward: rows
     * [context of item 0, continuation 0 of item 0 but its last token, continuation 1 …, context of item 1, …], a
     * context causal within itself at positions 0.., a continuation at positions after its context seeing the
     * context and itself ({@link PackedRows.Builder#continuation}). A continuation's first token is scored from the
     * context's last row, token j from the continuation's row j − 1, summed in that order in double: what {@link
     * #logLikelihoods} adds, from rows that see the same keys in the same order.
     *
     * @return per item, per choice, the log-likelihood
     */
    static double[][] packedLogLikelihoods(Qwen2Model model, List<Encoded> items) {
        int vocab = model.config().vocabSize();
        PackedRows.Builder layout = PackedRows.builder();
        int total = 0;
        for (Encoded e : items) {
            total += rows(e);
        }
        int[] ids = new int[total];
        // targets: the row whose logits score each continuation token, in scoring order
        int targets = 0;
        for (Encoded e : items) {
            for (int[] c : e.continuations()) {
                targets += c.length;
            }
        }
        int[] targetRow = new int[targets];
        int[] targetToken = new int[targets];
        int t = 0;
        for (Encoded e : items) {
            int[] ctx = e.context();
            int ctxStart = layout.sequence(ctx.length, 0);
            System.arraycopy(ctx, 0, ids, ctxStart, ctx.length);
            int last = ctxStart + ctx.length - 1;
            for (int[] c : e.continuations()) {
                int start = layout.continuation(ctxStart, ctxStart + ctx.length, c.length - 1, ctx.length);
                System.arraycopy(c, 0, ids, start, c.length - 1);
                for (int j = 0; j < c.length; j++) {
                    targetRow[t] = j == 0 ? last : start + j - 1;
                    targetToken[t] = c[j];
                    t++;
                }
            }
        }
        // lm_head on each distinct target row once (a context's last row serves all its choices), in row order
        int[] distinct = Arrays.stream(targetRow).distinct().sorted().toArray();
        int[] slot = new int[total];
        for (int i = 0; i < distinct.length; i++) {
            slot[distinct[i]] = i;
        }
        double[] logProb = new double[targets];
        Backend backend = model.backend();
        int chunk = Math.max(1, LOGIT_CHUNK_VALUES / vocab);
        try (Buf hidden = model.hiddenPacked(ids, layout.build())) {
            for (int from = 0; from < distinct.length; from += chunk) {
                int to = Math.min(distinct.length, from + chunk);
                int lo = from;
                float[] logits = backend.take(model.logits(hidden, Arrays.copyOfRange(distinct, from, to)));
                // each target's own sum, so the threads do not change a bit
                Parallel.forRange(targets, 2L * vocab, (a, b) -> {
                    for (int k = a; k < b; k++) {
                        int at = slot[targetRow[k]];
                        if (at >= lo && at < to) {
                            logProb[k] = logSoftmax(logits, (at - lo) * vocab, vocab, targetToken[k]);
                        }
                    }
                });
            }
        }
        double[][] out = new double[items.size()][];
        t = 0;
        for (int i = 0; i < items.size(); i++) {
            int[][] conts = items.get(i).continuations();
            out[i] = new double[conts.length];
            for (int c = 0; c < conts.length; c++) {
                double ll = logProb[t++];
                for (int j = 1; j < conts[c].length; j++) {
                    ll += logProb[t++];
                }
                out[i][c] = ll;
            }
        }
        return out;
    }

    /** log softmax(row)[token] of the row {@code logits[from, from + vocab)}, in double. */
    static double logSoftmax(float[] logits, int from, int vocab, int token) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < vocab; v++) {
            max = Math.max(max, logits[from + v]);
        }
        double sum = 0;
        for (int v = 0; v < vocab; v++) {
            sum += Math.exp(logits[from + v] - max);
        }
        return logits[from + token] - max - Math.log(sum);
    }

    /** The index of the largest {@code ll[i] / divisor[i]}, the lowest on ties. */
    static int argmax(double[] ll, double[] divisor) {
        int best = 0;
        for (int i = 1; i < ll.length; i++) {
            if (ll[i] / divisor[i] > ll[best] / divisor[best]) {
                best = i;
            }
        }
        return best;
    }

    private static List<TaskRun> choose(
            Qwen2Model model, Tokenizer tok, TaskFile task, String modelName, Options o, long t0) {
        List<Encoded> encoded = new ArrayList<>();
        int capacity = 1;
        for (TaskItem it : task.items()) {
            Encoded e = encode(tok, task, (TaskItem.Choice) it, o.chat());
            encoded.add(e);
            for (int[] c : e.continuations()) {
                capacity = Math.max(capacity, e.context().length + c.length);
            }
        }
        double[][] lls = new double[encoded.size()][];
        if (o.packRows() == 0) {
            try (KvCache cache = model.newCache(capacity)) {
                for (int k = 0; k < encoded.size(); k++) {
                    lls[k] = logLikelihoods(
                            model,
                            cache,
                            encoded.get(k).context(),
                            encoded.get(k).continuations());
                }
            }
        } else {
            int k = 0;
            while (k < encoded.size()) {
                int end = k + 1;
                int rows = rows(encoded.get(k));
                while (end < encoded.size() && rows + rows(encoded.get(end)) <= o.packRows()) {
                    rows += rows(encoded.get(end));
                    end++;
                }
                double[][] pack = packedLogLikelihoods(model, encoded.subList(k, end));
                System.arraycopy(pack, 0, lls, k, pack.length);
                k = end;
            }
        }
        List<ItemResult> acc = new ArrayList<>();
        List<ItemResult> accNorm = new ArrayList<>();
        List<ItemResult> accBytes = new ArrayList<>();
        for (int k = 0; k < encoded.size(); k++) {
            TaskItem.Choice item = (TaskItem.Choice) task.items().get(k);
            double[] ll = lls[k];
            int n = item.choices().size();
            double[] one = new double[n];
            double[] chars = new double[n];
            double[] bytes = new double[n];
            for (int i = 0; i < n; i++) {
                String c = item.choices().get(i);
                one[i] = 1;
                chars[i] = c.codePointCount(0, c.length());
                bytes[i] = c.getBytes(StandardCharsets.UTF_8).length;
            }
            acc.add(result(item, argmax(ll, one)));
            accNorm.add(result(item, argmax(ll, chars)));
            accBytes.add(result(item, argmax(ll, bytes)));
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        return List.of(
                new TaskRun(task.name(), "acc", modelName, acc, seconds),
                new TaskRun(task.name(), "acc_norm", modelName, accNorm, seconds),
                new TaskRun(task.name(), "acc_bytes", modelName, accBytes, seconds));
    }

    private static ItemResult result(TaskItem.Choice item, int chosen) {
        return new ItemResult(item.id(), chosen, chosen == item.answer());
    }

    private static List<TaskRun> generate(
            Qwen2Model model, Tokenizer tok, TaskFile task, String modelName, Options o, long t0) {
        List<int[]> prompts = new ArrayList<>();
        int capacity = 1;
        for (TaskItem it : task.items()) {
            int[] p = tok.encode(promptText((TaskItem.Generation) it, o.chat()));
            if (p.length == 0) {
                throw new InputException(
                        task.where() + ":" + it.line() + ": item " + it.id() + ": the prompt tokenizes to nothing");
            }
            prompts.add(p);
            capacity = Math.max(capacity, p.length + o.maxNewTokens());
        }
        List<ItemResult> results = new ArrayList<>();
        try (KvCache cache = model.newCache(capacity)) {
            for (int k = 0; k < prompts.size(); k++) {
                TaskItem.Generation item = (TaskItem.Generation) task.items().get(k);
                String output = tok.decode(greedy(model, cache, prompts.get(k), o));
                int chosen = match(extract(output, o.extract()), item);
                results.add(new ItemResult(item.id(), chosen, chosen == item.answer()));
            }
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        return List.of(new TaskRun(task.name(), "exact_match", modelName, results, seconds));
    }

    private static String promptText(TaskItem.Generation item, ChatTemplate chat) {
        if (!item.messages().isEmpty()) {
            return Objects.requireNonNullElseGet(chat, ChatTemplate::chatMl).render(item.messages(), true);
        }
        if (chat != null) {
            return chat.render(List.of(new ChatTemplate.Message("user", item.prompt())), true);
        }
        return item.prompt();
    }

    /** Greedy tokens after {@code prompt}: up to {@code o.maxNewTokens()}, stopping before an eos token. */
    static int[] greedy(Qwen2Model model, KvCache cache, int[] prompt, Options o) {
        cache.clear();
        float[] logits = model.forward(prompt, cache, true);
        int[] eos = o.eos();
        int[] out = new int[o.maxNewTokens()];
        int n = 0;
        while (true) {
            int t = Sampler.argmax(logits);
            for (int e : eos) {
                if (t == e) {
                    return Arrays.copyOf(out, n);
                }
            }
            out[n++] = t;
            if (n == out.length) {
                return out;
            }
            logits = model.forward(new int[] {t}, cache, true);
        }
    }

    /**
     * The answer in a generated {@code output}, or null when there is none. With {@code pattern}: its first match
     * (group 1 when it has groups). By default: the text after the first "answer is" (case-insensitive, an optional
     * colon, to the end of its line; only its letter when it starts with a standalone capital letter, as in "(C)
     * aspirin"), else the first standalone option letter A–E.
     */
    public static String extract(String output, Pattern pattern) {
        if (pattern != null) {
            Matcher m = pattern.matcher(output);
            if (!m.find()) {
                return null;
            }
            return m.groupCount() >= 1 ? m.group(1) : m.group();
        }
        Matcher m = ANSWER_IS.matcher(output);
        if (m.find()) {
            String after = m.group(1).strip();
            Matcher letter = LEADING_LETTER.matcher(after);
            return letter.find() ? letter.group(1) : after;
        }
        m = OPTION_LETTER.matcher(output);
        return m.find() ? m.group(1) : null;
    }

    /**
     * {@code s} trimmed, lower-cased, with runs of whitespace made one space and punctuation
     * ({@code . , ; : ! ? " ' ( ) [ ] ` *}) stripped from both ends.
     */
    public static String normalize(String s) {
        String t = s.strip().toLowerCase(Locale.ROOT).replaceAll("\\s+", " ");
        int a = 0;
        int b = t.length();
        while (a < b && (EDGE_PUNCTUATION.indexOf(t.charAt(a)) >= 0 || t.charAt(a) == ' ')) {
            a++;
        }
        while (b > a && (EDGE_PUNCTUATION.indexOf(t.charAt(b - 1)) >= 0 || t.charAt(b - 1) == ' ')) {
            b--;
        }
        return t.substring(a, b);
    }

    /**
     * The option an extracted answer names: a letter of an item with choices, else the option equal to it after
     * normalization; {@code options.size()} for an answer that names none; −1 for no answer.
     */
    static int match(String answer, TaskItem.Generation item) {
        if (answer == null || normalize(answer).isEmpty()) {
            return -1;
        }
        String a = normalize(answer);
        if (item.lettered() && a.length() == 1 && a.charAt(0) >= 'a' && a.charAt(0) <= 'z') {
            int idx = a.charAt(0) - 'a';
            return idx < item.options().size() ? idx : item.options().size();
        }
        for (int i = 0; i < item.options().size(); i++) {
            if (normalize(item.options().get(i)).equals(a)) {
                return i;
            }
        }
        return item.options().size();
    }
}
