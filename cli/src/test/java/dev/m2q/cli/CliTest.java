package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line end to end on the bundled fixture: outputs, and exit code 2 with one line on bad input. */
class CliTest {
    static final Path FIXTURE =
            Path.of("..", "fixtures", "tiny-qwen2").toAbsolutePath().normalize();

    /**
     * A small RTN release of the fixture in {@code out} (2 × 32 calibration tokens: seconds), for the tests that
     * validate a release rather than the quantizer.
     */
    static Path rtnRelease(Path out) {
        Run q = run(
                "quantize",
                "--model",
                FIXTURE.toString(),
                "--out",
                out.toString(),
                "--method",
                "rtn",
                "--nsamples",
                "2",
                "--seqlen",
                "32");
        assertEquals(0, q.code(), q.err());
        return out;
    }

    record Run(int code, String out, String err) {}

    /**
     * {@code m2q validate} of {@code candidate} against {@code reference} over the first 128 held-out tokens of the
     * fixture, without the decode benchmark (seconds), with {@code extra} arguments appended.
     */
    static Run validateBrief(Path reference, Path candidate, String... extra) {
        List<String> a = new java.util.ArrayList<>(List.of(
                "validate",
                "--reference",
                reference.toString(),
                "--candidate",
                candidate.toString(),
                "--text",
                FIXTURE.resolve("heldout.txt").toString(),
                "--max-tokens",
                "128",
                "--decode-tokens",
                "0"));
        a.addAll(List.of(extra));
        return run(a.toArray(String[]::new));
    }

    /**
     * The command that starts m2q's {@link Main} in a second JVM on this test's class path (for a kill -9 in the
     * middle of a run), to which the test adds its arguments.
     */
    static List<String> inAnotherJvm() {
        return new java.util.ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules",
                "jdk.incubator.vector",
                "-cp",
                System.getProperty("java.class.path"),
                Main.class.getName()));
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    @SuppressWarnings("unchecked")
    void inspectListsEveryTensorOfTheFixture() throws IOException {
        Run r = run("inspect", FIXTURE.toString(), "--json");
        assertEquals(0, r.code(), r.err());
        // Read back strictly: the output is exactly the record, no key more or less.
        InspectCommand.Inspection j = Json.read(r.out(), InspectCommand.Inspection.class);
        List<InspectCommand.TensorEntry> tensors = j.tensors();
        // 8 layers × (2 norms + 7 weights + 3 biases) + embeddings + final norm + lm_head
        assertEquals(8 * 12 + 3, tensors.size());
        Map<String, Object> header = Json.parseObject(
                new String(readHeader(FIXTURE.resolve("model.safetensors")), java.nio.charset.StandardCharsets.UTF_8));
        for (InspectCommand.TensorEntry t : tensors) {
            Map<String, Object> h = (Map<String, Object>) header.get(t.name());
            assertEquals(h.get("dtype"), t.dtype(), t.name() + " dtype");
            assertEquals(
                    h.get("shape"), java.util.Arrays.stream(t.shape()).boxed().toList(), t.name() + " shape");
            List<Object> off = (List<Object>) h.get("data_offsets");
            assertEquals((Long) off.get(1) - (Long) off.get(0), t.bytes(), t.name() + " bytes");
        }
        assertEquals(tensors.size(), j.total().tensors());
        assertEquals("Qwen2ForCausalLM", j.model().architecture());
        Run table = run("inspect", FIXTURE.toString());
        assertEquals(0, table.code(), table.err());
        assertTrue(table.out().contains("Qwen2ForCausalLM (qwen2): 8 layers"), table.out());
        assertTrue(table.out().contains("model.layers.7.mlp.down_proj.weight"), table.out());
    }

    /** Reads the JSON header independently of core's reader: u64 little-endian length, then the text. */
    static byte[] readHeader(Path file) throws IOException {
        byte[] all = Files.readAllBytes(file);
        long len = java.nio.ByteBuffer.wrap(all, 0, 8)
                .order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .getLong();
        return java.util.Arrays.copyOfRange(all, 8, 8 + (int) len);
    }

    @Test
    void badPathsAndMalformedConfigsExitTwoWithOneLine(@TempDir Path tmp) throws IOException {
        assertBadInput(run("inspect", tmp.resolve("nope").toString()), "nope");
        assertBadInput(run("inspect", tmp.toString()), "config.json");
        Path broken = tmp.resolve("broken");
        Files.createDirectories(broken);
        Files.copy(FIXTURE.resolve("model.safetensors"), broken.resolve("model.safetensors"));
        Files.writeString(broken.resolve("config.json"), "{\"architectures\": [\"Qwen2ForCausalLM\"");
        assertBadInput(run("inspect", broken.toString()), "config.json");
        String cfg = Files.readString(FIXTURE.resolve("config.json"));
        Files.writeString(
                broken.resolve("config.json"), cfg.replace("\"num_hidden_layers\": 8", "\"num_hidden_layers\": 9"));
        assertBadInput(run("inspect", broken.toString()), "model.layers.8");
        Files.writeString(broken.resolve("config.json"), cfg.replace("Qwen2ForCausalLM", "GPT2LMHeadModel"));
        assertBadInput(run("inspect", broken.toString()), "GPT2LMHeadModel");
        assertBadInput(
                run(
                        "validate",
                        "--model",
                        FIXTURE.toString(),
                        "--text",
                        tmp.resolve("x.txt").toString()),
                "x.txt");
        assertBadInput(run("validate", "--model", FIXTURE.toString()), "--text");
        String heldout = FIXTURE.resolve("heldout.txt").toString();
        String ref = FIXTURE.toString();
        assertBadInput(
                run("validate", "--reference", ref, "--candidate", ref, "--text", heldout, "--baseline", "awq"),
                "--baseline");
        assertBadInput(
                run("validate", "--reference", ref, "--candidate", ref, "--text", heldout, "--min-top1", "95"),
                "--min-top1");
        assertBadInput(
                run(
                        "validate",
                        "--reference",
                        ref,
                        "--candidate",
                        tmp.resolve("none").toString(),
                        "--text",
                        heldout),
                "--candidate");
        assertBadInput(
                run(
                        "tokenize",
                        "--model",
                        tmp.toString(),
                        "--text",
                        FIXTURE.resolve("heldout.txt").toString()),
                "tokenizer.json");
        assertBadInput(run("bench", "--model", FIXTURE.toString(), "--kernels", "gpu"), "gpu");

        Path truncated = tmp.resolve("truncated");
        Files.createDirectories(truncated);
        Files.writeString(truncated.resolve("config.json"), cfg);
        Files.copy(FIXTURE.resolve("tokenizer.json"), truncated.resolve("tokenizer.json"));
        byte[] weights = Files.readAllBytes(FIXTURE.resolve("model.safetensors"));
        Files.write(truncated.resolve("model.safetensors"), java.util.Arrays.copyOf(weights, weights.length / 2));
        assertBadInput(run("inspect", truncated.toString()), "model.safetensors");
        assertBadInput(
                run(
                        "validate",
                        "--model",
                        truncated.toString(),
                        "--text",
                        FIXTURE.resolve("heldout.txt").toString()),
                "model.safetensors");
    }

    static void assertBadInput(Run r, String mentioned) {
        assertEquals(2, r.code(), "exit code; stderr: " + r.err());
        assertTrue(r.err().startsWith("m2q: "), r.err());
        assertTrue(r.err().contains(mentioned), "stderr should mention " + mentioned + ": " + r.err());
    }

    @Test
    void tokenizeThenValidateOnTheFixture(@TempDir Path tmp) throws IOException {
        Path text = tmp.resolve("t.txt");
        Files.writeString(text, "In the beginning God created the heaven and the earth.\n");
        Run t = run("tokenize", "--model", FIXTURE.toString(), "--text", text.toString());
        assertEquals(0, t.code(), t.err());
        List<Object> ids = (List<Object>) Json.parse(t.out().trim());
        assertTrue(ids.size() > 5 && ids.size() < 40, t.out());
        Run v = run("validate", "--model", FIXTURE.toString(), "--text", text.toString(), "--json");
        assertEquals(0, v.code(), v.err());
        Map<String, Object> j = Json.parseObject(v.out());
        assertEquals((long) ids.size(), j.get("tokens"));
        assertEquals((long) ids.size() - 1, j.get("predicted"));
        double ppl = (Double) j.get("ppl");
        // A familiar verse: the trained fixture must find it far likelier than uniform over 2048 tokens.
        assertTrue(ppl > 1 && ppl < 100, "ppl " + ppl);
    }

    @Test
    void everyCommandsHelpRendersWithoutPicocliWarnings() {
        // A bare % in a description is a format specifier to picocli: it warns on stderr (its own, not the
        // command line's) and prints the line unformatted. Every command's and subcommand's --help, rendered here.
        java.io.PrintStream saved = System.err;
        java.io.ByteArrayOutputStream caught = new java.io.ByteArrayOutputStream();
        List<String> names = new java.util.ArrayList<>();
        try {
            System.setErr(new java.io.PrintStream(caught, true, java.nio.charset.StandardCharsets.UTF_8));
            java.util.ArrayDeque<picocli.CommandLine> todo = new java.util.ArrayDeque<>();
            todo.add(new picocli.CommandLine(new Main()));
            while (!todo.isEmpty()) {
                picocli.CommandLine c = todo.poll();
                names.add(c.getCommandSpec().qualifiedName());
                assertTrue(
                        c.getUsageMessage().contains("Usage:"),
                        c.getCommandSpec().qualifiedName());
                todo.addAll(c.getSubcommands().values());
            }
        } finally {
            System.setErr(saved);
        }
        assertTrue(names.contains("m2q release") && names.contains("m2q eagle train"), names.toString());
        assertEquals("", caught.toString(java.nio.charset.StandardCharsets.UTF_8));
    }

    @Test
    void helpListsTheCommands() {
        Run r = run("--help");
        assertEquals(0, r.code());
        for (String c : List.of("inspect", "tokenize", "validate", "bench")) {
            assertTrue(r.out().contains(c), r.out());
        }
    }
}
