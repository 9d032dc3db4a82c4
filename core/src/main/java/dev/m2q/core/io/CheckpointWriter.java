package dev.m2q.core.io;

import dev.m2q.core.InputException;
import dev.m2q.core.tensor.Bf16;
import dev.m2q.core.tensor.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Streams a whole checkpoint to disk as its tensors are produced, in any order.
 *
 * <p>The {@link ShardPlan} fixes every file, header and offset up front, so {@link #create} writes each shard's
 * header into a pre-sized hidden temporary file ({@code .<name>.partial}) and every tensor's bytes go straight to
 * their final position. {@link #finish()} checks that every planned tensor arrived, syncs, hashes and renames the
 * shards into place, and writes {@value Checkpoint#INDEX_FILE} last (when sharded): a reader never sees a
 * half-written checkpoint under the final names. {@link #close()} without {@code finish()} deletes the temporaries.
 *
 * <p>Writes of different tensors may come from different threads.
 */
public final class CheckpointWriter implements AutoCloseable {
    /** The metadata transformers expects: it refuses shards whose metadata lacks a known "format". */
    public static final Map<String, String> PT_METADATA = Map.of("format", "pt");

    private static final int CONVERT_CHUNK = 1 << 16;
    private static final int MAX_NAMES_IN_MESSAGE = 10;

    private enum State {
        PLANNED,
        WRITING,
        WRITTEN
    }

    private static final class Slot {
        final TensorSpec spec;
        final ShardOutput out;
        State state = State.PLANNED;

        Slot(TensorSpec spec, ShardOutput out) {
            this.spec = spec;
            this.out = out;
        }
    }

    private final Path outDir;
    private final ShardPlan plan;
    private final List<ShardOutput> outputs;
    private final Map<String, Slot> slots;
    private boolean finished;
    private boolean closed;

    private CheckpointWriter(Path outDir, ShardPlan plan, List<ShardOutput> outputs, Map<String, Slot> slots) {
        this.outDir = outDir;
        this.plan = plan;
        this.outputs = outputs;
        this.slots = slots;
    }

    /**
     * Creates {@code outDir} if needed and the temporary shard files with their headers.
     *
     * @param metadata the {@code __metadata__} of every shard; pass {@link #PT_METADATA} for transformers
     * @throws InputException when {@code outDir} already holds safetensors files or an index that this plan would
     *     not overwrite (a loader would mix them with the new ones)
     */
    public static CheckpointWriter create(Path outDir, ShardPlan plan, Map<String, String> metadata) {
        SafetensorsWriter.createDirectories(outDir);
        refuseStaleFiles(outDir, plan);
        List<ShardOutput> outputs = new ArrayList<>();
        Map<String, Slot> slots = new LinkedHashMap<>();
        try {
            for (ShardPlan.Shard s : plan.shards()) {
                ShardOutput out = ShardOutput.create(outDir, s.fileName(), s.tensors(), metadata);
                outputs.add(out);
                for (TensorSpec t : s.tensors()) {
                    slots.put(t.name(), new Slot(t, out));
                }
            }
        } catch (RuntimeException e) {
            outputs.forEach(ShardOutput::abort);
            throw e;
        }
        return new CheckpointWriter(outDir, plan, outputs, Collections.unmodifiableMap(slots));
    }

    /**
     * Reopens the temporary shards an interrupted writer left in {@code outDir} (it was killed, so it never
     * closed), for a run that continues where it stopped: the same plan and metadata must give byte-identical
     * headers, and the tensors in {@code alreadyWritten} (which the caller synced and recorded before the
     * interruption) count as written.
     *
     * @throws InputException when a temporary shard is missing or does not match the plan
     */
    public static CheckpointWriter resume(
            Path outDir, ShardPlan plan, Map<String, String> metadata, Set<String> alreadyWritten) {
        List<ShardOutput> outputs = new ArrayList<>();
        Map<String, Slot> slots = new LinkedHashMap<>();
        try {
            for (ShardPlan.Shard s : plan.shards()) {
                ShardOutput out = ShardOutput.reopen(outDir, s.fileName(), s.tensors(), metadata);
                outputs.add(out);
                for (TensorSpec t : s.tensors()) {
                    Slot slot = new Slot(t, out);
                    if (alreadyWritten.contains(t.name())) {
                        slot.state = State.WRITTEN;
                    }
                    slots.put(t.name(), slot);
                }
            }
        } catch (RuntimeException e) {
            outputs.forEach(ShardOutput::closeOnly);
            throw e;
        }
        for (String name : alreadyWritten) {
            if (!slots.containsKey(name)) {
                outputs.forEach(ShardOutput::closeOnly);
                throw new InputException(outDir + ": the recorded progress names tensor \"" + name
                        + "\", which this plan does not hold; cannot resume (start again without --resume)");
            }
        }
        return new CheckpointWriter(outDir, plan, outputs, Collections.unmodifiableMap(slots));
    }

    /** Forces every byte written so far to the device: call before recording that those tensors are done. */
    public void sync() {
        outputs.forEach(ShardOutput::sync);
    }

    /** Whether tensor {@code name} has been written (in this run or, after {@link #resume}, before it). */
    public synchronized boolean written(String name) {
        spec(name);
        return slots.get(name).state == State.WRITTEN;
    }

    /**
     * Closes the files but keeps the temporaries, so a later run can {@link #resume} (used when a run stops on
     * purpose or fails after progress was recorded).
     */
    public synchronized void detach() {
        if (closed || finished) {
            return;
        }
        closed = true;
        outputs.forEach(ShardOutput::closeOnly);
    }

    private static void refuseStaleFiles(Path outDir, ShardPlan plan) {
        Set<String> ours = new HashSet<>();
        plan.shards().forEach(s -> ours.add(s.fileName()));
        if (plan.sharded()) {
            ours.add(Checkpoint.INDEX_FILE);
        }
        List<String> stale;
        try (Stream<Path> list = Files.list(outDir)) {
            stale = list.map(p -> p.getFileName().toString())
                    .filter(n -> n.endsWith(".safetensors") || n.equals(Checkpoint.INDEX_FILE))
                    .filter(n -> !ours.contains(n))
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new UncheckedIOException(outDir + ": cannot list: " + e.getMessage(), e);
        }
        if (!stale.isEmpty()) {
            throw new InputException(outDir + ": already holds " + abbreviate(stale)
                    + ", which this checkpoint would not replace and loaders would mix in; remove them or choose"
                    + " an empty output directory");
        }
    }

    public ShardPlan plan() {
        return plan;
    }

    public Path outDir() {
        return outDir;
    }

    /**
     * Writes tensor {@code name}: {@code bytes} must be exactly its planned byte size, in its planned dtype,
     * row-major and little-endian.
     *
     * @throws IllegalArgumentException for a name not in the plan or a wrong byte count
     * @throws IllegalStateException when the tensor was already written, or after finish/close
     */
    public void write(String name, MemorySegment bytes) {
        TensorSpec spec = spec(name);
        if (bytes.byteSize() != spec.byteSize()) {
            throw new IllegalArgumentException("tensor \"" + name + "\" is planned as " + spec + " = " + spec.byteSize()
                    + " bytes; got " + bytes.byteSize());
        }
        try (TensorStream s = stream(name)) {
            s.write(bytes);
        }
    }

    /** As {@link #write(String, MemorySegment)}, from the buffer's remaining bytes (the buffer is not moved). */
    public void write(String name, ByteBuffer bytes) {
        write(name, MemorySegment.ofBuffer(bytes));
    }

    /** Copies {@code source} as tensor {@code name}, whose planned dtype and shape it must have. */
    public void write(String name, TensorView source) {
        TensorSpec spec = spec(name);
        if (source.dtype() != spec.dtype() || !Arrays.equals(source.shape(), spec.shape())) {
            throw new IllegalArgumentException("tensor \"" + name + "\" is planned as " + spec.dtype() + " "
                    + Arrays.toString(spec.shape()) + ", source " + source + " differs");
        }
        write(name, source.data());
    }

    /**
     * Writes floats (flat, row-major) converted to the planned dtype: BF16 and F16 round to nearest even, F32 is
     * exact.
     */
    public void writeFloats(String name, float[] values) {
        TensorSpec spec = spec(name);
        requireDtype(spec, DType.BF16, DType.F16, DType.F32);
        requireCount(spec, values.length);
        int width = spec.dtype().bytes();
        try (TensorStream s = stream(name)) {
            MemorySegment buf = MemorySegment.ofArray(new byte[Math.min(values.length, CONVERT_CHUNK) * width]);
            for (int from = 0; from < values.length; from += CONVERT_CHUNK) {
                int n = Math.min(CONVERT_CHUNK, values.length - from);
                switch (spec.dtype()) {
                    case BF16 -> {
                        for (int k = 0; k < n; k++) {
                            buf.set(TensorView.I16, 2L * k, Bf16.fromFloat(values[from + k]));
                        }
                    }
                    case F16 -> {
                        for (int k = 0; k < n; k++) {
                            buf.set(TensorView.I16, 2L * k, Float.floatToFloat16(values[from + k]));
                        }
                    }
                    default -> MemorySegment.copy(values, from, buf, TensorView.F32, 0, n);
                }
                s.write(buf.asSlice(0, (long) n * width));
            }
        }
    }

    /** Writes an I32 tensor (flat, row-major). */
    public void writeInts(String name, int[] values) {
        TensorSpec spec = spec(name);
        requireDtype(spec, DType.I32);
        requireCount(spec, values.length);
        MemorySegment buf = MemorySegment.ofArray(new byte[Math.multiplyExact(values.length, 4)]);
        MemorySegment.copy(values, 0, buf, TensorView.I32, 0, values.length);
        write(name, buf);
    }

    /** Writes an I64 tensor (flat, row-major). */
    public void writeLongs(String name, long[] values) {
        TensorSpec spec = spec(name);
        requireDtype(spec, DType.I64);
        requireCount(spec, values.length);
        MemorySegment buf = MemorySegment.ofArray(new byte[Math.multiplyExact(values.length, 8)]);
        MemorySegment.copy(values, 0, buf, TensorView.I64, 0, values.length);
        write(name, buf);
    }

    /**
     * Opens tensor {@code name} for writing in consecutive chunks, for tensors too large to hold at once. Closing
     * the stream completes the tensor; a stream closed short of the planned size fails and leaves the tensor
     * unwritten (it may be written again).
     */
    public TensorStream stream(String name) {
        Slot slot = claim(name);
        return new TensorStream(slot);
    }

    /** Sequential writer of one tensor's bytes; see {@link #stream(String)}. */
    public final class TensorStream implements AutoCloseable {
        private final Slot slot;
        private final long base;
        private long written;
        private boolean done;

        private TensorStream(Slot slot) {
            this.slot = slot;
            this.base = slot.out.position(slot.spec.name());
        }

        /** Appends {@code bytes} to the tensor. */
        public void write(MemorySegment bytes) {
            if (done) {
                throw new IllegalStateException("tensor \"" + slot.spec.name() + "\": stream already closed");
            }
            if (bytes.byteSize() > remaining()) {
                throw new IllegalArgumentException("tensor \"" + slot.spec.name() + "\" is planned as "
                        + slot.spec + " = " + slot.spec.byteSize() + " bytes; got " + (written + bytes.byteSize())
                        + " or more");
            }
            slot.out.write(base + written, bytes);
            written += bytes.byteSize();
        }

        /** Appends the buffer's remaining bytes (the buffer is not moved). */
        public void write(ByteBuffer bytes) {
            write(MemorySegment.ofBuffer(bytes));
        }

        /** Bytes still to come. */
        public long remaining() {
            return slot.spec.byteSize() - written;
        }

        /** Completes the tensor, or fails when bytes are missing. */
        @Override
        public void close() {
            if (done) {
                return;
            }
            done = true;
            boolean complete = written == slot.spec.byteSize();
            complete(slot, complete);
            if (!complete) {
                throw new IllegalArgumentException("tensor \"" + slot.spec.name() + "\" is planned as " + slot.spec
                        + " = " + slot.spec.byteSize() + " bytes; got " + written);
            }
        }
    }

    /**
     * Checks that every planned tensor was written, then syncs, hashes and renames every shard, and writes the
     * index last when sharded. Returns file name → lower-case hex SHA-256 for every file written (index included),
     * in write order.
     *
     * @throws IllegalStateException naming the tensors never written
     */
    public synchronized Map<String, String> finish() {
        checkOpen();
        List<String> missing = slots.values().stream()
                .filter(s -> s.state != State.WRITTEN)
                .map(s -> s.spec.name())
                .toList();
        if (!missing.isEmpty()) {
            throw new IllegalStateException(
                    outDir + ": " + missing.size() + " planned tensor(s) not written: " + abbreviate(missing));
        }
        Map<String, String> hashes = new LinkedHashMap<>();
        for (ShardOutput out : outputs) {
            hashes.put(out.fileName(), out.commit());
        }
        if (plan.sharded()) {
            hashes.put(Checkpoint.INDEX_FILE, writeIndex());
        }
        syncDirectory();
        finished = true;
        return Collections.unmodifiableMap(hashes);
    }

    private String writeIndex() {
        byte[] text = plan.indexJson().getBytes(StandardCharsets.UTF_8);
        Path temp = ShardOutput.tempPath(outDir, Checkpoint.INDEX_FILE);
        try {
            try (FileChannel ch = FileChannel.open(
                    temp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
                ShardOutput.writeFully(ch, ByteBuffer.wrap(text), 0);
                ch.force(true);
            }
            ShardOutput.moveIntoPlace(temp, outDir.resolve(Checkpoint.INDEX_FILE));
        } catch (IOException e) {
            throw new UncheckedIOException(temp + ": cannot write the index: " + e.getMessage(), e);
        }
        MessageDigest md = Sha256.newDigest();
        return HexFormat.of().formatHex(md.digest(text));
    }

    /** Makes the renames durable where the platform allows syncing a directory (Linux does, Windows does not). */
    private void syncDirectory() {
        try (FileChannel dir = FileChannel.open(outDir, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // The files themselves are synced; only the directory entry's durability is left to the OS.
        }
    }

    /** Deletes the temporary files unless {@link #finish()} succeeded. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (!finished) {
            outputs.forEach(ShardOutput::abort);
        }
    }

    private TensorSpec spec(String name) {
        Slot slot = slots.get(name);
        if (slot == null) {
            throw new IllegalArgumentException(
                    "tensor \"" + name + "\" is not in the shard plan (" + slots.size() + " tensors planned)");
        }
        return slot.spec;
    }

    private synchronized Slot claim(String name) {
        checkOpen();
        spec(name);
        Slot slot = slots.get(name);
        if (slot.state != State.PLANNED) {
            throw new IllegalStateException("tensor \"" + name + "\" written twice");
        }
        slot.state = State.WRITING;
        return slot;
    }

    private synchronized void complete(Slot slot, boolean ok) {
        slot.state = ok ? State.WRITTEN : State.PLANNED;
    }

    private void checkOpen() {
        if (finished || closed) {
            throw new IllegalStateException(
                    outDir + ": checkpoint writer already " + (finished ? "finished" : "closed"));
        }
    }

    private static void requireDtype(TensorSpec spec, DType... allowed) {
        if (!Arrays.asList(allowed).contains(spec.dtype())) {
            throw new IllegalArgumentException("tensor \"" + spec.name() + "\" is planned as " + spec.dtype()
                    + "; this method writes " + Arrays.toString(allowed));
        }
    }

    private static void requireCount(TensorSpec spec, long count) {
        if (count != spec.numel()) {
            throw new IllegalArgumentException("tensor \"" + spec.name() + "\" is planned as " + spec + " = "
                    + spec.numel() + " elements; got " + count);
        }
    }

    private static String abbreviate(List<String> names) {
        String head = String.join(", ", names.subList(0, Math.min(MAX_NAMES_IN_MESSAGE, names.size())));
        return names.size() > MAX_NAMES_IN_MESSAGE
                ? head + ", … (" + (names.size() - MAX_NAMES_IN_MESSAGE) + " more)"
                : head;
    }
}
