package dev.m2q.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.json.Json;
import dev.m2q.core.kernels.Devices;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --device} through the real entry point, on whatever machine runs the tests: the CUDA provider is on the
 * CLI's class path; where it cannot run, cuda exits 2 with its one-line reason and auto runs on the CPU, saying
 * why in one stderr line; a device that does not exist exits 2.
 */
class DeviceOptionTest {
    static final String FIXTURE = CliTest.FIXTURE.toString();
    static final String HELDOUT = CliTest.FIXTURE.resolve("heldout.txt").toString();

    static String[] bench(String device, String... extra) {
        List<String> a = new java.util.ArrayList<>(List.of(
                "bench", "--model", FIXTURE, "--prefill", "4", "--decode", "2", "--warmup", "0", "--repeat", "1"));
        a.addAll(List.of("--device", device));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    static Optional<String> cudaUnavailable() {
        return Devices.provider("cuda").orElseThrow().unavailableReason();
    }

    @Test
    void cudaWhereItCannotRunExitsTwoWithOneLine(@TempDir Path tmp) {
        Optional<String> why = cudaUnavailable();
        if (why.isEmpty()) {
            CliTest.Run r = CliTest.run(bench("cuda", "--kernels", "vector"));
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().startsWith("device: cuda ("), r.err());
            return;
        }
        String line = "m2q: --device cuda: " + why.get() + "; use --device cpu or auto" + System.lineSeparator();
        for (String[] args : List.of(
                bench("cuda"),
                new String[] {
                    "quantize",
                    "--model",
                    FIXTURE,
                    "--out",
                    tmp.resolve("q").toString(),
                    "--nsamples",
                    "2",
                    "--seqlen",
                    "32",
                    "--device",
                    "cuda"
                },
                new String[] {
                    "validate", "--model", FIXTURE, "--text", HELDOUT, "--max-tokens", "16", "--device", "cuda"
                })) {
            CliTest.Run r = CliTest.run(args);
            assertEquals(2, r.code(), args[0] + ": " + r.err());
            assertEquals(line, r.err(), args[0]);
            assertEquals("", r.out(), args[0]);
        }
    }

    @Test
    void verifyDeviceOnTheCpuHasNothingToVerify(@TempDir Path tmp) {
        CliTest.Run r = CliTest.run(
                "quantize",
                "--model",
                FIXTURE,
                "--out",
                tmp.resolve("q").toString(),
                "--nsamples",
                "2",
                "--seqlen",
                "32",
                "--device",
                "cpu",
                "--verify-device");
        assertEquals(0, r.code(), r.err());
        assertTrue(
                r.err().contains("verify-device: the run is on the Java kernels already; nothing to verify"), r.err());
    }

    @Test
    @SuppressWarnings("unchecked")
    void autoSaysOnceOnStderrWhereItRunsAndKeepsJsonClean() throws IOException {
        CliTest.Run r = CliTest.run(bench("auto", "--kernels", "vector", "--json"));
        assertEquals(0, r.code(), r.err());
        List<String> deviceLines =
                r.err().lines().filter(l -> l.startsWith("device: ")).toList();
        assertEquals(1, deviceLines.size(), r.err());
        Map<String, Object> j = Json.parseObject(r.out());
        Optional<String> why = cudaUnavailable();
        if (why.isPresent()) {
            assertEquals("device: cpu (vector kernels; CUDA not used: " + why.get() + ")", deviceLines.getFirst());
            assertEquals("cpu", j.get("device"));
        } else {
            assertTrue(deviceLines.getFirst().startsWith("device: cuda ("), deviceLines.getFirst());
            assertEquals("cuda", j.get("device"));
        }
        assertEquals(1, ((List<Object>) j.get("results")).size());

        CliTest.Run cpu = CliTest.run(bench("cpu", "--kernels", "vector,scalar"));
        assertEquals(0, cpu.code(), cpu.err());
        assertEquals("device: cpu (vector kernels)" + System.lineSeparator(), cpu.err());
        assertTrue(cpu.out().contains("\nvector ") && cpu.out().contains("\nscalar "), cpu.out());
    }

    @Test
    void anUnknownDeviceExitsTwoNamingIt() {
        CliTest.assertBadInput(CliTest.run(bench("bogus")), "bogus");
        CliTest.assertBadInput(CliTest.run("quantize", "--model", FIXTURE, "--out", "x", "--device", "bogus"), "bogus");
        CliTest.assertBadInput(
                CliTest.run("validate", "--model", FIXTURE, "--text", HELDOUT, "--device", "bogus"), "bogus");
    }

    @Test
    void theKernelSuiteNeedsAGpuAndTheModelSuiteAModel() {
        CliTest.assertBadInput(CliTest.run("bench", "--repeat", "1"), "--model is required");
        if (cudaUnavailable().isPresent()) {
            CliTest.Run r = CliTest.run("bench", "--suite", "kernels", "--device", "auto");
            CliTest.assertBadInput(r, "--suite kernels times the CUDA kernels and needs a GPU");
            assertTrue(r.err().contains(cudaUnavailable().get()), r.err());
        }
    }
}
