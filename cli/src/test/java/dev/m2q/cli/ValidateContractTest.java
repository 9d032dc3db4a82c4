package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.io.Manifest;
import dev.m2q.core.io.Sha256;
import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q validate}'s contract (issue #19, items 3 and 4): it trusts no weight, config or tokenizer file it has not
 * hashed, the verdict names what it covers (default gates, {@code --no-gates}), and report I/O fails in one line with
 * exit 2, after the figures when the run has them. Every case runs on a copy of one RTN release of the fixture;
 * tampered copies fail at the integrity check, before any model is loaded, so they cost only the hashing.
 */
class ValidateContractTest {
    @TempDir
    static Path tmp;

    static Path release;

    /** A tensor of model.safetensors whose bytes the tampering cases change. */
    static final String TENSOR = "model.layers.3.mlp.down_proj.qweight";

    @BeforeAll
    static void quantize() {
        release = CliTest.rtnRelease(tmp.resolve("release"));
    }

    static CliTest.Run validate(Path candidate, String... extra) {
        return CliTest.validateBrief(CliTest.FIXTURE, candidate, extra);
    }

    /** Exit 1, the integrity failure named in the summary, and no accuracy run. */
    static void assertIntegrityFailure(CliTest.Run r, String... named) {
        assertEquals(1, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("FAILED"), r.out());
        for (String n : named) {
            assertTrue(r.out().contains("integrity: " + n), "should name " + n + ":\n" + r.out());
        }
        assertFalse(r.out().contains("reference perplexity"), "accuracy must not run on a tampered release");
    }

    // ---- 1. validate trusts nothing it has not hashed

    @Test
    void aPristineReleasePassesItsIntegrityCheck() throws IOException {
        assertTrue(
                Manifest.verifyRelease(release).ok(),
                Manifest.verifyRelease(release).problems().toString());
    }

    @Test
    void anUnlistedFileFails() throws IOException {
        Path c = copy("unlisted");
        editManifest(c, m -> files(m).remove("generation_config.json"));
        Files.writeString(c.resolve("chat_template.jinja"), "{{ messages }}");
        Files.writeString(c.resolve("README.md"), "not covered: people write READMEs beside a release");
        CliTest.Run r = validate(c, "--no-report");
        assertIntegrityFailure(r, "generation_config.json: not listed", "chat_template.jinja: not listed");
        assertFalse(r.out().contains("README.md"), r.out());
    }

    @Test
    void aMissingFileFails() throws IOException {
        Path c = copy("missing");
        Files.delete(c.resolve("tokenizer_config.json"));
        assertIntegrityFailure(
                validate(c, "--no-report"), "tokenizer_config.json: listed in m2q-manifest.json but not");
    }

    @Test
    void aChangedByteWithItsFileEntryRemovedFails() throws IOException {
        Path c = copy("byte-unlisted");
        flipByte(c);
        editManifest(c, m -> files(m).remove("model.safetensors"));
        assertIntegrityFailure(validate(c, "--no-report"), "model.safetensors: not listed", TENSOR + ": bytes changed");
    }

    @Test
    void aChangedByteWithTheFileHashUpdatedButNotTheTensorHashFails() throws IOException {
        Path c = copy("byte-rehashed");
        flipByte(c);
        String sha = Sha256.ofFile(c.resolve("model.safetensors"));
        editManifest(c, m -> files(m).put("model.safetensors", sha));
        CliTest.Run r = validate(c, "--no-report");
        assertIntegrityFailure(r, TENSOR + ": bytes changed");
        assertFalse(r.out().contains("integrity: model.safetensors"), "the file hash itself matches: " + r.out());
    }

    @Test
    void aManifestWithoutTensorHashesFails() throws IOException {
        Path c = copy("no-tensors");
        editManifest(c, m -> m.remove("tensors"));
        assertIntegrityFailure(validate(c, "--no-report"), "m2q-manifest.json: has no \"tensors\" section");
    }

    @Test
    @SuppressWarnings("unchecked")
    void aTensorTheManifestDoesNotListFails() throws IOException {
        Path c = copy("tensor-unlisted");
        editManifest(c, m -> ((Map<String, Object>) m.get("tensors")).remove(TENSOR));
        assertIntegrityFailure(validate(c, "--no-report"), TENSOR + ": in model.safetensors but not listed");
    }

    // ---- 2. the verdict names what it covers

    @Test
    @SuppressWarnings("unchecked")
    void withNoGateOptionTheDefaultsApplyAndAreRecorded() throws IOException {
        Path report = tmp.resolve("report-defaults");
        CliTest.Run r = validate(release, "--report-dir", report.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(
                r.out().contains("PASSED: integrity (")
                        && r.out().contains("perplexity increase ≤ 5% (default)")
                        && r.out().contains("mean KL ≤ 0.1 nats (default)")
                        && r.out().contains("top-1 agreement ≥ 0.85 (default)"),
                r.out());
        Map<String, Object> j = Json.parseObject(Files.readString(report.resolve("validation.json")));
        List<Map<String, Object>> gates = (List<Map<String, Object>>) j.get("gates");
        assertEquals(
                List.of("--max-ppl-increase", "--max-kl", "--min-top1"),
                gates.stream().map(g -> g.get("gate")).toList());
        assertTrue(gates.stream().allMatch(g -> Boolean.TRUE.equals(g.get("default"))), gates.toString());
        assertTrue(gates.stream().allMatch(g -> Boolean.TRUE.equals(g.get("passed"))), gates.toString());
        assertTrue(((String) j.get("verdict")).startsWith("PASSED: "), j.toString());
        String md = Files.readString(report.resolve("validation.md"));
        assertTrue(md.contains("| `--max-kl` | 0.100000 | default |"), md);
    }

    @Test
    @SuppressWarnings("unchecked")
    void aGateGivenOverridesOnlyItsOwnDefault() throws IOException {
        Path report = tmp.resolve("report-override");
        CliTest.Run r = validate(release, "--report-dir", report.toString(), "--max-kl", "0");
        assertEquals(1, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("gate --max-kl: mean KL is "), r.out());
        assertFalse(r.out().contains("gate --max-kl (default)"), r.out());
        List<Map<String, Object>> gates =
                (List<Map<String, Object>>) Json.parseObject(Files.readString(report.resolve("validation.json")))
                        .get("gates");
        assertEquals(
                List.of(true, false, true),
                gates.stream().map(g -> g.get("default")).toList());
        assertEquals(0.0, (Double) gates.get(1).get("limit"));
    }

    @Test
    @SuppressWarnings("unchecked")
    void noGatesSaysAccuracyNotGated() throws IOException {
        Path report = tmp.resolve("report-nogates");
        CliTest.Run r = validate(release, "--report-dir", report.toString(), "--no-gates");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("accuracy not gated (--no-gates)"), r.out());
        assertFalse(r.out().contains("PASSED"), r.out());
        Map<String, Object> j = Json.parseObject(Files.readString(report.resolve("validation.json")));
        assertEquals(List.of(), j.get("gates"));
        assertTrue(Files.readString(report.resolve("validation.md")).contains("accuracy not gated"));
        CliTest.assertBadInput(validate(release, "--no-report", "--no-gates", "--min-top1", "0.5"), "--no-gates");
    }

    /**
     * A release that is intact on disk but wrong in its weights (every down_proj's codes replaced by seeded random
     * nibbles, the manifest then rewritten to match) passes integrity and the format rules, and fails the default
     * gates: the "PASSED at 25 % top-1" of the issue.
     */
    @Test
    void aBadReleaseFailsTheDefaultGates() throws IOException {
        Path c = copy("garbage");
        Path file = c.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        SplittableRandom rnd = new SplittableRandom(5);
        for (int layer = 0; layer < 8; layer++) {
            long[] range = dataRange(file, "model.layers." + layer + ".mlp.down_proj.qweight");
            for (long i = range[0]; i < range[1]; i++) {
                bytes[(int) i] = (byte) rnd.nextInt(256);
            }
        }
        Files.write(file, bytes);
        reseal(c);
        CliTest.Run r = validate(c, "--no-report");
        assertEquals(1, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("gate --max-ppl-increase (default): perplexity increase is "), r.out());
        assertFalse(r.out().contains("integrity:") || r.out().contains("format:"), r.out());
    }

    // ---- 3. report I/O

    @Test
    void aReportDirThatIsAFileIsRefusedBeforeAnyWork() throws IOException {
        Path file = tmp.resolve("a-file");
        Files.writeString(file, "x");
        for (Path dir : List.of(file, file.resolve("sub"))) {
            CliTest.Run r = validate(release, "--report-dir", dir.toString());
            CliTest.assertBadInput(r, dir.toString());
            assertTrue(r.err().contains("--report-dir DIR") && r.err().contains("--no-report"), r.err());
            assertEquals(1, r.err().strip().lines().count(), "one line and nothing computed: " + r.err());
            assertEquals("", r.out());
        }
    }

    @Test
    void aReportThatCannotBeWrittenAtTheEndPrintsTheFiguresThenOneLine() throws IOException {
        Path report = tmp.resolve("report-blocked");
        // A non-empty directory where validation.json goes: the folder is writable (the check before the run
        // passes), and only the final rename fails, as a full disk would.
        Files.createDirectories(report.resolve("validation.json").resolve("x"));
        CliTest.Run r = validate(release, "--report-dir", report.toString());
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("reference perplexity") && r.out().contains("PASSED"), r.out());
        List<String> errors = r.err().lines().filter(l -> l.startsWith("m2q: ")).toList();
        assertEquals(1, errors.size(), r.err());
        assertTrue(errors.get(0).contains("cannot write the validation report"), r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    // ---- helpers

    private static Path copy(String name) throws IOException {
        Path dst = tmp.resolve(name);
        Files.createDirectories(dst);
        try (Stream<Path> s = Files.list(release)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                Files.copy(p, dst.resolve(p.getFileName()));
            }
        }
        return dst;
    }

    interface Edit {
        void apply(Map<String, Object> manifest);
    }

    private static void editManifest(Path dir, Edit edit) throws IOException {
        Path f = dir.resolve(Manifest.FILE);
        Map<String, Object> m = Json.parseObject(Files.readString(f));
        edit.apply(m);
        Files.writeString(f, Json.writePretty(m), StandardCharsets.UTF_8);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> files(Map<String, Object> manifest) {
        return (Map<String, Object>) manifest.get("files");
    }

    /** Rewrites the manifest's file and tensor hashes from what is on disk, as a tool that "fixes" it would. */
    private static void reseal(Path dir) throws IOException {
        editManifest(dir, m -> {
            Map<String, Object> files = new TreeMap<>();
            for (String name : files(m).keySet()) {
                files.put(name, Sha256.ofFile(dir.resolve(name)));
            }
            m.put("files", files);
            m.put("tensors", new TreeMap<String, Object>(Manifest.tensorHashes(dir)));
        });
    }

    /** Flips one bit inside {@link #TENSOR}'s bytes in model.safetensors. */
    private static void flipByte(Path dir) throws IOException {
        Path file = dir.resolve("model.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        bytes[(int) dataRange(file, TENSOR)[0] + 100] ^= 0x10;
        Files.write(file, bytes);
    }

    /** [start, end) of a tensor's bytes in a single safetensors file: 8 + header length + data_offsets. */
    private static long[] dataRange(Path file, String name) throws IOException {
        byte[] all = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(Arrays.copyOf(all, 8))
                .order(ByteOrder.LITTLE_ENDIAN)
                .getLong();
        Map<String, Object> header = Json.parseObject(new String(all, 8, (int) n, StandardCharsets.UTF_8));
        List<?> offsets = (List<?>) ((Map<?, ?>) header.get(name)).get("data_offsets");
        return new long[] {8 + n + (Long) offsets.get(0), 8 + n + (Long) offsets.get(1)};
    }
}
