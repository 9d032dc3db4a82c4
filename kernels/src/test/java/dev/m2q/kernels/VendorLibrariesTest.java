package dev.m2q.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where cuBLAS and cuSOLVER are looked for, in which order, and what the device line says when they are not. */
class VendorLibrariesTest {
    @TempDir
    Path tmp;

    private Path lib(String dir, String soname) throws IOException {
        Path d = Files.createDirectories(tmp.resolve(dir));
        return Files.writeString(d.resolve(soname), "not an ELF file");
    }

    @Test
    void theNewestReleaseTheDriverRunsWinsAndTheFirstFolderHoldingItIsUsed() throws IOException {
        lib("a", "libcublas.so.12");
        Path b13 = lib("b", "libcublas.so.13");
        lib("c", "libcublas.so.13");
        Path lt13 = lib("c", "libcublasLt.so.13");
        lib("a", "libcusolver.so.12");
        Path solver = lib("b", "libcusolver.so.12");
        List<Path> dirs = List.of(tmp.resolve("a"), tmp.resolve("b"), tmp.resolve("c"));
        VendorLibraries.Found f = assertInstanceOf(
                VendorLibraries.Found.class,
                VendorLibraries.find(new VendorLibraries.Search(dirs, "test", false), 13000));
        assertEquals(13, f.release().cudaMajor());
        assertEquals(
                b13, f.blas(), "libcublas.so.13 from the first folder that has it, before .so.12 in an earlier one");
        assertEquals(List.of(lt13), f.blasDeps());
        assertEquals(Optional.of(solver), f.solver(), "cuSOLVER from cuBLAS's folder first");
    }

    @Test
    void aDriverOlderThanTheNewestReleaseGetsTheOneItRuns() throws IOException {
        Path a12 = lib("a", "libcublas.so.12");
        lib("a", "libcublas.so.13");
        Path s11 = lib("a", "libcusolver.so.11");
        lib("a", "libcusolver.so.12");
        VendorLibraries.Found f = assertInstanceOf(
                VendorLibraries.Found.class,
                VendorLibraries.find(new VendorLibraries.Search(List.of(tmp.resolve("a")), "test", false), 12080));
        assertEquals(a12, f.blas());
        assertEquals(Optional.of(s11), f.solver(), "CUDA 12's cuSOLVER is libcusolver.so.11");
        assertEquals(List.of(), f.blasDeps(), "a dependency not found is left to the system loader");
    }

    @Test
    void theOverrideIsTheWholeSearchAndNoneTurnsTheLibrariesOff() throws IOException {
        String list = tmp.resolve("x") + java.io.File.pathSeparator + tmp.resolve("y");
        Map<String, String> env = Map.of("M2Q_CUDA_LIBS", list, "LD_LIBRARY_PATH", "/elsewhere");
        VendorLibraries.Search s = VendorLibraries.search(env, null, tmp);
        assertEquals(List.of(tmp.resolve("x"), tmp.resolve("y")), s.dirs());
        assertEquals("M2Q_CUDA_LIBS", s.source());
        VendorLibraries.Search p = VendorLibraries.search(env, tmp.resolve("z").toString(), tmp);
        assertEquals(List.of(tmp.resolve("z")), p.dirs(), "the system property comes before the environment");
        VendorLibraries.Search off = VendorLibraries.search(Map.of("M2Q_CUDA_LIBS", "none"), null, tmp);
        assertTrue(off.disabled());
        VendorLibraries.Missing m = assertInstanceOf(VendorLibraries.Missing.class, VendorLibraries.find(off, 13000));
        assertEquals("turned off by M2Q_CUDA_LIBS=none", m.reason());
    }

    @Test
    void theDefaultSearchStartsWithLdLibraryPathAndEndsInAWheelsNvidiaFolders() throws IOException {
        Path venv = tmp.resolve("venv");
        Path site = Files.createDirectories(venv.resolve("lib/python3.12/site-packages"));
        Files.createDirectories(venv.resolve("lib/python3.9/site-packages"));
        Map<String, String> env =
                Map.of("LD_LIBRARY_PATH", tmp.resolve("l1") + ":" + tmp.resolve("l2"), "VIRTUAL_ENV", venv.toString());
        List<Path> dirs = VendorLibraries.search(env, null, tmp).dirs();
        assertEquals(List.of(tmp.resolve("l1"), tmp.resolve("l2")), dirs.subList(0, 2));
        int cublas = dirs.indexOf(site.resolve("nvidia/cublas/lib"));
        int cu13 = dirs.indexOf(site.resolve("nvidia/cu13/lib"));
        int older = dirs.indexOf(venv.resolve("lib/python3.9/site-packages/nvidia/cublas/lib"));
        assertTrue(cublas > dirs.indexOf(Path.of("/usr/local/cuda/lib64")), "system CUDA before the wheels");
        assertTrue(cu13 >= 0 && cu13 < cublas, "CUDA 13 wheels' shared folder first");
        assertTrue(older > cublas, "python3.12 before python3.9: " + dirs);
        assertTrue(dirs.contains(site.resolve("nvidia/cusolver/lib")));
    }

    @Test
    void nothingFoundNamesTheSonamesAndTheFixAndTheDeviceLineSaysM2qKernels() {
        VendorLibraries.Lookup l =
                VendorLibraries.find(new VendorLibraries.Search(List.of(tmp.resolve("empty")), "test", false), 13000);
        VendorLibraries.Loaded loaded = VendorLibraries.load(l);
        assertEquals(Optional.empty(), loaded.blas());
        assertEquals(
                "m2q kernels (no libcublas.so.13 or libcublas.so.12 in 1 folders searched; set M2Q_CUDA_LIBS to"
                        + " the folder that holds them)",
                loaded.describe());
        VendorLibraries.Missing old = assertInstanceOf(
                VendorLibraries.Missing.class,
                VendorLibraries.find(new VendorLibraries.Search(List.of(tmp), "test", false), 11080));
        assertTrue(old.reason().startsWith("the driver (CUDA 11.8) is older than CUDA 12"), old.reason());
    }

    /**
     * dlopen refuses the text file; HotSpot first prints a warning about the stack guard of a library it cannot
     * read as ELF, which is expected here (it changes nothing when the load fails).
     */
    @Test
    void aFileThatIsNotALibraryLeavesTheWorkToM2qKernelsSayingWhich() throws IOException {
        Path fake = lib("a", "libcublas.so.12");
        VendorLibraries.Loaded loaded = VendorLibraries.load(
                VendorLibraries.find(new VendorLibraries.Search(List.of(tmp.resolve("a")), "test", false), 12080));
        assertEquals(Optional.empty(), loaded.blas());
        assertTrue(loaded.describe().startsWith("m2q kernels (" + fake + " did not load: "), loaded.describe());
    }

    @Test
    void cudaFoldersAreOrderedByVersionNumbersNotText() throws IOException {
        for (String v : List.of("cuda-12.9", "cuda-12.10", "cuda-13.0", "cudaX")) {
            Files.createDirectories(tmp.resolve(v));
        }
        assertEquals(
                List.of(tmp.resolve("cuda-13.0"), tmp.resolve("cuda-12.10"), tmp.resolve("cuda-12.9")),
                VendorLibraries.newestFirst(tmp, "cuda-"));
    }

    @Test
    void aDevicePointersAddressIsJcudasNativeValuePlusItsOffset() {
        CUdeviceptr p = new CUdeviceptr();
        assertEquals(0L, VendorBlas.address(p));
        assertEquals(4096L, VendorBlas.address(p.withByteOffset(4096)));
    }
}
