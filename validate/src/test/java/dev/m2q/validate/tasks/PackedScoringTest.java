package dev.m2q.validate.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.KvCache;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.ChatTemplate;
import dev.m2q.core.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Multiple-choice items scored in packed forwards against the per-item KV-cache path, bit for bit: a packed
 * continuation row sees its context's keys and then its own, in the order the cache holds them, and every other
 * operation is per row, so each log-likelihood is the same double (measured: the differences are exactly 0; a
 * tolerance would hide a key seen out of order or a row seeing another item). On the bundled fixture task's items,
 * whose choices run from one token to many, in packs of several sizes.
 */
class PackedScoringTest {
    static final Path FIXTURE = TaskScorerTest.FIXTURE;
    static final Path VERSES = Path.of("..", "fixtures", "tasks", "verse-endings.jsonl");

    static Qwen2Model model;
    static Tokenizer tok;
    static TaskFile verses;

    @BeforeAll
    static void load() {
        model = Qwen2Model.load(FIXTURE, Kernels.byName("vector"));
        tok = Tokenizer.load(FIXTURE.resolve("tokenizer.json"));
        TaskFile all = TaskFile.read(VERSES, TaskFields.DEFAULT).getFirst();
        verses = new TaskFile(all.name(), all.path(), all.items().subList(0, 12));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static List<TaskScorer.Encoded> encoded(TaskFile t, ChatTemplate chat) {
        List<TaskScorer.Encoded> e = new ArrayList<>();
        for (TaskItem it : t.items()) {
            e.add(TaskScorer.encode(tok, t, (TaskItem.Choice) it, chat));
        }
        return e;
    }

    static double[][] cached(List<TaskScorer.Encoded> items) {
        int capacity = 1;
        for (TaskScorer.Encoded e : items) {
            for (int[] c : e.continuations()) {
                capacity = Math.max(capacity, e.context().length + c.length);
            }
        }
        double[][] out = new double[items.size()][];
        try (KvCache cache = model.newCache(capacity)) {
            for (int k = 0; k < items.size(); k++) {
                out[k] = TaskScorer.logLikelihoods(
                        model, cache, items.get(k).context(), items.get(k).continuations());
            }
        }
        return out;
    }

    @Test
    void packedLogLikelihoodsEqualTheCachedOnesBitForBit() {
        List<TaskScorer.Encoded> items = encoded(verses, null);
        double[][] want = cached(items);
        double[][] all = TaskScorer.packedLogLikelihoods(model, items);
        assertEquals(want.length, all.length);
        for (int k = 0; k < want.length; k++) {
            assertArrayEquals(want[k], all[k], 0.0, "item " + k + " packed with 11 others");
        }
        // one item alone, and the items in packs of three
        assertArrayEquals(want[5], TaskScorer.packedLogLikelihoods(model, items.subList(5, 6))[0], 0.0);
        for (int k = 0; k + 3 <= items.size(); k += 3) {
            double[][] three = TaskScorer.packedLogLikelihoods(model, items.subList(k, k + 3));
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(want[k + i], three[i], 0.0, "item " + (k + i) + " in a pack of three");
            }
        }
    }

    /** Under chat rendering the contexts are longer and the choices follow the assistant's turn: still exact. */
    @Test
    void chatRenderedItemsTooAndSingleTokenChoices() {
        ChatTemplate chat = ChatTemplate.load(FIXTURE);
        TaskItem.Choice names = new TaskItem.Choice("n", 1, TaskScorerTest.CONTEXT, List.of("a", "Ruth", "Orpah"), 1);
        TaskFile t = new TaskFile(
                "mixed", TaskScorerTest.FILE, List.of(verses.items().get(0), names));
        List<TaskScorer.Encoded> items = encoded(t, chat);
        assertEquals(1, items.get(1).continuations()[0].length, "a one-token choice has no row of its own");
        double[][] want = cached(items);
        double[][] got = TaskScorer.packedLogLikelihoods(model, items);
        for (int k = 0; k < want.length; k++) {
            assertArrayEquals(want[k], got[k], 0.0, "item " + k);
        }
    }

    /**
     * The whole scorer: packs of at most 2048 rows (all 12 items in one), the default, 150 rows (several packs,
     * items never split), 1 row (every item alone, larger than the budget) and the per-item cache path (packRows 0)
     * give the same runs.
     */
    @Test
    void runsAreTheSameWhateverThePacking() {
        List<TaskRun> oneAtATime = TaskScorer.run(model, tok, verses, "reference", options(0));
        for (int rows : new int[] {2048, TaskScorer.Options.PACK_ROWS, 150, 1}) {
            List<TaskRun> packed = TaskScorer.run(model, tok, verses, "reference", options(rows));
            for (int m = 0; m < oneAtATime.size(); m++) {
                assertEquals(oneAtATime.get(m).items(), packed.get(m).items(), "packRows " + rows + " metric " + m);
            }
        }
        assertEquals(TaskScorer.Options.PACK_ROWS, TaskScorer.Options.DEFAULT.packRows());
        assertThrows(IllegalArgumentException.class, () -> options(-1));
    }

    static TaskScorer.Options options(int packRows) {
        return new TaskScorer.Options(null, 32, new int[0], null, packRows);
    }
}
