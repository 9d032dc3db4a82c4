package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The build's fatbins (what nvcc put in them, read back without the toolkit) and the rules on drivers and GPUs. */
class KernelBuildTest {
    static final Path CUDA_SOURCES = Path.of("src", "main", "cuda");
    static final List<String> TARGETS = List.of("sm_80", "sm_86", "sm_89", "sm_90", "compute_90");

    static List<String> cuFiles() throws IOException {
        try (Stream<Path> s = Files.list(CUDA_SOURCES)) {
            return s.map(p -> p.getFileName().toString())
                    .filter(n -> n.endsWith(".cu"))
                    .sorted()
                    .toList();
        }
    }

    static byte[] resource(String name) throws IOException {
        try (InputStream in = KernelBuildTest.class.getResourceAsStream(KernelBuild.DIR + name)) {
            return in == null ? null : in.readAllBytes();
        }
    }

    @Test
    void propertiesListEveryCuFileWhoseFatbinIsOnTheClassPath() throws IOException {
        KernelBuild build = KernelBuild.load();
        List<String> cu = cuFiles();
        assertTrue(cu.contains("probe.cu"), cu.toString());
        if (build.skipped()) {
            // -Dm2q.nvcc.skip=true: nothing compiled, and the provider says so.
            assertEquals(List.of(), build.fatbins());
            assertEquals(Optional.of(KernelBuild.SKIPPED), CudaContext.unavailableReason());
            for (String c : cu) {
                assertEquals(null, resource(c.replace(".cu", ".fatbin")), c);
            }
            return;
        }
        assertEquals(
                cu.stream().map(c -> c.replace(".cu", ".fatbin")).toList(),
                build.fatbins().stream().sorted().toList());
        for (String f : build.fatbins()) {
            byte[] b = resource(f);
            assertTrue(b != null && b.length > 0, f + " is on the class path and not empty");
            assertEquals(b.length, build.fatbin(f).length, f);
        }
        assertTrue(build.cudaVersion().matches("\\d+\\.\\d+"), build.cudaVersion());
        String[] mm = build.cudaVersion().split("\\.");
        assertEquals(Integer.parseInt(mm[0]) * 1000 + Integer.parseInt(mm[1]) * 10, build.cudaVersionInt());
        assertTrue(build.cudaVersionInt() >= 12000, "a CUDA 12+ toolkit built the kernels: " + build.cudaVersion());
        assertEquals(TARGETS, build.targets());
    }

    @Test
    void everyFatbinHoldsSassForAmpereToHopperAndPtxForTheJit() throws IOException {
        KernelBuild build = KernelBuild.load();
        assumeFalse(build.skipped(), "built with -Dm2q.nvcc.skip=true: no fatbins to read");
        assertTrue(build.fatbins().contains("probe.fatbin"), build.fatbins().toString());
        for (String f : build.fatbins()) {
            byte[] bytes = resource(f);
            Fatbin fb = Fatbin.parse(bytes);
            assertEquals(
                    TARGETS.stream().sorted().toList(),
                    fb.targets().stream().sorted().toList(),
                    f);
            for (Fatbin.Entry e : fb.entries()) {
                if (e.kind() == Fatbin.KIND_ELF && !e.compressed()) {
                    assertEquals(Fatbin.EM_CUDA, Fatbin.elfMachine(bytes, e), f + " " + e.target());
                }
                assertTrue(e.payloadSize() > 0, f + " " + e.target());
            }
        }
    }

    @Test
    void theFatbinReaderRefusesWhatIsNotAContainer() throws IOException {
        KernelBuild build = KernelBuild.load();
        assumeFalse(build.skipped(), "built with -Dm2q.nvcc.skip=true: no fatbin to damage");
        byte[] good = resource("probe.fatbin");
        assertThrows(IllegalArgumentException.class, () -> Fatbin.parse(Arrays.copyOf(good, good.length - 1)));
        assertThrows(IllegalArgumentException.class, () -> Fatbin.parse(Arrays.copyOf(good, 40)));
        byte[] badMagic = good.clone();
        badMagic[0] ^= 1;
        assertThrows(IllegalArgumentException.class, () -> Fatbin.parse(badMagic));
        byte[] badSize = good.clone();
        badSize[16 + 8] += 4; // the first entry's payload size: the walk no longer ends on the container's end
        assertThrows(IllegalArgumentException.class, () -> Fatbin.parse(badSize));
        byte[] badKind = good.clone();
        badKind[16] = 7;
        assertThrows(IllegalArgumentException.class, () -> Fatbin.parse(badKind));
    }

    @Test
    void aDriverOlderThanTheToolkitIsRefusedInOneLine() {
        assertEquals(
                Optional.of("the NVIDIA driver supports CUDA 12.4, older than the CUDA 13.0 these kernels were built"
                        + " with; update the driver"),
                KernelBuild.driverTooOld(12040, 13000));
        assertEquals(Optional.empty(), KernelBuild.driverTooOld(13000, 13000));
        assertEquals(Optional.empty(), KernelBuild.driverTooOld(13010, 13000));
        assertEquals(Optional.empty(), KernelBuild.driverTooOld(13000, 12060));
        assertTrue(KernelBuild.driverTooOld(12090, 13000).orElseThrow().contains("CUDA 12.9,"));
        assertEquals("12.6", KernelBuild.version(12060));
        assertEquals("13.1", KernelBuild.version(13010));
    }

    @Test
    void gpusRunTheSassOfTheirMajorOrThePtxOfAnOlderArchitecture() {
        KernelBuild b = new KernelBuild(false, "13.0", 13000, TARGETS, List.of("probe.fatbin"));
        for (int cc : new int[] {80, 86, 87, 89, 90, 100, 120}) {
            assertEquals(Optional.empty(), b.unsupportedGpu("GPU", cc), "sm_" + cc);
        }
        assertEquals(
                Optional.of("Tesla T4 is sm_75; these kernels have code for sm_80, sm_86, sm_89, sm_90, compute_90"
                        + " (Ampere or newer)"),
                b.unsupportedGpu("Tesla T4", 75));
        KernelBuild sassOnly = new KernelBuild(false, "13.0", 13000, List.of("sm_90"), List.of("probe.fatbin"));
        assertTrue(sassOnly.unsupportedGpu("B200", 100).isPresent(), "sm_90 SASS does not run on sm_100");
        assertTrue(sassOnly.unsupportedGpu("A100", 80).isPresent(), "nor on an older GPU");
    }

    @Test
    void aMissingLibcudaReadsAsNoDriver() {
        assertEquals(
                "no CUDA driver (libcuda.so.1 not found)",
                CudaContext.nativeLibraryProblem(new UnsatisfiedLinkError("Error while loading native library"
                        + " \"JCudaDriver-12.6.0-linux-x86_64\"\nlibcuda.so.1: cannot open shared object file: No"
                        + " such file or directory")));
        String other = CudaContext.nativeLibraryProblem(new UnsatisfiedLinkError("no space left on /tmp\nsecond"));
        assertEquals(
                "the JCuda driver library could not be loaded: UnsatisfiedLinkError: no space left on /tmp", other);
        assertFalse(other.contains("second"));
    }
}
