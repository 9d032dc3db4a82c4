package dev.m2q.core.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** SHA-256 of files and memory segments, streamed in 1 MiB chunks (any size, constant memory). */
public final class Sha256 {
    private static final int BUFFER_BYTES = 1 << 20;

    private Sha256() {}

    /** Lower-case hex SHA-256 of the file's bytes. */
    public static String ofFile(Path file) {
        MessageDigest md = newDigest();
        ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER_BYTES);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            while (ch.read(buf) >= 0) {
                buf.flip();
                md.update(buf);
                buf.clear();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read for hashing: " + e.getMessage(), e);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** Lower-case hex SHA-256 of a memory segment's bytes (e.g. one tensor of a mapped shard), in chunks. */
    public static String ofSegment(MemorySegment seg) {
        MessageDigest md = newDigest();
        for (long off = 0; off < seg.byteSize(); off += BUFFER_BYTES) {
            md.update(seg.asSlice(off, Math.min(BUFFER_BYTES, seg.byteSize() - off))
                    .asByteBuffer());
        }
        return HexFormat.of().formatHex(md.digest());
    }

    static MessageDigest newDigest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }
}
