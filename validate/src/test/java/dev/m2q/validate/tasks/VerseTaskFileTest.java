package dev.m2q.validate.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The bundled fixture task {@code fixtures/tasks/verse-endings.jsonl} (written by
 * {@code tools/tasks/make_verse_task.py}) is what its generator documents: well-formed four-way multiple-choice
 * items cut from the held-out verses, none of whose contexts occur in the calibration text, with distractors of
 * similar length and the right answer's position shuffled.
 */
class VerseTaskFileTest {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");
    static final Path TASK = Path.of("..", "fixtures", "tasks", "verse-endings.jsonl");
    static final int CHOICES = 4;
    static final int MIN_ITEMS = 400;
    /** The generator's distractor rule: character length within ±10% of the true ending's. */
    static final double LENGTH_TOLERANCE = 0.1;

    record Item(String id, String context, List<String> choices, int answer) {
        String truth() {
            return choices.get(answer);
        }
    }

    static List<Item> items;
    static List<String> heldout;
    static List<String> calibration;

    @BeforeAll
    static void load() throws IOException {
        heldout = lines(FIXTURE.resolve("heldout.txt"));
        calibration = lines(FIXTURE.resolve("calibration.txt"));
        List<String> raw = lines(TASK);
        items = new ArrayList<>();
        for (int i = 0; i < raw.size(); i++) {
            items.add(parse(raw.get(i), i + 1));
        }
    }

    /** The file's lines; it must end with one "\n" and hold no blank line. */
    static List<String> lines(Path p) throws IOException {
        String text = Files.readString(p);
        assertTrue(text.endsWith("\n") && !text.endsWith("\n\n"), p + " must end with exactly one newline");
        List<String> out = List.of(text.substring(0, text.length() - 1).split("\n", -1));
        for (int i = 0; i < out.size(); i++) {
            assertFalse(out.get(i).isBlank(), p + " line " + (i + 1) + " is blank");
            assertFalse(out.get(i).contains("\r"), p + " line " + (i + 1) + " has a carriage return");
        }
        return out;
    }

    static Item parse(String line, int lineNo) {
        Map<String, Object> o = Json.parseObject(line);
        String where = "task line " + lineNo;
        assertEquals(List.of("id", "context", "choices", "answer"), List.copyOf(o.keySet()), where + " keys");
        String id = assertInstanceOf(String.class, o.get("id"), where + " id");
        String context = assertInstanceOf(String.class, o.get("context"), where + " context");
        List<?> rawChoices = assertInstanceOf(List.class, o.get("choices"), where + " choices");
        List<String> choices = new ArrayList<>();
        for (Object c : rawChoices) {
            choices.add(assertInstanceOf(String.class, c, where + " choice"));
        }
        long answer = assertInstanceOf(Long.class, o.get("answer"), where + " answer");
        assertTrue(answer >= 0 && answer < choices.size(), where + ": answer " + answer + " out of range");
        return new Item(id, context, List.copyOf(choices), (int) answer);
    }

    @Test
    void atLeast400ItemsWithSequentialIds() {
        assertTrue(items.size() >= MIN_ITEMS, items.size() + " items, wanted at least " + MIN_ITEMS);
        for (int i = 0; i < items.size(); i++) {
            assertEquals(String.format("verse-%04d", i + 1), items.get(i).id(), "id of line " + (i + 1));
        }
    }

    @Test
    void fourDistinctChoicesEachAContinuation() {
        for (Item it : items) {
            assertEquals(CHOICES, it.choices().size(), it.id() + " choice count");
            assertEquals(CHOICES, new HashSet<>(it.choices()).size(), it.id() + " has repeated choices");
            assertFalse(it.context().isEmpty() || it.context().endsWith(" "), it.id() + " context");
            for (String c : it.choices()) {
                assertTrue(c.length() > 1 && c.startsWith(" ") && !c.startsWith("  "), it.id() + " choice '" + c + "'");
            }
        }
    }

    @Test
    void contextPlusTrueEndingIsAHeldOutVerse() {
        Set<String> verses = new HashSet<>(heldout);
        Set<String> contexts = new HashSet<>();
        for (Item it : items) {
            assertTrue(verses.contains(it.context() + it.truth()), it.id() + " is not a line of heldout.txt");
            assertTrue(contexts.add(it.context()), it.id() + " repeats an earlier context");
        }
    }

    @Test
    void distractorsAreOtherItemsEndingsOfSimilarLength() {
        Set<String> endings = new HashSet<>();
        for (Item it : items) {
            endings.add(it.truth());
        }
        int widened = 0;
        for (Item it : items) {
            int len = it.truth().length();
            long pool = endings.stream()
                    .filter(e -> !e.equals(it.truth()) && within(e.length(), len))
                    .count();
            for (String c : it.choices()) {
                assertTrue(endings.contains(c), it.id() + ": '" + c + "' is no item's true ending");
                // the generator only goes beyond ±10% when fewer than three such endings exist
                if (pool >= CHOICES - 1) {
                    assertTrue(within(c.length(), len), it.id() + ": '" + c + "' is not within ±10% of " + len);
                }
            }
            widened += pool >= CHOICES - 1 ? 0 : 1;
        }
        // widening is for the few extreme lengths only; more would mean the rule is not applied
        assertTrue(widened <= items.size() / 100, widened + " items with a widened distractor pool");
    }

    static boolean within(int length, int reference) {
        return Math.abs(length - reference) <= LENGTH_TOLERANCE * reference;
    }

    @Test
    void noContextOccursInTheCalibrationText() {
        for (Item it : items) {
            for (int i = 0; i < calibration.size(); i++) {
                assertFalse(
                        calibration.get(i).contains(it.context()),
                        it.id() + " context occurs in calibration.txt line " + (i + 1));
            }
        }
    }

    /**
     * With the position shuffled uniformly, each index's count is Binomial(n, 1/4): mean n/4, standard deviation
     * σ = √(n·3/16) (≈ 9.8 for n = 515). Every count must lie within n/4 ± 4σ, which a uniform shuffle misses with
     * probability below 0.03% per index; an unshuffled file (every answer 0) is off by 3n/4 and fails.
     */
    @Test
    void answerIndicesRoughlyBalanced() {
        int[] counts = new int[CHOICES];
        for (Item it : items) {
            counts[it.answer()]++;
        }
        int n = items.size();
        double mean = n / (double) CHOICES;
        double sigma = Math.sqrt(n * (1.0 / CHOICES) * (1 - 1.0 / CHOICES));
        for (int i = 0; i < CHOICES; i++) {
            assertTrue(
                    Math.abs(counts[i] - mean) <= 4 * sigma,
                    "answer index " + i + " appears " + counts[i] + " times, expected " + mean + " ± " + 4 * sigma);
        }
    }
}
