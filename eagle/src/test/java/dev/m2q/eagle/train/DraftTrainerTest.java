package dev.m2q.eagle.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import dev.m2q.core.grad.Tensor;
import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The training loop on a quadratic objective: it learns, its data order, and a killed run resumed bit for bit. */
class DraftTrainerTest {
    /**
     * loss = mean over the batch of Σ_i ½(p_i − c)², c = ids[0]/10 of the sequence: its minimum is every parameter
     * at the mean c of the data. Top-1 "agreement" counts parameters within 0.05 of c.
     */
    static final class Quadratic implements DraftObjective {
        int calls;
        int failAt = Integer.MAX_VALUE;

        @Override
        public StepStats lossAndGradients(
                Map<String, Tensor> params, List<TrainingSequence> batch, Map<String, Tensor> grads) {
            if (++calls == failAt) {
                throw new IllegalStateException("simulated kill at call " + calls);
            }
            return pass(params, batch, grads);
        }

        @Override
        public StepStats evaluate(Map<String, Tensor> params, List<TrainingSequence> batch) {
            return pass(params, batch, null);
        }

        private static StepStats pass(
                Map<String, Tensor> params, List<TrainingSequence> batch, Map<String, Tensor> grads) {
            double loss = 0;
            long correct = 0;
            long counted = 0;
            for (TrainingSequence s : batch) {
                double c = s.ids()[0] / 10.0;
                for (var e : params.entrySet()) {
                    Tensor p = e.getValue();
                    for (int i = 0; i < p.size(); i++) {
                        double d = p.get(i) - c;
                        loss += 0.5 * d * d / batch.size();
                        if (grads != null) {
                            grads.get(e.getKey()).add(i, d / batch.size());
                        }
                        correct += Math.abs(d) < 0.05 ? 1 : 0;
                        counted++;
                    }
                }
            }
            return new StepStats(loss, new double[] {loss}, new long[] {correct}, new long[] {counted});
        }
    }

    static final int SEQUENCES = 10;

    static TrainingSequence sequence(int i) {
        return new TrainingSequence(
                new int[] {i}, new boolean[] {true}, new float[] {0f}, new float[] {0f, 0f, 0f}, new float[] {0f});
    }

    static Map<String, Tensor> init() {
        Map<String, Tensor> p = new LinkedHashMap<>();
        p.put("a", new Tensor.F32(new float[] {1f, -1f, 0.5f, 2f, 0f, -0.25f}, 2, 3));
        p.put("b", new Tensor.F32(new float[] {0.1f, 0.2f, 0.3f}, 1, 3));
        return p;
    }

    static final List<Integer> TRAIN = List.of(0, 1, 2, 3, 4, 5, 6, 7);
    static final List<Integer> HOLDOUT = List.of(8, 9);
    static final Map<String, Object> FINGERPRINT = Map.of("data_sha256", "test");

    static DraftTrainer trainer(DraftTrainer.Options o, DraftObjective obj, Path dir) {
        return new DraftTrainer(o, obj, DraftTrainerTest::sequence, TRAIN, HOLDOUT, dir, line -> {});
    }

    static DraftTrainer.Options options(int checkpointEvery) {
        return new DraftTrainer.Options(40, 3, 0.2, 4, 0.5, 10, checkpointEvery, 7);
    }

    @Test
    void learnsTheQuadraticsMinimumAndLogsEveryStep(@TempDir Path dir) throws IOException {
        DraftTrainer t = trainer(options(0), new Quadratic(), dir);
        DraftTrainer.Result r = t.run(init(), FINGERPRINT, false);
        // The training split's minimum is every parameter at the mean c = (0 + … + 7)/80 = 0.35; from starts up to
        // 1.65 away, the run must end within 0.2 of it: a batch of 3 has a mean c within ±0.25 of 0.35 and Adam's
        // normalized steps follow the last batches' pull until the cosine schedule brings lr to 0.
        for (Tensor p : r.params().values()) {
            for (int i = 0; i < p.size(); i++) {
                assertEquals(0.35, p.get(i), 0.2, "parameter " + i);
            }
        }
        assertTrue(r.evaluation().loss() < t.evaluate(init(), 0).loss());
        List<String> lines = Files.readAllLines(dir.resolve(DraftTrainer.LOG), StandardCharsets.UTF_8);
        // 40 steps, evaluations after steps 10, 20, 30 and 40
        assertEquals(44, lines.size());
        assertEquals(4, lines.stream().filter(l -> l.contains("\"eval\"")).count());
        assertEquals(40L, Json.parseObject(lines.getLast()).get("step"));
    }

    @Test
    void everyEpochVisitsEachTrainingSequenceOnceAndNeverAHeldOutOne(@TempDir Path dir) {
        DraftTrainer t = trainer(options(0), new Quadratic(), dir);
        // batch 3 over 8 sequences: steps 0..7 cover 24 positions = three whole epochs
        List<Integer> seen = new ArrayList<>();
        for (int s = 0; s < 8; s++) {
            seen.addAll(t.batch(s));
        }
        for (int e = 0; e < 3; e++) {
            Set<Integer> epoch = new HashSet<>(seen.subList(8 * e, 8 * e + 8));
            assertEquals(new HashSet<>(TRAIN), epoch, "epoch " + e);
        }
        assertEquals(t.batch(5), trainer(options(0), new Quadratic(), dir).batch(5), "a function of seed and step");
        assertFalse(seen.subList(0, 8).equals(seen.subList(8, 16)), "each epoch is shuffled anew");
    }

    @Test
    void aKilledRunResumesBitIdentically(@TempDir Path dir) throws IOException {
        Path straight = dir.resolve("straight");
        Map<String, Tensor> expected = trainer(options(15), new Quadratic(), straight)
                .run(init(), FINGERPRINT, false)
                .params();

        Path killed = dir.resolve("killed");
        Quadratic dying = new Quadratic();
        dying.failAt = 23; // after the checkpoint at step 15 and seven more steps
        assertThrows(IllegalStateException.class, () -> trainer(options(15), dying, killed)
                .run(init(), FINGERPRINT, false));
        Map<String, Tensor> resumed = trainer(options(15), new Quadratic(), killed)
                .run(init(), FINGERPRINT, true)
                .params();
        for (String k : expected.keySet()) {
            assertArrayEquals(
                    ((Tensor.F32) expected.get(k)).data(), ((Tensor.F32) resumed.get(k)).data(), k + " bit for bit");
        }
        // the steps the killed run did after its checkpoint are dropped from the log and redone
        assertEquals(
                Files.readAllLines(straight.resolve(DraftTrainer.LOG)),
                Files.readAllLines(killed.resolve(DraftTrainer.LOG)));
    }

    @Test
    void resumeRefusesOtherOptionsOrData(@TempDir Path dir) {
        Quadratic dying = new Quadratic();
        dying.failAt = 12;
        assertThrows(IllegalStateException.class, () -> trainer(options(10), dying, dir)
                .run(init(), FINGERPRINT, false));
        DraftTrainer.Options otherLr = new DraftTrainer.Options(40, 3, 0.01, 4, 0.5, 10, 10, 7);
        InputException e = assertThrows(InputException.class, () -> trainer(otherLr, new Quadratic(), dir)
                .run(init(), FINGERPRINT, true));
        assertTrue(e.getMessage().contains("trainer"), e.getMessage());
        InputException d = assertThrows(InputException.class, () -> trainer(options(10), new Quadratic(), dir)
                .run(init(), Map.of("data_sha256", "other"), true));
        assertTrue(d.getMessage().contains("data_sha256"), d.getMessage());
        assertThrows(InputException.class, () -> trainer(options(10), new Quadratic(), dir.resolve("none"))
                .run(init(), FINGERPRINT, true));
        assertEquals(
                SEQUENCES,
                IntStream.concat(
                                TRAIN.stream().mapToInt(i -> i),
                                HOLDOUT.stream().mapToInt(i -> i))
                        .distinct()
                        .count());
    }

    @Test
    void aDamagedCheckpointStateOrLogIsBadInputNamingTheFile(@TempDir Path dir) throws IOException {
        Quadratic dying = new Quadratic();
        dying.failAt = 12;
        assertThrows(IllegalStateException.class, () -> trainer(options(10), dying, dir)
                .run(init(), FINGERPRINT, false));
        Path state = dir.resolve(TrainCheckpoint.DIR).resolve(TrainCheckpoint.STATE);
        String good = Files.readString(state);
        for (String bad : List.of(
                good.replace("\"step\": 10", "\"step\": \"ten\""),
                good.replace("\"format_version\": 1,", "\"format_version\": 1, \"extra\": 0,"),
                good.substring(0, good.length() / 2))) {
            Files.writeString(state, bad);
            InputException e = assertThrows(InputException.class, () -> trainer(options(10), new Quadratic(), dir)
                    .run(init(), FINGERPRINT, true));
            assertTrue(e.getMessage().startsWith(state + ": malformed JSON"), e.getMessage());
        }
        Files.writeString(state, good);
        Path log = dir.resolve(DraftTrainer.LOG);
        List<String> lines = Files.readAllLines(log);
        Files.writeString(log, lines.getFirst().replace("\"lr\"", "\"learning_rate\"") + "\n");
        InputException e = assertThrows(InputException.class, () -> trainer(options(10), new Quadratic(), dir)
                .run(init(), FINGERPRINT, true));
        assertTrue(e.getMessage().startsWith(log + ": cannot rewrite the log"), e.getMessage());
    }
}
