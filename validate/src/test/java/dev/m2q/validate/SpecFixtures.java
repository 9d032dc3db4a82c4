package dev.m2q.validate;

import dev.m2q.core.draft.DraftConfig;
import dev.m2q.core.draft.DraftHead;
import dev.m2q.core.draft.DraftModel;
import dev.m2q.core.draft.DraftVocab;
import dev.m2q.core.kernels.Kernels;
import dev.m2q.core.model.ModelConfig;
import dev.m2q.core.model.Qwen2Model;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.random.RandomGenerator;

/** The fixture target, seeded random EAGLE-3 heads for it, and an oracle drafter, shared by the Spec* tests. */
final class SpecFixtures {
    static final Path FIXTURE = Path.of("..", "fixtures", "tiny-qwen2");
    static final Kernels K = Kernels.byName("vector");

    private SpecFixtures() {}

    static Qwen2Model target() {
        return Qwen2Model.load(FIXTURE, K);
    }

    /** The first {@code n} tokens of the fixture's held-out text. */
    static int[] prompt(int n) throws IOException {
        int[] ids = Tokenizer.load(FIXTURE.resolve("tokenizer.json"))
                .encode(Files.readString(FIXTURE.resolve("heldout.txt")));
        return Arrays.copyOf(ids, n);
    }

    /**
     * A head with uniform(±√(3/in)) weights (unit-variance outputs for unit-variance inputs), norms at 1, over the
     * draft vocabulary {@code vocab}.
     */
    static DraftHead randomHead(ModelConfig target, DraftVocab vocab, long seed) {
        DraftConfig cfg = DraftConfig.forTarget(target, null, vocab.size(), null);
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, float[]> w = new LinkedHashMap<>();
        DraftHead.shapes(cfg).forEach((name, shape) -> {
            float[] v = new float[(int) Arrays.stream(shape).reduce(1, (a, b) -> a * b)];
            if (shape.length == 1) {
                Arrays.fill(v, 1f);
            } else {
                double a = Math.sqrt(3.0 / shape[1]);
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) r.nextDouble(-a, a);
                }
            }
            w.put(name, v);
        });
        return new DraftHead(cfg, vocab, w);
    }

    /** Every {@code stride}-th target id from {@code offset}: a draft vocabulary that lacks the others. */
    static DraftVocab strided(int targetVocab, int offset, int stride) {
        int[] ids = java.util.stream.IntStream.iterate(offset, i -> i < targetVocab, i -> i + stride)
                .toArray();
        return DraftVocab.of(ids, targetVocab);
    }

    static EagleDrafter drafter(DraftHead head, Qwen2Model target) {
        return new EagleDrafter(new DraftModel(head, K), target);
    }

    /**
     * Proposes the target's own continuation: {@code continuation[i]} is the token at position n + i of a prompt of
     * n tokens. After rows 0..L−1 the last row's next token is at position L, so the chain is positions L+1..L+k.
     */
    static final class Oracle implements SpecDecode.Drafter {
        private final int n;
        private final int[] continuation;
        private int length;

        Oracle(int promptLength, int[] continuation) {
            this.n = promptLength;
            this.continuation = continuation.clone();
        }

        @Override
        public void reset(int capacity) {
            length = 0;
        }

        @Override
        public void append(float[] features, int[] next, int rows) {
            length += rows;
        }

        @Override
        public SpecDecode.Proposal propose(int k, double temperature, RandomGenerator rng) {
            return new SpecDecode.Proposal(Arrays.copyOfRange(continuation, length + 1 - n, length + 1 - n + k), null);
        }

        @Override
        public int length() {
            return length;
        }

        @Override
        public void truncate(int length) {
            this.length = length;
        }
    }
}
