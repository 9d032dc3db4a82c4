package dev.m2q.validate.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.Tokenizer;
import dev.m2q.validate.Decode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Task scoring on the tiny fixture against log-likelihoods computed by hand from a plain full forward. */
class TaskScorerTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");
    static final Path FILE = Path.of("hand.jsonl");

    static Qwen2Model model;
    static Tokenizer tok;

    @BeforeAll
    static void load() {
        model = Qwen2Model.load(FIXTURE, Kernels.byName("vector"));
        tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /**
     * The log-likelihood of {@code continuation} after {@code context} the long way: the lm-evaluation-harness split
     * (the context's tokens, then the tokens of context + continuation past them), one forward of the whole
     * sequence from position 0 without a cache, and log-softmax written out: logit − max − log Σ exp(logit − max)
     * in double.
     */
    static double byHand(String context, String continuation) {
        int[] ctx = tok.encode(context);
        int[] whole = tok.encode(context + continuation);
        int[] cont = Arrays.copyOfRange(whole, ctx.length, whole.length);
        int[] seq = new int[ctx.length + cont.length];
        System.arraycopy(ctx, 0, seq, 0, ctx.length);
        System.arraycopy(cont, 0, seq, ctx.length, cont.length);
        float[] logits = model.forward(seq);
        int vocab = model.config().vocabSize();
        assertEquals(seq.length * vocab, logits.length);
        double ll = 0;
        for (int j = 0; j < cont.length; j++) {
            int row = (ctx.length - 1 + j) * vocab;
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < vocab; v++) {
                max = Math.max(max, logits[row + v]);
            }
            double sum = 0;
            for (int v = 0; v < vocab; v++) {
                sum += Math.exp(logits[row + v] - max);
            }
            ll += logits[row + cont[j]] - max - Math.log(sum);
        }
        return ll;
    }

    static final String CONTEXT = "And the name of the man was Elimelech, and the name of his wife";
    static final List<String> CHOICES = List.of(
            "Naomi, and the name of his two sons Mahlon and Chilion, Ephrathites of Bethlehemjudah.", "Ruth", "Orpah");

    static double[] cached(TaskItem.Choice item, ChatTemplate chat) {
        TaskScorer.Encoded e = TaskScorer.encode(tok, task(item), item, chat);
        try (KvCache cache = model.newCache(256)) {
            return TaskScorer.logLikelihoods(model, cache, e.context(), e.continuations());
        }
    }

    static TaskFile task(TaskItem... items) {
        return new TaskFile("hand", FILE, List.of(items));
    }

    /**
     * Cached scoring against the uncached forward, bit for bit: a continuation row computed from the cache sees the
     * same keys and values (the same floats, from the same kernels) as the full forward's row at that position, and
     * the double log-softmax is the same sum in the same order, so there is nothing for a tolerance to absorb
     * (measured: the differences are exactly 0 on the fixture).
     */
    @Test
    void logLikelihoodsMatchAPlainForward() {
        TaskItem.Choice item = new TaskItem.Choice("x", 1, CONTEXT, CHOICES, 0);
        double[] ll = cached(item, null);
        for (int i = 0; i < CHOICES.size(); i++) {
            double expected = byHand(CONTEXT, " " + CHOICES.get(i));
            assertEquals(expected, ll[i], 0.0, "choice " + i);
            assertTrue(ll[i] < 0 && Double.isFinite(ll[i]), "choice " + i + ": " + ll[i]);
        }
        // the same item twice in one cache: rolling back leaves nothing behind
        assertArrayEquals(ll, cached(item, null));
    }

    /** lm-evaluation-harness's boundary: trailing whitespace of the context moves to the continuation. */
    @Test
    void trailingWhitespaceMovesToTheContinuation() {
        TaskItem.Choice item = new TaskItem.Choice("x", 1, CONTEXT + " ", List.of("Naomi", " Ruth"), 0);
        TaskScorer.Encoded e = TaskScorer.encode(tok, task(item), item, null);
        assertArrayEquals(tok.encode(CONTEXT), e.context());
        int[] whole = tok.encode(CONTEXT + " Naomi");
        assertArrayEquals(Arrays.copyOfRange(whole, e.context().length, whole.length), e.continuations()[0]);
        // a choice that starts with a space gets no second one
        int[] whole2 = tok.encode(CONTEXT + "  Ruth");
        assertArrayEquals(Arrays.copyOfRange(whole2, e.context().length, whole2.length), e.continuations()[1]);
        double[] ll = cached(item, null);
        assertEquals(byHand(CONTEXT, " Naomi"), ll[0], 0.0);
        assertEquals(byHand(CONTEXT, "  Ruth"), ll[1], 0.0);
    }

    /** Under a chat template, the context is the rendered user turn and the choices are the assistant's answer. */
    @Test
    void chatRendering() {
        ChatTemplate chat = ChatTemplate.load(FIXTURE);
        TaskItem.Choice item = new TaskItem.Choice("x", 1, CONTEXT, CHOICES, 0);
        String rendered = chat.render(List.of(new ChatTemplate.Message("user", CONTEXT)), true);
        assertTrue(rendered.endsWith("<|im_start|>assistant\n"), rendered);
        double[] ll = cached(item, chat);
        for (int i = 0; i < CHOICES.size(); i++) {
            assertEquals(byHand(rendered, CHOICES.get(i)), ll[i], 0.0, "choice " + i);
        }
    }

    /**
     * A long true continuation against short wrong names: the long one has the lowest total log-likelihood (many
     * tokens) but the highest per character, so acc and acc_norm choose differently; each metric's choice is checked
     * against the hand-computed log-likelihoods.
     */
    @Test
    void accAndAccNormDisagreeOnChoicesOfDifferentLengths() {
        TaskItem.Choice item = new TaskItem.Choice("x", 1, CONTEXT, CHOICES, 0);
        double[] hand = new double[CHOICES.size()];
        int byTotal = 0;
        int byChar = 0;
        for (int i = 0; i < hand.length; i++) {
            hand[i] = byHand(CONTEXT, " " + CHOICES.get(i));
            if (hand[i] > hand[byTotal]) {
                byTotal = i;
            }
            if (hand[i] / CHOICES.get(i).length()
                    > hand[byChar] / CHOICES.get(byChar).length()) {
                byChar = i;
            }
        }
        assertEquals(0, byChar, "per character the true ending wins: " + Arrays.toString(hand));
        assertNotEquals(0, byTotal, "in total a short name wins: " + Arrays.toString(hand));

        List<TaskRun> runs = TaskScorer.run(model, tok, task(item), "reference");
        assertEquals(
                List.of("acc", "acc_norm", "acc_bytes"),
                runs.stream().map(TaskRun::metric).toList());
        runs.forEach(r -> assertEquals("reference", r.model()));
        assertEquals(byTotal, runs.get(0).items().getFirst().chosen());
        assertEquals(0, runs.get(1).items().getFirst().chosen());
        assertTrue(runs.get(1).items().getFirst().correct());
        assertEquals(0.0, runs.get(0).accuracy());
        assertEquals(1.0, runs.get(1).accuracy());
        assertEquals(0, runs.get(2).items().getFirst().chosen(), "ASCII choices: bytes = characters");
        assertTrue(TaskScorer.itemsPerSecond(runs.getFirst()) > 0);
    }

    /** acc_norm divides by characters (code points), acc_bytes by UTF-8 bytes: they differ on Chinese text. */
    @Test
    void charactersAndBytesDifferOnChineseText() {
        // 中文 is 2 characters and 6 bytes; ab is 2 and 2
        double[] ll = {-3.0, -2.0};
        double[] chars = {2, 2};
        double[] bytes = {6, 2};
        assertEquals(1, TaskScorer.argmax(ll, chars));
        assertEquals(0, TaskScorer.argmax(ll, bytes), "-3/6 = -0.5 > -2/2 = -1");
        assertEquals(0, TaskScorer.argmax(new double[] {-1, -1, -1}, new double[] {1, 1, 1}), "ties: lowest index");
        assertEquals(1, TaskScorer.argmax(new double[] {-2, -1, -1}, new double[] {1, 1, 1}), "ties: lowest index");
    }

    /** A whole task scored item by item equals the per-item hand computation; items are independent of order. */
    @Test
    void taskOfSeveralItemsMatchesItemByItem() {
        List<TaskItem> items = new ArrayList<>();
        String[] contexts = {"Now it came to pass in the days when the judges", "And Elimelech Naomi's husband", CONTEXT
        };
        List<List<String>> choices =
                List.of(List.of("ruled", "died", "wept"), List.of("wept", "died;"), List.of("Orpah", "Naomi", "Ruth"));
        for (int k = 0; k < contexts.length; k++) {
            items.add(new TaskItem.Choice("i" + k, k + 1, contexts[k], choices.get(k), 0));
        }
        TaskFile t = new TaskFile("verses", FILE, items);
        List<TaskRun> runs = TaskScorer.run(model, tok, t, "candidate");
        for (int k = 0; k < contexts.length; k++) {
            double[] hand = new double[choices.get(k).size()];
            int best = 0;
            for (int i = 0; i < hand.length; i++) {
                hand[i] = byHand(contexts[k], " " + choices.get(k).get(i));
                best = hand[i] > hand[best] ? i : best;
            }
            ItemResult r = runs.getFirst().items().get(k);
            assertEquals("i" + k, r.id());
            assertEquals(best, r.chosen(), "item " + k + ": " + Arrays.toString(hand));
            assertEquals(best == 0, r.correct());
        }
        List<TaskRun> reversed =
                TaskScorer.run(model, tok, new TaskFile("verses", FILE, items.reversed()), "candidate");
        for (int k = 0; k < contexts.length; k++) {
            assertEquals(
                    runs.getFirst().items().get(k), reversed.getFirst().items().get(contexts.length - 1 - k));
        }
    }

    @Test
    void emptyContextIsAnInputError() {
        TaskItem.Choice item = new TaskItem.Choice("e", 7, "   ", List.of("a", "b"), 0);
        InputException e =
                assertThrows(InputException.class, () -> TaskScorer.run(model, tok, task(item), "reference"));
        assertTrue(e.getMessage().startsWith(FILE + ":7: item e"), e.getMessage());
    }

    /**
     * Generation: the reference of item g0 is the first word of the model's own greedy output (from
     * {@link Decode#generate}, an independent decoding loop), so it is matched; g1's reference is a word the output
     * does not start with; g2 runs under a pattern that cannot match, so nothing is extracted.
     */
    @Test
    void generativeExactMatch() {
        String prompt = "And Naomi said unto her two daughters in law,";
        int tokens = 12;
        String output = tok.decode(Decode.generate(model, tok.encode(prompt), tokens));
        String first = output.strip().split("\\s+")[0];
        TaskItem.Generation hit = new TaskItem.Generation("g0", 1, prompt, List.of(), List.of(first + "."), 0, false);
        TaskItem.Generation miss =
                new TaskItem.Generation("g1", 2, prompt, List.of(), List.of("Zzyzx" + first), 0, false);
        TaskScorer.Options o = new TaskScorer.Options(null, tokens, new int[0], Pattern.compile("^\\s*(\\S+)"));
        List<TaskRun> runs = TaskScorer.run(model, tok, new TaskFile("gen", FILE, List.of(hit, miss)), "reference", o);
        assertEquals(1, runs.size());
        assertEquals("exact_match", runs.getFirst().metric());
        assertEquals(new ItemResult("g0", 0, true), runs.getFirst().items().get(0));
        assertEquals(new ItemResult("g1", 1, false), runs.getFirst().items().get(1), "an answer naming no option");

        TaskScorer.Options never = new TaskScorer.Options(null, tokens, new int[0], Pattern.compile("#{3}(\\d+)"));
        List<TaskRun> none = TaskScorer.run(model, tok, new TaskFile("gen", FILE, List.of(hit)), "reference", never);
        assertEquals(new ItemResult("g0", -1, false), none.getFirst().items().getFirst());
    }

    /** An eos token ends the output before it: with the greedy first token as eos, the output is empty. */
    @Test
    void generationStopsAtEos() {
        String prompt = "And Naomi said unto her two daughters in law,";
        int firstToken = Decode.generate(model, tok.encode(prompt), 1)[0];
        TaskItem.Generation item = new TaskItem.Generation("g", 1, prompt, List.of(), List.of("x"), 0, false);
        TaskScorer.Options o = new TaskScorer.Options(null, 8, new int[] {firstToken}, Pattern.compile("(?s)(.*)"));
        List<TaskRun> runs = TaskScorer.run(model, tok, new TaskFile("gen", FILE, List.of(item)), "reference", o);
        assertEquals(-1, runs.getFirst().items().getFirst().chosen(), "an empty output has no answer");
    }

    @Test
    void defaultExtractionAndNormalization() {
        assertEquals("C", TaskScorer.extract("Let me think. The answer is (C) aspirin.", null));
        assertEquals("aspirin.", TaskScorer.extract("I believe the answer is: aspirin.\nMore text", null));
        assertEquals("B", TaskScorer.extract("Option B is correct, not C.", null));
        assertEquals("D", TaskScorer.extract("the patient has hypertension (D)", null));
        assertNull(TaskScorer.extract("no option letter here, only words.", null));
        assertNull(TaskScorer.extract("Option F or G", null), "only A-E count as option letters");
        assertEquals("maybe", TaskScorer.normalize("  \"Maybe.\" "));
        assertEquals("two words", TaskScorer.normalize("(Two \n Words)!"));

        TaskItem.Generation lettered = new TaskItem.Generation(
                "q", 1, "p", List.of(), List.of("Ampicillin", "Nitrofurantoin", "Doxycycline"), 1, true);
        assertEquals(1, TaskScorer.match("B", lettered));
        assertEquals(1, TaskScorer.match("nitrofurantoin.", lettered));
        assertEquals(3, TaskScorer.match("E", lettered), "a letter past the options names none");
        assertEquals(3, TaskScorer.match("penicillin", lettered));
        assertEquals(-1, TaskScorer.match(null, lettered));
        assertEquals(-1, TaskScorer.match(" ... ", lettered));
        TaskItem.Generation free = new TaskItem.Generation("q", 1, "p", List.of(), List.of("B"), 0, false);
        assertEquals(1, TaskScorer.match("A", free), "without choices a letter is just text");
        assertEquals(0, TaskScorer.match("b", free));
    }
}
