package dev.m2q.core.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** SHA-256 of files and memory segments, streamed in 1 MiB chunks (any size, constant memory). */
public final class Sha256 {
    private static final int BUFFER_BYTES = 1 << 20;

    private Sha256() {}

    /** Lower-case hex SHA-256 of the text's UTF-8 bytes. */
    public static String ofText(String text) {
        return HexFormat.of().formatHex(newDigest().digest(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

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

    /**
     * The SHA-256 of a safetensors file and of each of its tensors, from one read of the file: the header bytes,
     * then each tensor's bytes in file order, which feed both the file's digest and the tensor's. When the tensors
     * do not tile the data section exactly (gaps or overlaps, which a well-formed file has not), the file is hashed
     * on its own, so the result never depends on the shortcut.
     *
     * @param tensors name → lower-case hex sha256, in header order
     */
    public record OfShard(String file, Map<String, String> tensors) {}

    /** See {@link OfShard}; throws {@link dev.m2q.core.InputException} when the file is not safetensors. */
    public static OfShard ofShard(Path path) {
        try (SafetensorsFile f = SafetensorsFile.open(path)) {
            List<TensorView> views = new ArrayList<>(f.tensors());
            views.sort(Comparator.comparingLong(v -> v.data().address()));
            boolean tiled = f.dataStart() + f.tensorBytes() == Files.size(path);
            for (int i = 1; i < views.size() && tiled; i++) {
                MemorySegment prev = views.get(i - 1).data();
                tiled = prev.address() + prev.byteSize() == views.get(i).data().address();
            }
            MessageDigest whole = newDigest();
            if (tiled) {
                ByteBuffer header = ByteBuffer.allocate(Math.toIntExact(f.dataStart()));
                try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                    while (header.hasRemaining() && ch.read(header) >= 0) {}
                }
                whole.update(header.flip());
            }
            Map<String, String> tensors = new LinkedHashMap<>();
            for (TensorView v : views) {
                MessageDigest one = newDigest();
                MemorySegment seg = v.data();
                for (long off = 0; off < seg.byteSize(); off += BUFFER_BYTES) {
                    ByteBuffer chunk = seg.asSlice(off, Math.min(BUFFER_BYTES, seg.byteSize() - off))
                            .asByteBuffer();
                    if (tiled) {
                        whole.update(chunk.duplicate());
                    }
                    one.update(chunk);
                }
                tensors.put(v.name(), HexFormat.of().formatHex(one.digest()));
            }
            Map<String, String> inHeaderOrder = new LinkedHashMap<>();
            f.names().forEach(n -> inHeaderOrder.put(n, tensors.get(n)));
            return new OfShard(tiled ? HexFormat.of().formatHex(whole.digest()) : ofFile(path), inHeaderOrder);
        } catch (IOException e) {
            throw new UncheckedIOException(path + ": cannot read for hashing: " + e.getMessage(), e);
        }
    }

    static MessageDigest newDigest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }
}
