package dev.m2q.core.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The hidden states of every calibration sample entering one layer: {@code samples} rows of [seqLen, hidden] fp32.
 * Held on the heap when it fits the memory budget, otherwise in a memory-mapped temporary file (the OS pages it),
 * so a calibration set larger than RAM still goes through.
 */
public sealed interface ActivationStore extends AutoCloseable permits ActivationStore.Heap, ActivationStore.Spilled {
    int samples();

    /** Floats per sample: seqLen × hidden. */
    int width();

    /** A copy of sample {@code i}. */
    float[] get(int i);

    /** Replaces sample {@code i}. */
    void set(int i, float[] values);

    @Override
    void close();

    /** Whether the data lives in a file rather than on the heap. */
    boolean spilled();

    /** Bytes one store of this shape takes. */
    static long bytes(int samples, int width) {
        return 4L * samples * width;
    }

    /** A heap store when {@code bytes(samples, width) ≤ budget}, else a file under {@code spillDir}. */
    static ActivationStore create(int samples, int width, long budget, Path spillDir) {
        return bytes(samples, width) <= budget ? new Heap(samples, width) : Spilled.create(samples, width, spillDir);
    }

    /** Samples as heap arrays. */
    final class Heap implements ActivationStore {
        private final float[][] rows;
        private final int width;

        Heap(int samples, int width) {
            this.rows = new float[samples][];
            this.width = width;
        }

        @Override
        public int samples() {
            return rows.length;
        }

        @Override
        public int width() {
            return width;
        }

        @Override
        public float[] get(int i) {
            return rows[i].clone();
        }

        @Override
        public void set(int i, float[] values) {
            check(values.length, width);
            rows[i] = values.clone();
        }

        @Override
        public boolean spilled() {
            return false;
        }

        @Override
        public void close() {}
    }

    /** Samples in a mapped temporary file, deleted on close. */
    final class Spilled implements ActivationStore {
        private final Path file;
        private final Arena arena;
        private final MemorySegment data;
        private final int samples;
        private final int width;

        private Spilled(Path file, Arena arena, MemorySegment data, int samples, int width) {
            this.file = file;
            this.arena = arena;
            this.data = data;
            this.samples = samples;
            this.width = width;
        }

        static Spilled create(int samples, int width, Path dir) {
            Arena arena = Arena.ofShared();
            Path file = null;
            try {
                Files.createDirectories(dir);
                file = Files.createTempFile(dir, "m2q-activations-", ".bin");
                try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                    MemorySegment seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes(samples, width), arena);
                    return new Spilled(file, arena, seg, samples, width);
                }
            } catch (IOException e) {
                arena.close();
                if (file != null) {
                    file.toFile().delete();
                }
                throw new UncheckedIOException(dir + ": cannot create the activation spill file: " + e.getMessage(), e);
            }
        }

        @Override
        public int samples() {
            return samples;
        }

        @Override
        public int width() {
            return width;
        }

        @Override
        public float[] get(int i) {
            float[] out = new float[width];
            MemorySegment.copy(data, ValueLayout.JAVA_FLOAT, 4L * i * width, out, 0, width);
            return out;
        }

        @Override
        public void set(int i, float[] values) {
            check(values.length, width);
            MemorySegment.copy(values, 0, data, ValueLayout.JAVA_FLOAT, 4L * i * width, width);
        }

        @Override
        public boolean spilled() {
            return true;
        }

        @Override
        public void close() {
            arena.close();
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                throw new UncheckedIOException(file + ": cannot delete: " + e.getMessage(), e);
            }
        }
    }

    private static void check(int got, int width) {
        if (got != width) {
            throw new IllegalArgumentException("activation row has " + got + " floats, expected " + width);
        }
    }
}
