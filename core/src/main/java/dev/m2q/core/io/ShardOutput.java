package dev.m2q.core.io;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One safetensors file being written: created as {@code .<name>.partial} beside its final name, header written
 * and file pre-sized up front, tensor bytes written at their planned positions in any order, then synced, hashed
 * and renamed into place by {@link #commit()}.
 */
final class ShardOutput {
    private static final int CHUNK_BYTES = 8 << 20;

    private final Path finalPath;
    private final Path tempPath;
    private final FileChannel channel;
    private final Map<String, Long> positions;

    private ShardOutput(Path finalPath, Path tempPath, FileChannel channel, Map<String, Long> positions) {
        this.finalPath = finalPath;
        this.tempPath = tempPath;
        this.channel = channel;
        this.positions = positions;
    }

    static ShardOutput create(Path dir, String fileName, List<TensorSpec> tensors, Map<String, String> metadata) {
        byte[] header = SafetensorsWriter.header(tensors, metadata);
        Map<String, Long> positions = new LinkedHashMap<>();
        long pos = header.length;
        for (TensorSpec t : tensors) {
            positions.put(t.name(), pos);
            pos += t.byteSize();
        }
        Path tempPath = tempPath(dir, fileName);
        FileChannel ch = null;
        try {
            ch = FileChannel.open(
                    tempPath,
                    StandardOpenOption.CREATE,
                    StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.READ,
                    StandardOpenOption.WRITE);
            writeFully(ch, ByteBuffer.wrap(header), 0);
            if (pos > header.length) {
                writeFully(ch, ByteBuffer.allocate(1), pos - 1);
            }
            return new ShardOutput(dir.resolve(fileName), tempPath, ch, positions);
        } catch (IOException e) {
            closeQuietly(ch);
            deleteQuietly(tempPath);
            throw new UncheckedIOException(tempPath + ": cannot create: " + e, e);
        }
    }

    /**
     * Reopens the temporary file a killed run left behind, without truncating it, after checking that it starts
     * with exactly the header this plan would write and has the planned length.
     */
    static ShardOutput reopen(Path dir, String fileName, List<TensorSpec> tensors, Map<String, String> metadata) {
        byte[] header = SafetensorsWriter.header(tensors, metadata);
        Map<String, Long> positions = new LinkedHashMap<>();
        long pos = header.length;
        for (TensorSpec t : tensors) {
            positions.put(t.name(), pos);
            pos += t.byteSize();
        }
        Path tempPath = tempPath(dir, fileName);
        Path finalPath = dir.resolve(fileName);
        if (!Files.isRegularFile(tempPath) && Files.isRegularFile(finalPath)) {
            // A run that stopped while finishing (a full disk writing config.json) had already synced and renamed
            // its shards: take the file back under its temporary name; the header check below still applies.
            try {
                Files.move(finalPath, tempPath);
            } catch (IOException e) {
                throw new UncheckedIOException(finalPath + ": cannot reopen for --resume: " + e.getMessage(), e);
            }
        }
        if (!Files.isRegularFile(tempPath)) {
            throw new InputException(tempPath + ": missing, cannot resume (start again without --resume)");
        }
        FileChannel ch = null;
        try {
            ch = FileChannel.open(tempPath, StandardOpenOption.READ, StandardOpenOption.WRITE);
            ByteBuffer found = ByteBuffer.allocate(header.length);
            for (int n = 0; found.hasRemaining() && n >= 0; ) {
                n = ch.read(found, found.position());
            }
            if (ch.size() != pos || !java.util.Arrays.equals(found.array(), header)) {
                throw new InputException(tempPath + ": does not match this run's plan (different options or input);"
                        + " cannot resume (start again without --resume)");
            }
            return new ShardOutput(dir.resolve(fileName), tempPath, ch, positions);
        } catch (IOException e) {
            closeQuietly(ch);
            throw new UncheckedIOException(tempPath + ": cannot reopen: " + e, e);
        } catch (RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    /** Forces written bytes to the device (before a resume point is recorded). */
    void sync() {
        try {
            channel.force(false);
        } catch (IOException e) {
            throw new UncheckedIOException(tempPath + ": sync failed: " + e.getMessage(), e);
        }
    }

    /** The temporary name of {@code fileName} while it is written: hidden, and never a {@code *.safetensors}. */
    static Path tempPath(Path dir, String fileName) {
        return dir.resolve("." + fileName + ".partial");
    }

    /** Absolute file position of the first byte of {@code name}. */
    long position(String name) {
        return positions.get(name);
    }

    String fileName() {
        return finalPath.getFileName().toString();
    }

    /** Writes {@code bytes} at file position {@code position}; safe to call from several threads at once. */
    void write(long position, MemorySegment bytes) {
        try {
            long n = bytes.byteSize();
            byte[] staging = bytes.isNative() ? null : new byte[(int) Math.min(n, CHUNK_BYTES)];
            for (long off = 0; off < n; off += CHUNK_BYTES) {
                int len = (int) Math.min(CHUNK_BYTES, n - off);
                ByteBuffer buf;
                if (staging == null) {
                    buf = bytes.asSlice(off, len).asByteBuffer();
                } else {
                    MemorySegment.copy(bytes, ValueLayout.JAVA_BYTE, off, staging, 0, len);
                    buf = ByteBuffer.wrap(staging, 0, len);
                }
                writeFully(channel, buf, position + off);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(tempPath + ": write failed: " + e.getMessage(), e);
        }
    }

    /** Syncs and closes the temporary file, hashes it, renames it to its final name; returns the SHA-256. */
    String commit() {
        try {
            channel.force(true);
            channel.close();
            String sha = Sha256.ofFile(tempPath);
            moveIntoPlace(tempPath, finalPath);
            return sha;
        } catch (IOException e) {
            throw new UncheckedIOException(finalPath + ": cannot finish: " + e.getMessage(), e);
        }
    }

    /** Closes the temporary file and keeps it (for a later resume). */
    void closeOnly() {
        closeQuietly(channel);
    }

    /** Closes and deletes the temporary file; harmless after {@link #commit()}. */
    void abort() {
        closeQuietly(channel);
        deleteQuietly(tempPath);
    }

    static void moveIntoPlace(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    static void writeFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            pos += ch.write(buf, pos);
        }
    }

    private static void closeQuietly(FileChannel ch) {
        if (ch != null) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // Nothing more to do with a file being discarded.
            }
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // A leftover hidden .partial file is harmless: the next run truncates it.
        }
    }
}
