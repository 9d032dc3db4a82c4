package dev.m2q.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.apache.commons.compress.compressors.CompressorStreamFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InputTextTest {
    @TempDir
    Path tmp;

    /** Several lines with non-ASCII characters, long enough that every format compresses it. */
    static final String TEXT = "first line: naïve café\nsecond line — ünïcödé\n".repeat(40) + "last line, no break";

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    Path write(String name, byte[] bytes) throws IOException {
        return Files.write(tmp.resolve(name), bytes);
    }

    @Test
    void everyCompressionReadsTheSameTextWhateverTheName() throws IOException {
        Path plain = write("plain.txt", utf8(TEXT));
        assertEquals(
                List.of(new InputText.Part(plain.toString(), "plain.txt", TEXT, utf8(TEXT).length, false, "")),
                InputText.read(plain, "test file"));
        for (String kind : Packed.KINDS) {
            byte[] packed = Packed.compress(kind, TEXT);
            // A name that says nothing (and one that lies: compressed bytes as .txt) read the same.
            for (String name : List.of("data", "data.txt", "data." + kind)) {
                Path f = write(name, packed);
                List<InputText.Part> parts = InputText.read(f, "test file");
                assertEquals(1, parts.size(), kind);
                assertEquals(TEXT, parts.getFirst().text(), kind + " as " + name);
                assertEquals(f.toString(), parts.getFirst().where());
            }
        }
    }

    @Test
    void aCompressionSuffixLeavesTheNameOfACompressedTextOnly() throws IOException {
        String jsonl = "{\"text\": \"a\"}\n{\"text\": \"b\"}\n";
        InputText.Part zst = InputText.read(
                        write("shard.jsonl.zst", Packed.compress(CompressorStreamFactory.ZSTANDARD, jsonl)), "t")
                .getFirst();
        assertEquals("shard.jsonl", zst.name());
        assertEquals("shard", zst.stem());
        // Plain text named .gz is not compressed: its name stays.
        InputText.Part plain =
                InputText.read(write("notes.gz", utf8("x^2 + 1\n")), "t").getFirst();
        assertEquals("notes.gz", plain.name());
        assertEquals("x^2 + 1\n", plain.text()); // "x^" is a zlib header, which is not taken as compression
    }

    @Test
    void textStartingWithBzip2sLettersIsText() throws IOException {
        for (String text : List.of("BZh", "BZh9 is bzip2's header\n", "BZh91AY&SX\n")) {
            assertEquals(
                    text,
                    InputText.read(write("b.txt", utf8(text)), "t").getFirst().text());
        }
    }

    @Test
    void jsonLinesByNameOrByTheFirstLine() throws IOException {
        Set<String> keys = Set.of("text", "messages");
        assertTrue(part("c4-train.00000-of-01024.json", "\n{\"text\": \"a\", \"url\": \"u\"}\n")
                .jsonLines(keys));
        assertTrue(part("any.jsonl", "not json at all\n").jsonLines(keys));
        assertFalse(part("a.txt", "{\"prompt\": \"p\"}\n").jsonLines(keys));
        assertFalse(part("a.txt", "{ a brace, then prose\n").jsonLines(keys));
        assertFalse(part("a.txt", "prose\n{\"text\": \"a\"}\n").jsonLines(keys));
    }

    static InputText.Part part(String name, String text) {
        return new InputText.Part(name, name, text, text.length(), false, "");
    }

    @Test
    void tarMembersInArchiveOrderRegularFilesOnly() throws IOException {
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("shards/", new byte[0]);
        members.put("shards/b.txt", utf8("bee\n"));
        members.put("shards/._b.txt", new byte[] {0, 5, 22, 7, (byte) 0xff}); // macOS resource fork
        members.put("shards/link.txt", utf8("->b.txt"));
        members.put("shards/a.jsonl.gz", Packed.compress(CompressorStreamFactory.GZIP, "{\"text\": \"ay\"}\n"));
        members.put("shards/c.txt", utf8("sea"));
        for (String kind : new String[] {
            null,
            CompressorStreamFactory.GZIP,
            CompressorStreamFactory.XZ,
            CompressorStreamFactory.BZIP2,
            CompressorStreamFactory.ZSTANDARD
        }) {
            byte[] tar = Packed.tar(members);
            Path f = write("t", kind == null ? tar : Packed.compress(kind, tar));
            List<InputText.Part> parts = InputText.read(f, "t");
            assertEquals(
                    List.of("bee\n", "{\"text\": \"ay\"}\n", "sea"),
                    parts.stream().map(InputText.Part::text).toList(),
                    String.valueOf(kind));
            assertEquals(
                    List.of("b.txt", "a.jsonl", "c.txt"),
                    parts.stream().map(InputText.Part::name).toList());
            assertEquals(f + " (member shards/a.jsonl.gz)", parts.get(1).where());
        }
    }

    @Test
    void theBudgetRunsOverTarMembersInOrder() throws IOException {
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("a.txt", utf8("aaaa\nbbbb\n")); // 10 bytes
        members.put("b.txt", utf8("cccc\ndddd\n"));
        members.put("c.txt", utf8("eeee\n"));
        Path f = write("t.tar", Packed.tar(members));
        // 17 bytes: a whole, b cut after its first line (5 of the 7 left), c not read.
        List<InputText.Part> parts = InputText.read(f, "t", 17);
        assertEquals(2, parts.size());
        assertEquals("aaaa\nbbbb\n", parts.get(0).text());
        assertFalse(parts.get(0).cut());
        assertEquals("cccc\n", parts.get(1).text());
        assertTrue(parts.get(1).cut());
        assertEquals(5, parts.get(1).bytesRead());
        assertEquals("0.0 MiB", parts.get(1).size());
        assertEquals(3, InputText.read(f, "t", 25).size());
        // Spent exactly at the end of a: b is cut at 0 bytes (so a note can say so), c not read.
        List<InputText.Part> exact = InputText.read(f, "t", 10);
        assertEquals(2, exact.size());
        assertEquals("", exact.get(1).text());
        assertTrue(exact.get(1).cut());
    }

    @Test
    void aTruncatedOrCorruptStreamNamesTheFile() throws IOException {
        for (String kind : Packed.KINDS) {
            byte[] packed = Packed.compress(kind, TEXT);
            Path f = write("cut." + kind, Arrays.copyOf(packed, packed.length / 2));
            InputException e = assertThrows(InputException.class, () -> InputText.read(f, "calibration file"));
            String word = kind.equals(CompressorStreamFactory.GZIP) ? "gzip" : kind;
            assertTrue(
                    e.getMessage().startsWith(f + ": the " + word + " data is corrupt or truncated ("), e.getMessage());
            assertTrue(e.getMessage().endsWith("re-download or recompress the calibration file"), e.getMessage());
            // Damage in the middle rather than a missing end: refused naming the file, as a corrupt stream, or (a
            // zstd frame written without a content checksum, zstd-jni's default, decodes to garbage) as bad UTF-8.
            byte[] damaged = packed.clone();
            for (int i = damaged.length / 3; i < damaged.length / 3 + 16; i++) {
                damaged[i] ^= 0x5a;
            }
            Path g = write("bad." + kind, damaged);
            InputException d = assertThrows(InputException.class, () -> InputText.read(g, "calibration file"));
            assertTrue(
                    d.getMessage().startsWith(g + ": ") || d.getMessage().startsWith(g + ":1: not valid UTF-8"),
                    d.getMessage());
        }
    }

    @Test
    void invalidUtf8InATarMemberNamesFileMemberAndLine() throws IOException {
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("good.txt", utf8("fine\n"));
        members.put("bad.txt", "one\nna\u00efve\n".getBytes(StandardCharsets.ISO_8859_1));
        Path f = write("calib.tar.gz", Packed.compress(CompressorStreamFactory.GZIP, Packed.tar(members)));
        InputException e = assertThrows(InputException.class, () -> InputText.read(f, "calibration file"));
        assertTrue(
                e.getMessage()
                        .startsWith(f + " (member bad.txt):2: not valid UTF-8 (byte offset 6); a calibration file"),
                e.getMessage());
    }

    @Test
    void archivesOtherThanOneTarAreRefused() throws IOException {
        Path zip = tmp.resolve("p.zip");
        try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(zip))) {
            z.putNextEntry(new ZipEntry("a.txt"));
            z.write(utf8("hello"));
        }
        assertRefused(zip, "is a zip archive");

        Path nested = write(
                "n.tar",
                Packed.tar(Map.of(
                        "inner.tar.zst",
                        Packed.compress(CompressorStreamFactory.ZSTANDARD, Packed.tar(Map.of("a.txt", utf8("a")))))));
        assertRefused(nested, "(member inner.tar.zst): is itself a tar archive");

        Path empty = write("e.tar", Packed.tar(Map.of("d/", new byte[0])));
        assertRefused(empty, "a tar archive with no regular files");

        assertRefused(tmp.resolve("missing.txt.gz"), "cannot read test file: no such file");
        assertRefused(tmp, "cannot read test file: it is a directory");
    }

    static void assertRefused(Path f, String what) {
        InputException e = assertThrows(InputException.class, () -> InputText.read(f, "test file"));
        assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(what), e.getMessage());
    }

    @Test
    void aByteOrderMarkIsDropped() throws IOException {
        byte[] bom = {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF};
        byte[] bytes = new byte[3 + 2];
        System.arraycopy(bom, 0, bytes, 0, 3);
        bytes[3] = 'h';
        bytes[4] = 'i';
        assertEquals(
                "hi",
                InputText.read(write("bom.gz", Packed.compress(CompressorStreamFactory.GZIP, bytes)), "t")
                        .getFirst()
                        .text());
    }
}
