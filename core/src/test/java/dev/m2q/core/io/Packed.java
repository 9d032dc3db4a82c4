package dev.m2q.core.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.apache.commons.compress.archivers.tar.TarConstants;
import org.apache.commons.compress.compressors.CompressorException;
import org.apache.commons.compress.compressors.CompressorStreamFactory;

/** Builds compressed and tar inputs in memory for the reader tests, with commons-compress's writers. */
public final class Packed {
    private Packed() {}

    /** The compressions {@link InputText} reads, by commons-compress's names. */
    public static final String[] KINDS = {
        CompressorStreamFactory.GZIP,
        CompressorStreamFactory.XZ,
        CompressorStreamFactory.BZIP2,
        CompressorStreamFactory.ZSTANDARD
    };

    /** {@code data} compressed as {@code kind} (one of {@link #KINDS}). */
    public static byte[] compress(String kind, byte[] data) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (OutputStream out = new CompressorStreamFactory().createCompressorOutputStream(kind, bytes)) {
            out.write(data);
        } catch (CompressorException e) {
            throw new IOException(e);
        }
        return bytes.toByteArray();
    }

    public static byte[] compress(String kind, String text) throws IOException {
        return compress(kind, text.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * A tar of {@code members} in iteration order: a name ending in "/" is a directory, a value starting with "->" a
     * symbolic link to the rest of it, anything else a regular file of those bytes.
     */
    public static byte[] tar(Map<String, byte[]> members) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream tar = new TarArchiveOutputStream(bytes)) {
            tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
            for (var m : members.entrySet()) {
                String v = new String(m.getValue(), StandardCharsets.ISO_8859_1);
                TarArchiveEntry e;
                if (v.startsWith("->")) {
                    e = new TarArchiveEntry(m.getKey(), TarConstants.LF_SYMLINK);
                    e.setLinkName(v.substring(2));
                } else {
                    e = new TarArchiveEntry(m.getKey());
                    if (!m.getKey().endsWith("/")) {
                        e.setSize(m.getValue().length);
                    }
                }
                tar.putArchiveEntry(e);
                if (e.isFile() && !e.isSymbolicLink()) {
                    tar.write(m.getValue());
                }
                tar.closeArchiveEntry();
            }
        }
        return bytes.toByteArray();
    }
}
