package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code m2q quantize --bits 8} end to end on the bundled fixture (docs/FORMATS-8BIT.md): each format's release
 * passes {@code inspect --check}, validates, and costs far less than the 4-bit one; {@code --w4-kernel} on it exits
 * 2 naming the bits; a damaged 8-bit release is flagged; bits other than 4 and 8 exit 2.
 */
class EightBitEndToEndTest {
    static final Path FIXTURE = CliTest.FIXTURE;
    static final String[] SMALL = {"--nsamples", "4", "--seqlen", "64", "--seed", "7"};

    static String[] quantize(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("quantize", "--model", FIXTURE.toString(), "--out", out.toString()));
        a.addAll(List.of(SMALL));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    static CliTest.Run validate(Path candidate, String... extra) {
        List<String> a = new ArrayList<>(List.of(
                "validate",
                "--reference",
                FIXTURE.toString(),
                "--candidate",
                candidate.toString(),
                "--text",
                FIXTURE.resolve("heldout.txt").toString(),
                "--max-tokens",
                "512",
                "--decode-tokens",
                "0",
                "--no-report",
                "--json"));
        a.addAll(List.of(extra));
        return CliTest.run(a.toArray(String[]::new));
    }

    /** The candidate's mean KL(bf16 ‖ release) from validate --json, whose report names {@code scheme}. */
    @SuppressWarnings("unchecked")
    static double kl(Path candidate, String scheme) {
        CliTest.Run v = validate(candidate);
        assertEquals(0, v.code(), v.out() + v.err());
        Map<String, Object> acc =
                (Map<String, Object>) Json.parseObject(v.out()).get("accuracy");
        return (Double) ((Map<String, Object>) acc.get("candidate")).get("kl_mean");
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> quantizationConfig(Path release) throws IOException {
        return (Map<String, Object>) Json.parseObject(Files.readString(release.resolve("config.json")))
                .get("quantization_config");
    }

    static void assertLoadable(Path release) {
        CliTest.Run check = CliTest.run("inspect", "--check", release.toString(), "--tp", "1,2");
        assertEquals(0, check.code(), check.out() + check.err());
    }

    @Test
    @SuppressWarnings("unchecked")
    void everyFormatWritesAnEightBitReleaseThatChecksAndValidates(@TempDir Path tmp) throws IOException {
        Path w4 = tmp.resolve("w4");
        Path gptq = tmp.resolve("gptq8");
        CliTest.Run r4 = CliTest.run(quantize(w4));
        assertEquals(0, r4.code(), r4.err());
        CliTest.Run r8 = CliTest.run(quantize(gptq, "--bits", "8"));
        assertEquals(0, r8.code(), r8.err());
        assertTrue(r8.err().contains(" W8 g128 sym"), r8.err());
        Map<String, Object> qc = quantizationConfig(gptq);
        assertEquals("gptq", qc.get("quant_method"));
        assertEquals(8L, qc.get("bits"));
        assertEquals(qc, Json.parseObject(Files.readString(gptq.resolve("quantize_config.json"))));
        assertLoadable(gptq);
        double kl4 = kl(w4, "W4A16");
        double kl8 = kl(gptq, "W8A16");
        // 8-bit steps are 17 times finer (2·absmax/255 against /15), so the weight error's energy is ~1/289 of the
        // 4-bit one's and the KL, second order in it, falls by about as much; /20 leaves a wide margin while still
        // failing if the release were 4-bit codes under an 8-bit label (or read back at the wrong width).
        assertTrue(kl8 > 0 && kl8 < kl4 / 20, "W8 KL " + kl8 + " vs W4 KL " + kl4);

        // The W4A16 kernel has no 8-bit twin: exit 2, naming the bits.
        CliTest.assertBadInput(validate(gptq, "--w4-kernel"), "8-bit");

        Path ar = tmp.resolve("ar8");
        CliTest.Run a = CliTest.run(quantize(
                ar,
                "--method",
                "autoround",
                "--iters",
                "8",
                "--batch-size",
                "2",
                "--bits",
                "8",
                "--format",
                "auto_round"));
        assertEquals(0, a.code(), a.err());
        Map<String, Object> aqc = quantizationConfig(ar);
        assertEquals("auto-round", aqc.get("quant_method"));
        assertEquals(8L, aqc.get("bits"));
        assertLoadable(ar);
        double klAr = kl(ar, "W8A16");
        assertTrue(klAr > 0 && klAr < kl4 / 20, "AutoRound W8 KL " + klAr + " vs W4 KL " + kl4);

        Path ct = tmp.resolve("ct8");
        CliTest.Run c = CliTest.run(
                quantize(ct, "--method", "rtn", "--bits", "8", "--format", "compressed-tensors", "--kv-cache", "fp8"));
        assertEquals(0, c.code(), c.err());
        Map<String, Object> cqc = quantizationConfig(ct);
        Map<String, Object> weights = (Map<String, Object>)
                ((Map<String, Object>) ((Map<String, Object>) cqc.get("config_groups")).get("group_0")).get("weights");
        assertEquals(8L, weights.get("num_bits"));
        assertTrue(cqc.get("kv_cache_scheme") instanceof Map, cqc.toString());
        assertLoadable(ct);
        CliTest.Run cv = validate(ct);
        assertEquals(0, cv.code(), cv.out() + cv.err());
    }

    @Test
    void aDamagedEightBitReleaseIsFlagged(@TempDir Path tmp) throws IOException {
        Path good = tmp.resolve("good");
        CliTest.Run r = CliTest.run(quantize(good, "--method", "rtn", "--bits", "8"));
        assertEquals(0, r.code(), r.err());

        // A config saying 4 bits over the 8-bit tensors: a violation naming the first qweight.
        Path four = copy(good, tmp.resolve("four"));
        Map<String, Object> config = Json.parseObject(Files.readString(four.resolve("config.json")));
        @SuppressWarnings("unchecked")
        Map<String, Object> qc = (Map<String, Object>) config.get("quantization_config");
        qc.put("bits", 4);
        Files.writeString(four.resolve("config.json"), Json.writePretty(config));
        Files.writeString(four.resolve("quantize_config.json"), Json.writePretty(qc));
        assertEquals(4L, quantizationConfig(four).get("bits"), "the edit took");
        CliTest.Run check = CliTest.run("inspect", "--check", four.toString());
        assertEquals(1, check.code(), check.out() + check.err());
        assertTrue(
                check.out()
                        .contains(
                                "model.layers.0.self_attn.q_proj.qweight: qweight has shape [64, 256] for K ="
                                        + " 256 (g_idx): 4 codes per word, the 8-bit packing, but quantization_config.bits is 4"),
                check.out());
        CliTest.assertBadInput(CliTest.run("inspect", four.toString()), "packed at 8 bits");

        // The 4-bit zeros word in one qzeros entry of the 8-bit release: engines would read zero 120, not 128.
        Path zeros = copy(good, tmp.resolve("zeros"));
        plantI32(zeros.resolve("model.safetensors"), "model.layers.2.mlp.up_proj.qzeros", 3, 0x77777777);
        CliTest.Run z = CliTest.run("inspect", "--check", zeros.toString());
        assertEquals(1, z.code(), z.out() + z.err());
        assertTrue(
                z.out()
                        .contains("model.layers.2.mlp.up_proj.qzeros: qzeros[0, 3] is 0x77777777 (1 words differ); with"
                                + " sym every word is 0x7F7F7F7F at bits 8"),
                z.out());
        // validate fails it (exit 1) on its integrity and format checks, naming the tensor, before measuring anything.
        CliTest.Run v = validate(zeros);
        assertEquals(1, v.code(), v.out() + v.err());
        assertTrue(v.out().contains("format: model.layers.2.mlp.up_proj.qzeros: qzeros[0, 3] is 0x77777777"), v.out());
    }

    @Test
    void otherBitsAndEightBitActivationsExitTwo(@TempDir Path tmp) {
        for (String bits : List.of("3", "2", "16")) {
            CliTest.assertBadInput(CliTest.run(quantize(tmp.resolve("x"), "--bits", bits)), "--bits " + bits);
        }
        CliTest.assertBadInput(
                CliTest.run(quantize(
                        tmp.resolve("x"), "--bits", "8", "--format", "compressed-tensors", "--scheme", "w4a8-fp8")),
                "--scheme w4a8-fp8 with --bits 8");
    }

    static Path copy(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path f : files.toList()) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
        }
        return to;
    }

    /** Overwrites element {@code index} of an I32 tensor with {@code value}, located through the file's own header. */
    @SuppressWarnings("unchecked")
    static void plantI32(Path file, String tensor, long index, int value) throws IOException {
        byte[] header = CliTest.readHeader(file);
        Map<String, Object> h = Json.parseObject(new String(header, java.nio.charset.StandardCharsets.UTF_8));
        Map<String, Object> t = (Map<String, Object>) h.get(tensor);
        assertEquals("I32", t.get("dtype"));
        long begin = (Long) ((List<Object>) t.get("data_offsets")).getFirst();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(value);
            ch.write(b.flip(), 8L + header.length + begin + 4 * index);
        }
    }
}
