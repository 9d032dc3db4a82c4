package dev.m2q.kernels;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Arrays;
import jcuda.Pointer;

/**
 * The few cuBLAS calls m2q uses, bound through the FFM API (no JNI): cublasGemmEx (bf16 operands, fp32 output and
 * accumulation, CUBLAS_COMPUTE_32F), cublasSgemm_v2, cublasSsyrk_v2 and the strided copies. Device pointers are
 * the addresses of {@link DeviceBuffer}s; scalars are host pointers (cuBLAS's default pointer mode).
 *
 * <p>cuBLAS works in the context current on the calling thread, here {@link CudaContext}'s primary context (the
 * one the CUDA runtime inside cuBLAS would pick too), on the legacy default stream that m2q's launches use, so its
 * work is ordered with theirs. Every call runs through {@link CudaContext#vendorCall}: the context made current,
 * the status checked, then a cuCtxSynchronize that surfaces an asynchronous failure naming the call, as after
 * m2q's own launches. The handle lives as long as the process. Math mode stays CUBLAS_DEFAULT_MATH: Sgemm and
 * Ssyrk run in fp32, not TF32.
 */
final class VendorBlas {
    static final int OP_N = 0;
    static final int OP_T = 1;
    static final int FILL_LOWER = 0;
    static final int FILL_UPPER = 1;
    static final int CUDA_R_32F = 0;
    static final int CUDA_R_64F = 1;
    static final int CUDA_R_16BF = 14;
    static final int CUBLAS_COMPUTE_32F = 68;
    static final int CUBLAS_GEMM_DEFAULT = -1;

    private final Caller caller;
    private final MethodHandle create;
    private final MethodHandle gemmEx;
    private final MethodHandle sgemm;
    private final MethodHandle ssyrk;
    private final MethodHandle scopy;
    private final MethodHandle dcopy;
    /** Created once, under the context's lock; read without it afterwards. */
    private volatile MemorySegment handle;

    VendorBlas(Caller caller, SymbolLookup lib) {
        this.caller = caller;
        this.create = bind(lib, "cublasCreate_v2", ADDRESS);
        this.gemmEx = bind(
                lib,
                "cublasGemmEx",
                ADDRESS, // handle
                JAVA_INT, // transa
                JAVA_INT, // transb
                JAVA_INT, // m
                JAVA_INT, // n
                JAVA_INT, // k
                ADDRESS, // alpha (host)
                ADDRESS, // A
                JAVA_INT, // Atype
                JAVA_INT, // lda
                ADDRESS, // B
                JAVA_INT, // Btype
                JAVA_INT, // ldb
                ADDRESS, // beta (host)
                ADDRESS, // C
                JAVA_INT, // Ctype
                JAVA_INT, // ldc
                JAVA_INT, // computeType
                JAVA_INT); // algo
        this.sgemm = bind(
                lib,
                "cublasSgemm_v2",
                ADDRESS, // handle
                JAVA_INT, // transa
                JAVA_INT, // transb
                JAVA_INT, // m
                JAVA_INT, // n
                JAVA_INT, // k
                ADDRESS, // alpha
                ADDRESS, // A
                JAVA_INT, // lda
                ADDRESS, // B
                JAVA_INT, // ldb
                ADDRESS, // beta
                ADDRESS, // C
                JAVA_INT); // ldc
        this.ssyrk = bind(
                lib,
                "cublasSsyrk_v2",
                ADDRESS, // handle
                JAVA_INT, // uplo
                JAVA_INT, // trans
                JAVA_INT, // n
                JAVA_INT, // k
                ADDRESS, // alpha
                ADDRESS, // A
                JAVA_INT, // lda
                ADDRESS, // beta
                ADDRESS, // C
                JAVA_INT); // ldc
        this.scopy = bind(lib, "cublasScopy_v2", ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT);
        this.dcopy = bind(lib, "cublasDcopy_v2", ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT);
    }

    /**
     * Column-major C [m, n] = alpha·op(A)·op(B) + beta·C through cublasGemmEx: A and B bf16, C fp32, fp32
     * accumulation (CUBLAS_COMPUTE_32F, the tensor cores' bf16 path).
     */
    void gemmBf16(GemmPlan p, long first, long second, float beta, long c) {
        caller.call("cublasGemmEx", () -> {
            try (Arena a = Arena.ofConfined()) {
                status("cublasGemmEx", (int) gemmEx.invokeExact(
                        handle(),
                        p.transFirst() ? OP_T : OP_N,
                        p.transSecond() ? OP_T : OP_N,
                        p.m(),
                        p.n(),
                        p.k(),
                        a.allocateFrom(JAVA_FLOAT, 1f),
                        MemorySegment.ofAddress(first),
                        CUDA_R_16BF,
                        p.ldFirst(),
                        MemorySegment.ofAddress(second),
                        CUDA_R_16BF,
                        p.ldSecond(),
                        a.allocateFrom(JAVA_FLOAT, beta),
                        MemorySegment.ofAddress(c),
                        CUDA_R_32F,
                        p.ldc(),
                        CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT));
            }
        });
    }

    /** Column-major C [m, n] = alpha·op(A)·op(B) + beta·C in fp32 (cublasSgemm_v2). */
    void gemmF32(GemmPlan p, long first, long second, float beta, long c) {
        caller.call("cublasSgemm_v2", () -> {
            try (Arena a = Arena.ofConfined()) {
                status("cublasSgemm_v2", (int) sgemm.invokeExact(
                        handle(),
                        p.transFirst() ? OP_T : OP_N,
                        p.transSecond() ? OP_T : OP_N,
                        p.m(),
                        p.n(),
                        p.k(),
                        a.allocateFrom(JAVA_FLOAT, 1f),
                        MemorySegment.ofAddress(first),
                        p.ldFirst(),
                        MemorySegment.ofAddress(second),
                        p.ldSecond(),
                        a.allocateFrom(JAVA_FLOAT, beta),
                        MemorySegment.ofAddress(c),
                        p.ldc()));
            }
        });
    }

    /**
     * The linear layer y [rows, n] = x [rows, k]·Wᵀ (+ bias [n] unless null) on the device, W [n, k] bf16 bits or
     * fp32: bf16 W meets x rounded to bf16 (m2q_convert_f32_bf16) in cublasGemmEx with fp32 accumulation, fp32 W
     * goes through cublasSgemm_v2; x is rounded in chunks of {@link #BF16_ROWS} rows. A bias first fills y's rows
     * through the rank-1 product bias·1ᵀ (each element bias[j]·1, exact), then the product adds to it (beta = 1).
     */
    void linear(
            Device dev,
            DeviceBuffer xb,
            int rows,
            int n,
            int k,
            DeviceBuffer w,
            boolean bf16,
            DeviceBuffer bias,
            DeviceBuffer yb) {
        GemmPlan plan = GemmPlan.linear(rows, n, k); // first = W, second = x
        long y = address(yb.ptr());
        float beta = 0f;
        if (bias != null) {
            float[] ones = new float[rows];
            Arrays.fill(ones, 1f);
            try (DeviceBuffer ob = dev.upload(ones, 0, rows)) {
                gemmF32(GemmPlan.rowMajor(rows, n, 1, false, false), address(bias.ptr()), address(ob.ptr()), 0f, y);
            }
            beta = 1f;
        }
        if (!bf16) {
            gemmF32(plan, address(w.ptr()), address(xb.ptr()), beta, y);
            return;
        }
        int chunk = Math.min(rows, BF16_ROWS);
        try (DeviceBuffer xh = dev.alloc(2L * chunk * k)) {
            for (int r0 = 0; r0 < rows; r0 += chunk) {
                int r = Math.min(chunk, rows - r0);
                long count = (long) r * k;
                dev.kernel("m2q_convert_f32_bf16")
                        .launch(
                                Device.blocks(count, 256),
                                1,
                                1,
                                256,
                                1,
                                1,
                                0,
                                count,
                                xb.ptr().withByteOffset(4L * r0 * k),
                                xh);
                gemmBf16(GemmPlan.linear(r, n, k), address(w.ptr()), address(xh.ptr()), beta, y + 4L * r0 * n);
            }
        }
    }

    /**
     * Rows of x rounded to bf16 at a time: the copy stays ≤ 8192·k·2 bytes (0.45 GB at k 27648) instead of half
     * of x's size, and a [8192, k]·[k, n] product still fills a GPU.
     */
    static final int BF16_ROWS = 8192;

    /** C += X·Xᵀ on C's {@code s.lower()} triangle, fp32 (cublasSsyrk_v2 with alpha = beta = 1). */
    void syrk(GemmPlan.Syrk s, long x, long c) {
        caller.call("cublasSsyrk_v2", () -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment one = a.allocateFrom(JAVA_FLOAT, 1f);
                status("cublasSsyrk_v2", (int) ssyrk.invokeExact(
                        handle(),
                        s.lower() ? FILL_LOWER : FILL_UPPER,
                        s.trans() ? OP_T : OP_N,
                        s.n(),
                        s.k(),
                        one,
                        MemorySegment.ofAddress(x),
                        s.lda(),
                        one,
                        MemorySegment.ofAddress(c),
                        s.ldc()));
            }
        });
    }

    /** y[i·incy] = x[i·incx] for i &lt; n, fp32 or fp64 elements (cublasScopy_v2 / cublasDcopy_v2). */
    void copy(boolean fp64, int n, long x, int incx, long y, int incy) {
        String what = fp64 ? "cublasDcopy_v2" : "cublasScopy_v2";
        caller.call(
                what,
                () -> status(what, (int) (fp64 ? dcopy : scopy)
                        .invokeExact(handle(), n, MemorySegment.ofAddress(x), incx, MemorySegment.ofAddress(y), incy)));
    }

    /** The handle, created on first use with the context current (cublasCreate_v2 binds it to that context). */
    private MemorySegment handle() {
        if (handle == null) {
            caller.call("cublasCreate_v2", () -> {
                if (handle != null) {
                    return; // another thread created it while this one waited for the context
                }
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment out = a.allocate(ADDRESS);
                    status("cublasCreate_v2", (int) create.invokeExact(out));
                    handle = out.get(ADDRESS, 0);
                }
            });
        }
        return handle;
    }

    /** A vendor call: the FFM downcall's Throwable is wrapped by {@link CudaContext#vendorCall}. */
    @FunctionalInterface
    interface Call {
        void run() throws Throwable;
    }

    /** Runs a {@link Call} with the context current, then checks the device: {@link CudaContext#vendorCall}. */
    @FunctionalInterface
    interface Caller {
        void call(String what, Call call);
    }

    /** The device address of {@code p} (a DeviceBuffer's CUdeviceptr, or one with a byte offset). */
    static long address(Pointer p) {
        return Address.of(p);
    }

    /** Reads JCuda's native address through the protected accessors a subclass may call on itself. */
    private static final class Address extends Pointer {
        private Address(Pointer p) {
            super(p);
        }

        static long of(Pointer p) {
            Address a = new Address(p);
            return a.getNativePointer() + a.getByteOffset();
        }
    }

    /** A downcall handle returning the int status, or an error naming the symbol when the library lacks it. */
    static MethodHandle bind(SymbolLookup lib, String name, MemoryLayout... args) {
        MemorySegment symbol =
                lib.find(name).orElseThrow(() -> new CudaException("the vendor library has no symbol " + name));
        return Linker.nativeLinker().downcallHandle(symbol, FunctionDescriptor.of(JAVA_INT, args));
    }

    static void status(String what, int status) {
        if (status != 0) {
            String name = what.startsWith("cusolver") ? solverStatusName(status) : statusName(status);
            throw new CudaException(what + ": " + name + " (" + status + ")");
        }
    }

    /** cublasStatus_t's names (cublas_api.h). */
    static String statusName(int s) {
        return switch (s) {
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 11 -> "CUBLAS_STATUS_MAPPING_ERROR";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case 16 -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "cuBLAS status";
        };
    }

    /** cusolverStatus_t's names (cusolver_common.h). */
    static String solverStatusName(int s) {
        return switch (s) {
            case 1 -> "CUSOLVER_STATUS_NOT_INITIALIZED";
            case 2 -> "CUSOLVER_STATUS_ALLOC_FAILED";
            case 3 -> "CUSOLVER_STATUS_INVALID_VALUE";
            case 4 -> "CUSOLVER_STATUS_ARCH_MISMATCH";
            case 6 -> "CUSOLVER_STATUS_EXECUTION_FAILED";
            case 7 -> "CUSOLVER_STATUS_INTERNAL_ERROR";
            case 8 -> "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
            case 9 -> "CUSOLVER_STATUS_NOT_SUPPORTED";
            default -> "cuSOLVER status";
        };
    }
}
