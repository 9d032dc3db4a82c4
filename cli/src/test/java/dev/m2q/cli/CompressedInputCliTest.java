package dev.m2q.cli;

import static dev.m2q.cli.CliTest.FIXTURE;
import static dev.m2q.cli.CliTest.assertBadInput;
import static dev.m2q.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.cli.CliTest.Run;
import dev.m2q.core.calib.CalibrationSet;
import dev.m2q.core.io.Manifest;
import dev.m2q.core.json.Json;
import dev.m2q.core.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.apache.commons.compress.compressors.CompressorStreamFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compressed and tar inputs through the commands (detected by content, exit 2 naming file and member on damage), and
 * short calibration text with the default --nsamples.
 */
class CompressedInputCliTest {
    @TempDir
    Path tmp;

    static byte[] compress(String kind, byte[] data) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (OutputStream out = new CompressorStreamFactory().createCompressorOutputStream(kind, bytes)) {
            out.write(data);
        }
        return bytes.toByteArray();
    }

    static byte[] fixtureCalibration() throws IOException {
        return Files.readAllBytes(FIXTURE.resolve("calibration.txt"));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> calibrationOf(Path release) throws IOException {
        return (Map<String, Object>) Json.parseObject(Files.readString(release.resolve(Manifest.FILE)))
                .get("calibration");
    }

    Run quantize(Path out, String... more) {
        List<String> args = new java.util.ArrayList<>(
                List.of("quantize", "--model", FIXTURE.toString(), "--out", out.toString(), "--method", "rtn"));
        args.addAll(List.of(more));
        return run(args.toArray(String[]::new));
    }

    @Test
    void gzipBytesUnderATxtNameCalibrateAsThePlainText() throws Exception {
        Path plain = Files.write(tmp.resolve("calib.txt"), fixtureCalibration());
        // Compressed bytes under a name that says plain text: detected by content.
        Path lying =
                Files.write(tmp.resolve("other.txt"), compress(CompressorStreamFactory.GZIP, fixtureCalibration()));
        Run a = quantize(tmp.resolve("a"), "--calib", plain.toString(), "--nsamples", "2", "--seqlen", "32");
        Run b = quantize(tmp.resolve("b"), "--calib", lying.toString(), "--nsamples", "2", "--seqlen", "32");
        assertEquals(0, a.code(), a.err());
        assertEquals(0, b.code(), b.err());
        Map<String, Object> ca = calibrationOf(tmp.resolve("a"));
        Map<String, Object> cb = calibrationOf(tmp.resolve("b"));
        assertEquals(ca.get("sha256"), cb.get("sha256"));
        assertEquals(ca.get("tokens"), cb.get("tokens"));
    }

    @Test
    void validateReadsAnXzText() throws Exception {
        byte[] text = "In the beginning God created the heaven and the earth.\n".getBytes(StandardCharsets.UTF_8);
        Path plain = Files.write(tmp.resolve("t.txt"), text);
        Path xz = Files.write(tmp.resolve("t.txt.xz"), compress(CompressorStreamFactory.XZ, text));
        Run p = run("validate", "--model", FIXTURE.toString(), "--text", plain.toString(), "--json");
        Run x = run("validate", "--model", FIXTURE.toString(), "--text", xz.toString(), "--json");
        assertEquals(0, x.code(), x.err());
        assertEquals(
                Json.parseObject(p.out()).get("ppl"), Json.parseObject(x.out()).get("ppl"));
        assertEquals(
                Json.parseObject(p.out()).get("tokens"),
                Json.parseObject(x.out()).get("tokens"));
    }

    @Test
    void aTruncatedGzipIsExit2NamingIt() throws Exception {
        byte[] gz = compress(CompressorStreamFactory.GZIP, fixtureCalibration());
        Path cut = Files.write(tmp.resolve("c4-train.00000-of-01024.json.gz"), Arrays.copyOf(gz, gz.length / 2));
        Run r = quantize(tmp.resolve("q"), "--calib", cut.toString(), "--nsamples", "2", "--seqlen", "32");
        assertBadInput(r, cut + ": the gzip data is corrupt or truncated (");
        assertEquals(1, r.err().lines().count(), "one line, no stack trace: " + r.err());
        assertFalse(Files.exists(tmp.resolve("q")));
    }

    @Test
    void badUtf8InATarMemberIsExit2NamingFileAndMember() throws Exception {
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("calib/good.txt", fixtureCalibration());
        members.put("calib/latin1.txt", "one\nna\u00efve\n".getBytes(StandardCharsets.ISO_8859_1));
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream tar = new TarArchiveOutputStream(bytes)) {
            for (var m : members.entrySet()) {
                TarArchiveEntry e = new TarArchiveEntry(m.getKey());
                e.setSize(m.getValue().length);
                tar.putArchiveEntry(e);
                tar.write(m.getValue());
                tar.closeArchiveEntry();
            }
        }
        Path tgz =
                Files.write(tmp.resolve("calib.tar.gz"), compress(CompressorStreamFactory.GZIP, bytes.toByteArray()));
        Run r = quantize(tmp.resolve("q"), "--calib", tgz.toString(), "--nsamples", "2", "--seqlen", "32");
        assertBadInput(r, tgz + " (member calib/latin1.txt):2: not valid UTF-8 (byte offset 6)");
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void shortTextWithTheDefaultCountUsesTheWholeSamplesItHolds() throws Exception {
        // The fixture's first 14 000 bytes, cut at a line break: a few windows of 1024 tokens (the default --seqlen
        // 2048 lowered to the fixture's max_position_embeddings), far fewer than the default 128.
        String all = new String(fixtureCalibration(), StandardCharsets.UTF_8);
        String part = all.substring(0, all.lastIndexOf('\n', 14_000) + 1);
        Path shortText = Files.writeString(tmp.resolve("short.txt"), part);
        int held = CalibrationSet.load(List.of(shortText), Tokenizer.load(FIXTURE.resolve("tokenizer.json")), null)
                        .totalTokens()
                / 1024;
        assertTrue(held >= 1 && held < 10, "held " + held);

        Run r = quantize(tmp.resolve("q"), "--calib", shortText.toString());
        assertEquals(0, r.code(), r.err());
        String line = "calibration: text holds " + held + " samples of 1024 tokens, using " + held + " (default 128)";
        assertEquals(1, r.err().lines().filter(l -> l.equals(line)).count(), r.err());
        // The release records the samples actually drawn (the resume fingerprint holds the same map and count).
        Map<String, Object> c = calibrationOf(tmp.resolve("q"));
        assertEquals((long) held, c.get("nsamples"));
        assertEquals(1024L, c.get("seqlen"));

        // An explicit request the text cannot meet stays exit 2; one it can meet says nothing.
        assertBadInput(
                quantize(tmp.resolve("q2"), "--calib", shortText.toString(), "--nsamples", "128"),
                "calibration set too small");
        Run ok = quantize(tmp.resolve("q3"), "--calib", shortText.toString(), "--nsamples", "1");
        assertEquals(0, ok.code(), ok.err());
        assertFalse(ok.err().contains("calibration: text holds"), ok.err());
    }

    @Test
    void autoRoundsDefaultBatchShrinksWithShortTextAnExplicitOneDoesNot() throws Exception {
        // An explicit --seqlen 64 keeps this fast; the count is still the default, so it still fits the text.
        String all = new String(fixtureCalibration(), StandardCharsets.UTF_8);
        Path shortText = Files.writeString(tmp.resolve("short.txt"), all.substring(0, all.lastIndexOf('\n', 1000) + 1));
        int held = CalibrationSet.load(List.of(shortText), Tokenizer.load(FIXTURE.resolve("tokenizer.json")), null)
                        .totalTokens()
                / 64;
        assertTrue(held >= 1 && held < 8, "the text must hold fewer windows than AutoRound's batch of 8: " + held);
        String[] args = {
            "quantize",
            "--model",
            FIXTURE.toString(),
            "--out",
            tmp.resolve("ar").toString(),
            "--method",
            "autoround",
            "--iters",
            "0",
            "--seqlen",
            "64",
            "--calib",
            shortText.toString()
        };
        Run r = run(args);
        assertEquals(0, r.code(), r.err());
        String line = "calibration: text holds " + held + " samples of 64 tokens, using " + held
                + " (default 128), in AutoRound batches of " + held + " (default 8)";
        assertEquals(1, r.err().lines().filter(l -> l.equals(line)).count(), r.err());
        assertTrue(r.err().contains("batch " + held + ")"), r.err());
        assertEquals((long) held, calibrationOf(tmp.resolve("ar")).get("nsamples"));

        String[] explicit = Arrays.copyOf(args, args.length + 2);
        explicit[args.length] = "--batch-size";
        explicit[args.length + 1] = "8";
        explicit[4] = tmp.resolve("ar2").toString();
        assertBadInput(
                run(explicit),
                "--batch-size 8 is more than the " + held + " samples of 64 tokens the calibration text holds");
    }
}
