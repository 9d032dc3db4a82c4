package dev.m2q.kernels;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The FFM bindings, without a GPU: stand-in libcublas.so.12 and libcusolver.so.11, compiled here from C with the
 * cuBLAS/cuSOLVER signatures, log every argument they receive, and each call must arrive with its arguments in
 * cuBLAS's order and types (a wrong descriptor, order or GemmPlan mapping shows in the log or as a
 * WrongMethodTypeException). Needs a C compiler ({@code cc}) on PATH; skipped, saying so, without one.
 */
class VendorBindingTest {
    @TempDir
    Path tmp;

    private static final String LOG = """
            #include <stdio.h>
            static char buf[1 << 16];
            static int len;
            #define LOG(...) len += snprintf(buf + len, sizeof buf - len, __VA_ARGS__)
            const char* fake_log(void) { return buf; }
            """;

    private static final String CUBLAS = LOG + """
            int cublasCreate_v2(void** h) { *h = (void*) 0x1234; LOG("create\\n"); return 0; }
            int cublasGemmEx(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const void* a, int at,
                    int lda, const void* b, int bt, int ldb, const float* beta, void* c, int ct, int ldc, int compute,
                    int algo) {
                LOG("gemmEx %p %d %d %d %d %d %g %p %d %d %p %d %d %g %p %d %d %d %d\\n", h, ta, tb, m, n, k, *alpha, a,
                        at, lda, b, bt, ldb, *beta, c, ct, ldc, compute, algo);
                return 0;
            }
            int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* a, int lda,
                    const float* b, int ldb, const float* beta, float* c, int ldc) {
                LOG("sgemm %p %d %d %d %d %d %g %p %d %p %d %g %p %d\\n", h, ta, tb, m, n, k, *alpha, a, lda, b, ldb,
                        *beta, c, ldc);
                return 0;
            }
            int cublasSsyrk_v2(void* h, int uplo, int trans, int n, int k, const float* alpha, const float* a, int lda,
                    const float* beta, float* c, int ldc) {
                LOG("ssyrk %p %d %d %d %d %g %p %d %g %p %d\\n", h, uplo, trans, n, k, *alpha, a, lda, *beta, c, ldc);
                return 0;
            }
            int cublasScopy_v2(void* h, int n, const float* x, int incx, float* y, int incy) {
                LOG("scopy %p %d %p %d %p %d\\n", h, n, x, incx, y, incy);
                return n < 0 ? 13 : 0;
            }
            int cublasDcopy_v2(void* h, int n, const double* x, int incx, double* y, int incy) {
                LOG("dcopy %p %d %p %d %p %d\\n", h, n, x, incx, y, incy);
                return 0;
            }
            """;

    private static final String CUSOLVER = LOG + """
            int cusolverDnCreate(void** h) { *h = (void*) 0x5678; LOG("create\\n"); return 0; }
            int cusolverDnSpotrf_bufferSize(void* h, int u, int n, float* a, int lda, int* lwork) {
                LOG("spotrf_bufferSize %p %d %d %p %d\\n", h, u, n, a, lda);
                *lwork = 777;
                return 0;
            }
            int cusolverDnDpotrf_bufferSize(void* h, int u, int n, double* a, int lda, int* lwork) {
                LOG("dpotrf_bufferSize %p %d %d %p %d\\n", h, u, n, a, lda);
                *lwork = 778;
                return 0;
            }
            int cusolverDnSpotrf(void* h, int u, int n, float* a, int lda, float* w, int lw, int* info) {
                LOG("spotrf %p %d %d %p %d %p %d %p\\n", h, u, n, a, lda, w, lw, info);
                return 0;
            }
            int cusolverDnDpotrf(void* h, int u, int n, double* a, int lda, double* w, int lw, int* info) {
                LOG("dpotrf %p %d %d %p %d %p %d %p\\n", h, u, n, a, lda, w, lw, info);
                return n < 0 ? 3 : 0;
            }
            """;

    private static final String XTRTRI = """
            int cusolverDnXtrtri_bufferSize(void* h, int u, int d, long n, int t, void* a, long lda, unsigned long* dev,
                    unsigned long* host) {
                LOG("trtri_bufferSize %p %d %d %ld %d %p %ld\\n", h, u, d, n, t, a, lda);
                *dev = 5000000000UL;
                *host = 24;
                return 0;
            }
            int cusolverDnXtrtri(void* h, int u, int d, long n, int t, void* a, long lda, void* dw, unsigned long db,
                    void* hw, unsigned long hb, int* info) {
                LOG("trtri %p %d %d %ld %d %p %ld %p %lu %s %lu %p\\n", h, u, d, n, t, a, lda, dw, db,
                        hw == 0 ? "null" : "host", hb, info);
                return 0;
            }
            """;

    private Optional<Path> compiler() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path cc = Path.of(dir, "cc");
            if (Files.isExecutable(cc)) {
                return Optional.of(cc);
            }
        }
        return Optional.empty();
    }

    private void compile(Path cc, String source, Path lib) throws IOException, InterruptedException {
        Path c = Files.writeString(tmp.resolve(lib.getFileName() + ".c"), source);
        Files.createDirectories(lib.getParent());
        Process p = new ProcessBuilder(cc.toString(), "-shared", "-fPIC", "-o", lib.toString(), c.toString())
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), "cc: " + out);
    }

    private static String log(SymbolLookup lib) throws Throwable {
        MethodHandle h = Linker.nativeLinker()
                .downcallHandle(lib.find("fake_log").orElseThrow(), FunctionDescriptor.of(ADDRESS));
        return ((MemorySegment) h.invokeExact()).reinterpret(1 << 16).getString(0);
    }

    /** Runs the call as CudaContext.vendorCall does, minus the context, recording its name. */
    private static VendorBlas.Caller recording(List<String> names) {
        return (what, call) -> {
            names.add(what);
            try {
                call.run();
            } catch (RuntimeException e) {
                throw e;
            } catch (Throwable e) {
                throw new AssertionError(what, e);
            }
        };
    }

    @Test
    void everyCallReachesTheLibraryWithItsArgumentsInOrder() throws Throwable {
        Optional<Path> cc = compiler();
        assumeTrue(cc.isPresent(), "no C compiler (cc) on PATH to build the stand-in libraries");
        Path dir = tmp.resolve("lib");
        compile(cc.get(), CUBLAS, dir.resolve("libcublas.so.12"));
        compile(cc.get(), CUSOLVER + XTRTRI, dir.resolve("libcusolver.so.11"));
        VendorLibraries.Loaded loaded = VendorLibraries.load(
                VendorLibraries.find(new VendorLibraries.Search(List.of(dir), "test", false), 12080));
        assertEquals(
                "cuBLAS " + dir.resolve("libcublas.so.12") + ", cuSOLVER " + dir.resolve("libcusolver.so.11"),
                loaded.describe());
        List<String> names = new ArrayList<>();
        VendorBlas blas = new VendorBlas(recording(names), loaded.blas().orElseThrow());

        // y [5, 7] = x [5, 3]·W [7, 3]ᵀ: cuBLAS computes yᵀ = W·xᵀ, W transposed, every ld a row length
        blas.gemmBf16(GemmPlan.linear(5, 7, 3), 0x1000, 0x2000, 0.5f, 0x3000);
        blas.gemmF32(GemmPlan.rowMajor(5, 7, 1, false, false), 0x4000, 0x5000, 0f, 0x6000);
        blas.syrk(GemmPlan.Syrk.upperOfXtX(9, 4), 0x7000, 0x8000);
        blas.copy(true, 4, 0x8000, 5, 0x9000, 1);
        CudaException failed = assertThrows(CudaException.class, () -> blas.copy(false, -1, 0x8000, 5, 0x9000, 1));
        assertEquals("cublasScopy_v2: CUBLAS_STATUS_EXECUTION_FAILED (13)", failed.getMessage());
        assertEquals("""
                create
                gemmEx 0x1234 1 0 7 5 3 1 0x1000 14 3 0x2000 14 3 0.5 0x3000 0 7 68 -1
                sgemm 0x1234 0 0 7 5 1 1 0x4000 7 0x5000 1 0 0x6000 7
                ssyrk 0x1234 0 0 4 9 1 0x7000 4 1 0x8000 4
                dcopy 0x1234 4 0x8000 5 0x9000 1
                scopy 0x1234 -1 0x8000 5 0x9000 1
                """, log(loaded.blas().get()));
        assertEquals(
                List.of(
                        "cublasGemmEx",
                        "cublasCreate_v2",
                        "cublasSgemm_v2",
                        "cublasSsyrk_v2",
                        "cublasDcopy_v2",
                        "cublasScopy_v2"),
                names);
        VendorSolver solver = new VendorSolver(recording(names), loaded.solver().orElseThrow());
        assertTrue(solver.invertsToo());
        assertEquals(777, solver.potrfBufferSize(false, 300, 0xa000));
        assertEquals(778, solver.potrfBufferSize(true, 300, 0xa000));
        solver.potrf(false, 300, 0xa000, 0xb000, 777, 0xc000);
        assertEquals(
                List.of(5000000000L, 24L),
                java.util.Arrays.stream(solver.trtriBufferSize(true, 300, 0xa000))
                        .boxed()
                        .toList());
        solver.trtri(false, 300, 0xa000, 0xb000, 5000000000L, 24, 0xc000);
        CudaException bad = assertThrows(CudaException.class, () -> solver.potrf(true, -1, 0xa000, 0xb000, 1, 0xc000));
        assertEquals("cusolverDnDpotrf: CUSOLVER_STATUS_INVALID_VALUE (3)", bad.getMessage());
        // UPPER = 1 (the row-major lower triangle), non-unit diagonal = 0, CUDA_R_64F = 1, CUDA_R_32F = 0
        assertEquals("""
                create
                spotrf_bufferSize 0x5678 1 300 0xa000 300
                dpotrf_bufferSize 0x5678 1 300 0xa000 300
                spotrf 0x5678 1 300 0xa000 300 0xb000 777 0xc000
                trtri_bufferSize 0x5678 1 0 300 1 0xa000 300
                trtri 0x5678 1 0 300 0 0xa000 300 0xb000 5000000000 host 24 0xc000
                dpotrf 0x5678 1 -1 0xa000 -1 0xb000 1 0xc000
                """, log(loaded.solver().get()));
    }

    @Test
    void aSolverWithoutXtrtriFactorsOnlyAndAMissingSymbolIsNamed() throws Throwable {
        Optional<Path> cc = compiler();
        assumeTrue(cc.isPresent(), "no C compiler (cc) on PATH to build the stand-in libraries");
        Path old = tmp.resolve("old/libcusolver.so.11");
        compile(cc.get(), CUSOLVER, old);
        SymbolLookup lib = SymbolLookup.libraryLookup(old, java.lang.foreign.Arena.global());
        assertFalse(new VendorSolver(recording(new ArrayList<>()), lib).invertsToo());
        Path empty = tmp.resolve("empty/libcublas.so.12");
        compile(cc.get(), LOG, empty);
        SymbolLookup none = SymbolLookup.libraryLookup(empty, java.lang.foreign.Arena.global());
        CudaException e = assertThrows(CudaException.class, () -> new VendorBlas(recording(new ArrayList<>()), none));
        assertEquals("the vendor library has no symbol cublasCreate_v2", e.getMessage());
    }
}
