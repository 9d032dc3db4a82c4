package dev.m2q.core.io;

import dev.m2q.core.InputException;
import dev.m2q.core.json.Json;
import dev.m2q.core.json.JsonException;
import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.commons.compress.archivers.ArchiveException;
import org.apache.commons.compress.archivers.ArchiveStreamFactory;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.compressors.CompressorException;
import org.apache.commons.compress.compressors.CompressorStreamFactory;

/**
 * The text of a user's input file (calibration, prompts, tasks, evaluation text): the one reader every command's
 * text inputs go through.
 *
 * <p><b>Forms, detected by content</b> (the file's leading bytes, never its name): plain text; one gzip, xz, bzip2 or
 * zstd stream ({@link CompressorStreamFactory#detect}; concatenated gzip members, as pigz and bgzip write, are read
 * as one); a tar archive ({@link ArchiveStreamFactory#detect}), itself plain or compressed in one of those four.
 * A tar gives one text per regular-file member, in archive order; directories, links, devices and macOS's
 * {@code ._*} resource-fork members are skipped. Each member is detected on its own, so a tar of {@code .jsonl.zst}
 * shards reads; a member that is itself an archive is refused (unpack it first). Zip and 7z archives are refused
 * with that advice. Other magic numbers that commons-compress knows (zlib, lzma, lz4, snappy, Unix compress) are not
 * taken as compression: two printable letters such as {@code x^} open a zlib stream, so text could be mistaken. For
 * the same reason bzip2 needs more than its letters {@code BZh}: a block-size digit and a block magic.
 *
 * <p><b>Text:</b> strictly UTF-8 (invalid bytes are refused naming the line and the byte offset); a leading BOM is
 * dropped. Errors name the file, and for a tar the member: {@code c4.tar.gz (member shard-3.jsonl):12: …}. A corrupt
 * or truncated compressed stream is an {@link InputException} naming the file, never a stack trace.
 *
 * <p><b>Budget:</b> a reader can stop after {@code budget} bytes of text (over all members of a tar, in order): the
 * text that crosses it is cut at its last line break within the budget, and later members are not read.
 */
public final class InputText {
    private InputText() {}

    /** The compressions read, by commons-compress's names, with the word used in messages. */
    private static final Map<String, String> COMPRESSIONS = Map.of(
            CompressorStreamFactory.GZIP, "gzip",
            CompressorStreamFactory.XZ, "xz",
            CompressorStreamFactory.BZIP2, "bzip2",
            CompressorStreamFactory.ZSTANDARD, "zstd");

    /** Name suffixes that say "compressed": dropped from {@link Part#name} of a text that was compressed. */
    private static final List<String> COMPRESSED_SUFFIXES = List.of(".gz", ".gzip", ".xz", ".bz2", ".zst", ".zstd");

    /** Java arrays stop a little below 2^31 elements. */
    private static final int MAX_ARRAY = Integer.MAX_VALUE - 9;

    /**
     * One text read from an input.
     *
     * @param where the file, or {@code "file (member m)"} for a tar member: how messages name it; append
     *     {@code ":" + line} for a line
     * @param name the file's or the member's base name, less a compression suffix ({@code .gz}, {@code .zst}, …) when
     *     its content was compressed: {@code shard.jsonl.zst} reads as {@code shard.jsonl}
     * @param text the text, BOM dropped
     * @param bytesRead UTF-8 bytes of text read
     * @param cut whether the budget stopped the read before the end of this text
     * @param size the whole text's size in words ({@code "200.0 MiB"}, {@code "gzip, 40.0 MiB compressed"}); only
     *     when {@code cut}, else empty
     */
    public record Part(String where, String name, String text, long bytesRead, boolean cut, String size) {
        /** The text's lines as {@link java.io.BufferedReader#readLine} splits them (at \n, \r\n and \r). */
        public List<String> lines() {
            return text.lines().toList();
        }

        /** {@link #name} less its last extension: {@code arc-easy.jsonl.gz} gives {@code arc-easy}. */
        public String stem() {
            int dot = name.lastIndexOf('.');
            return dot > 0 ? name.substring(0, dot) : name;
        }

        /**
         * Whether the text is JSON lines: its name ends in {@code .jsonl}, or its first non-blank line is a JSON
         * object holding one of {@code keys}. The second rule reads a published {@code c4-train.….json.gz} shard,
         * or JSON lines under any name; a plain text whose first line happens to be such an object is rare enough,
         * and it would fail loudly on its first non-JSON line.
         */
        public boolean jsonLines(Set<String> keys) {
            if (name.toLowerCase(Locale.ROOT).endsWith(".jsonl")) {
                return true;
            }
            String first = text.lines()
                    .filter(l -> !l.isBlank())
                    .findFirst()
                    .orElse("")
                    .strip();
            if (!first.startsWith("{")) {
                return false;
            }
            try {
                Map<String, Object> obj = Json.parseObject(first);
                return keys.stream().anyMatch(obj::containsKey);
            } catch (JsonException e) {
                return false;
            }
        }
    }

    /**
     * Every text of {@code file}: one for a plain or compressed file, one per regular member of a tar.
     *
     * @param what what the file is, for messages: "calibration file", "prompt file", "task file", …
     * @throws InputException naming the file (and member, and line) for a missing or unreadable file, a corrupt or
     *     truncated stream, invalid UTF-8, a zip or 7z archive, a nested archive, an empty tar, or more than 2 GiB of
     *     text in one file or member
     */
    public static List<Part> read(Path file, String what) {
        List<Part> parts = read(file, what, Long.MAX_VALUE);
        for (Part p : parts) {
            if (p.cut()) {
                throw new InputException(
                        p.where() + ": holds more than 2 GiB of text, more than one " + what + " can be; split it");
            }
        }
        return parts;
    }

    /**
     * As {@link #read(Path, String)}, reading at most {@code budget} bytes of text: the text that crosses it ends
     * at its last line break within the budget (at its last whole UTF-8 character when there is none) and says
     * {@link Part#cut}; members after it are not read.
     */
    public static List<Part> read(Path file, String what, long budget) {
        if (Files.isDirectory(file)) {
            throw new InputException(file + ": cannot read " + what + ": it is a directory");
        }
        List<Part> parts = new ArrayList<>();
        try (InputStream raw = Files.newInputStream(file)) {
            InputStream in = new BufferedInputStream(raw);
            String compression = compression(in, file.toString(), what);
            if (compression != null) {
                in = open(in, compression, file.toString(), what);
            }
            String where = file.toString();
            String name = baseName(file.getFileName().toString(), compression);
            if (isTar(in, where, word(compression), what)) {
                readTar(in, file, what, budget, parts);
                if (parts.isEmpty()) {
                    throw new InputException(file + ": a tar archive with no regular files (" + what + ")");
                }
            } else {
                parts.add(part(in, where, name, word(compression), what, budget, sizeOf(file, compression)));
            }
        } catch (NoSuchFileException e) {
            throw new InputException(file + ": cannot read " + what + ": no such file", e);
        } catch (IOException e) {
            throw new InputException(file + ": cannot read " + what + ": " + e, e);
        }
        return List.copyOf(parts);
    }

    /** The members of a tar, in order, until the budget is spent. */
    private static void readTar(InputStream in, Path file, String what, long budget, List<Part> parts)
            throws IOException {
        TarArchiveInputStream tar = new TarArchiveInputStream(in, StandardCharsets.UTF_8.name());
        long left = budget;
        for (TarArchiveEntry e = next(tar, file, what); e != null; e = next(tar, file, what)) {
            String base = e.getName().substring(e.getName().lastIndexOf('/') + 1);
            if (!e.isFile() || e.isLink() || e.isSymbolicLink() || e.isDirectory() || base.startsWith("._")) {
                continue;
            }
            String where = file + " (member " + e.getName() + ")";
            InputStream member = new BufferedInputStream(tar);
            String compression = compression(member, where, what);
            if (compression != null) {
                member = open(member, compression, where, what);
            }
            if (isTar(member, where, memberWord(compression), what)) {
                throw new InputException(where + ": is itself a tar archive; m2q reads one level of tar: unpack it"
                        + " and pass its files (" + what + ")");
            }
            // A budget spent exactly at the end of the last member read cuts this one at 0 bytes, so a note says so.
            Part p = part(
                    member,
                    where,
                    baseName(base, compression),
                    memberWord(compression),
                    what,
                    left,
                    size(e.getSize(), compression));
            parts.add(p);
            left -= p.bytesRead();
            if (p.cut()) {
                return;
            }
        }
    }

    private static TarArchiveEntry next(TarArchiveInputStream tar, Path file, String what) {
        try {
            return tar.getNextEntry();
        } catch (IOException | RuntimeException e) {
            throw corrupt(file.toString(), "tar", what, e);
        }
    }

    /** The commons-compress name of the stream's compression when it is one m2q reads, else null. */
    private static String compression(InputStream in, String where, String what) {
        try {
            String name = CompressorStreamFactory.detect(in);
            if (name.equals(CompressorStreamFactory.BZIP2) && !bzip2(in)) {
                return null;
            }
            return COMPRESSIONS.containsKey(name) ? name : null;
        } catch (CompressorException e) {
            if (e.getCause() instanceof IOException io) {
                throw new InputException(where + ": cannot read " + what + ": " + io, io);
            }
            return null; // no known signature: not compressed
        }
    }

    /** bzip2's first block (or end of stream) magic after "BZh1" to "BZh9", as real bzip2 data has. */
    private static final byte[][] BZIP2_MAGICS = {
        {0x31, 0x41, 0x59, 0x26, 0x53, 0x59}, {0x17, 0x72, 0x45, 0x38, 0x50, (byte) 0x90}
    };

    /**
     * Whether what commons-compress takes for bzip2 (the three letters "BZh", which a text may start with) is
     * bzip2 data: a block size digit, then a block or end-of-stream magic.
     */
    private static boolean bzip2(InputStream in) {
        byte[] head;
        try {
            in.mark(10);
            head = in.readNBytes(10);
            in.reset();
        } catch (IOException e) {
            return true; // let the decoder report it, naming the file
        }
        if (head.length < 10 || head[3] < '1' || head[3] > '9') {
            return false;
        }
        for (byte[] magic : BZIP2_MAGICS) {
            if (Arrays.equals(head, 4, 10, magic, 0, 6)) {
                return true;
            }
        }
        return false;
    }

    private static InputStream open(InputStream in, String compression, String where, String what) {
        try {
            return new BufferedInputStream(
                    new CompressorStreamFactory(true).createCompressorInputStream(compression, in));
        } catch (CompressorException e) {
            throw corrupt(where, COMPRESSIONS.get(compression), what, e.getCause() != null ? e.getCause() : e);
        } catch (LinkageError e) {
            // zstd-jni carries native libraries for the common platforms only.
            throw new InputException(where + ": is zstd-compressed, and zstd-jni's native library does not load on"
                    + " this platform (" + e.getMessage() + "): decompress it first with zstd -d (" + what + ")");
        }
    }

    /** Whether the stream is a tar; refuses zip and 7z, which m2q does not read. */
    private static boolean isTar(InputStream in, String where, String kindWord, String what) {
        String kind;
        try {
            kind = ArchiveStreamFactory.detect(in);
        } catch (ArchiveException e) {
            if (e.getCause() instanceof IOException io) {
                throw corrupt(where, kindWord, what, io);
            }
            return false;
        }
        if (kind.equals(ArchiveStreamFactory.ZIP)
                || kind.equals(ArchiveStreamFactory.JAR)
                || kind.equals(ArchiveStreamFactory.SEVEN_Z)) {
            throw new InputException(where + ": is a " + kind + " archive; m2q reads text, gzip, xz, bzip2 or zstd"
                    + " files and tar archives of them: unpack it, or repack it as a tar (" + what + ")");
        }
        return kind.equals(ArchiveStreamFactory.TAR);
    }

    /**
     * Reads at most {@code budget} bytes (plus one, to see whether more follow) and decodes them, cut as the class
     * comment says.
     */
    private static Part part(
            InputStream in, String where, String name, String kindWord, String what, long budget, String wholeSize) {
        byte[] bytes;
        try {
            bytes = in.readNBytes((int) Math.min(budget, MAX_ARRAY - 1) + 1);
        } catch (IOException | RuntimeException e) {
            // Decoders of untrusted bytes fail with IOExceptions, and on some damage with unchecked exceptions
            // (an index out of range in a Huffman table): either way the input is bad, not m2q.
            throw corrupt(where, kindWord, what, e);
        }
        long limit = Math.min(budget, MAX_ARRAY - 1);
        boolean cut = bytes.length > limit;
        if (cut) {
            int end = (int) limit;
            int newline = end - 1;
            while (newline >= 0 && bytes[newline] != '\n') {
                newline--;
            }
            if (newline >= 0) {
                end = newline + 1;
            } else {
                while (end > 0 && (bytes[end] & 0xC0) == 0x80) {
                    end--; // bytes[end] continues a character: cut before the character starts
                }
            }
            bytes = Arrays.copyOf(bytes, end);
        }
        String text = decode(bytes, where, what);
        return new Part(
                where,
                name,
                text.startsWith("\uFEFF") ? text.substring(1) : text,
                bytes.length,
                cut,
                cut ? wholeSize : "");
    }

    /** Strict UTF-8, naming the line and byte offset of the first invalid byte. */
    private static String decode(byte[] bytes, String where, String what) {
        CharsetDecoder decoder = StandardCharsets.UTF_8
                .newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length);
        CoderResult r = decoder.decode(in, out, true);
        if (!r.isError()) {
            r = decoder.flush(out);
        }
        if (r.isError()) {
            int at = in.position();
            int line = 1;
            for (int i = 0; i < at; i++) {
                line += bytes[i] == '\n' ? 1 : 0;
            }
            throw new InputException(where + ":" + line + ": not valid UTF-8 (byte offset " + at + "); a " + what
                    + " must be UTF-8 text: convert it, e.g. with iconv -t UTF-8");
        }
        out.flip();
        return out.toString();
    }

    private static InputException corrupt(String where, String kind, String what, Throwable e) {
        if (kind.equals("file")) {
            return new InputException(where + ": cannot read " + what + ": " + e, e);
        }
        String why = e.getMessage() != null
                ? e.getMessage()
                : e instanceof EOFException ? "the data ends early" : "no detail";
        return new InputException(
                where + ": the " + kind + " data is corrupt or truncated ("
                        + e.getClass().getSimpleName() + ": " + why + "); re-download or recompress the " + what,
                e);
    }

    /** How messages call a stream's data: "gzip", "zstd", … or "file" when it is not compressed. */
    private static String word(String compression) {
        return compression == null ? "file" : COMPRESSIONS.get(compression);
    }

    /** As {@link #word} for a tar member: an uncompressed member's damage is the tar's. */
    private static String memberWord(String compression) {
        return compression == null ? "tar" : COMPRESSIONS.get(compression);
    }

    private static String baseName(String name, String compression) {
        if (compression == null) {
            return name;
        }
        String lower = name.toLowerCase(Locale.ROOT);
        for (String suffix : COMPRESSED_SUFFIXES) {
            if (lower.endsWith(suffix) && lower.length() > suffix.length()) {
                return name.substring(0, name.length() - suffix.length());
            }
        }
        return name;
    }

    private static String sizeOf(Path file, String compression) {
        try {
            return size(Files.size(file), compression);
        } catch (IOException e) {
            return "size unknown";
        }
    }

    /** A file's or member's size in words, as stored ("gzip, 40.0 MiB compressed" when compressed). */
    private static String size(long bytes, String compression) {
        String s = bytes >= 1L << 30
                ? String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30))
                : bytes > 0 ? mib(bytes) : "size unknown";
        return compression == null ? s : COMPRESSIONS.get(compression) + ", " + s + " compressed";
    }

    /** Bytes in MiB with one decimal, as the calibration notes print them. */
    public static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1 << 20));
    }
}
