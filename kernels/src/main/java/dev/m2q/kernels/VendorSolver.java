package dev.m2q.kernels;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * {@link dev.m2q.core.kernels.Kernels#choleskyInverse} through cuSOLVER, bound with the FFM API: potrf
 * (cusolverDnSpotrf, or Dpotrf for the fp64 retry) factors A + shift·I, and cusolverDnXtrtri inverts the factor in
 * place (m2q's inversion kernels when the library predates Xtrtri, CUDA 11.4).
 *
 * <p>Layout: m2q_chol_init writes A + shift·I into the lower triangle of a row-major M [k, k] with zeros above,
 * which cuSOLVER reads as the column-major upper triangle. potrf(UPPER) gives U with A = Uᵀ·U there, which is L =
 * Uᵀ in row-major terms, and trtri(UPPER) gives U⁻¹, which is L⁻¹ row-major: exactly the SPI's result, the strict
 * upper triangle still the zeros that neither call touches.
 *
 * <p>Failure: potrf's info &gt; 0 (a pivot not positive), or a pivot of L that is not finite and positive (a NaN
 * or ∞ anywhere in A reaches a later pivot through the updates, and potrf is not documented to flag NaN), returns
 * false before the host array is written, as the SPI asks.
 */
final class VendorSolver {
    private static final int FILL_UPPER = VendorBlas.FILL_UPPER;
    private static final int DIAG_NON_UNIT = 0;

    private final VendorBlas.Caller caller;
    private final MethodHandle create;
    private final MethodHandle spotrfBuffer;
    private final MethodHandle spotrf;
    private final MethodHandle dpotrfBuffer;
    private final MethodHandle dpotrf;
    private final Optional<MethodHandle> trtriBuffer;
    private final Optional<MethodHandle> trtri;
    /** Created once, under the context's lock; read without it afterwards. */
    private volatile MemorySegment handle;

    VendorSolver(VendorBlas.Caller caller, SymbolLookup lib) {
        this.caller = caller;
        this.create = VendorBlas.bind(lib, "cusolverDnCreate", ADDRESS);
        // (handle, uplo, n, A, lda, int* Lwork)
        this.spotrfBuffer = VendorBlas.bind(
                lib, "cusolverDnSpotrf_bufferSize", ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
        this.dpotrfBuffer = VendorBlas.bind(
                lib, "cusolverDnDpotrf_bufferSize", ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
        // (handle, uplo, n, A, lda, workspace, Lwork, int* devInfo)
        this.spotrf = VendorBlas.bind(
                lib, "cusolverDnSpotrf", ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
        this.dpotrf = VendorBlas.bind(
                lib, "cusolverDnDpotrf", ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
        boolean hasTrtri = lib.find("cusolverDnXtrtri").isPresent()
                && lib.find("cusolverDnXtrtri_bufferSize").isPresent();
        // (handle, uplo, diag, int64 n, dataType, A, int64 lda, size_t* deviceBytes, size_t* hostBytes)
        this.trtriBuffer = hasTrtri
                ? Optional.of(VendorBlas.bind(
                        lib,
                        "cusolverDnXtrtri_bufferSize",
                        ADDRESS,
                        JAVA_INT,
                        JAVA_INT,
                        JAVA_LONG,
                        JAVA_INT,
                        ADDRESS,
                        JAVA_LONG,
                        ADDRESS,
                        ADDRESS))
                : Optional.empty();
        // (handle, uplo, diag, int64 n, dataType, A, int64 lda, device buffer, size_t, host buffer, size_t, devInfo)
        this.trtri = hasTrtri
                ? Optional.of(VendorBlas.bind(
                        lib,
                        "cusolverDnXtrtri",
                        ADDRESS,
                        JAVA_INT,
                        JAVA_INT,
                        JAVA_LONG,
                        JAVA_INT,
                        ADDRESS,
                        JAVA_LONG,
                        ADDRESS,
                        JAVA_LONG,
                        ADDRESS,
                        JAVA_LONG,
                        ADDRESS))
                : Optional.empty();
    }

    /** Whether the inversion runs in cuSOLVER (Xtrtri) too, not only the factorization. */
    boolean invertsToo() {
        return trtri.isPresent();
    }

    /**
     * The SPI's choleskyInverse on device buffers (see the class comment and {@link DeviceCholesky#onDevice}): in
     * [k, k] fp32 with A's strict upper triangle, d [k]; on success L⁻¹ in in, on failure in and d untouched.
     * {@code blas} reads the pivots.
     */
    boolean choleskyInverse(
            Device dev, VendorBlas blas, DeviceBuffer in, DeviceBuffer d, float shift, int k, boolean fp64) {
        long kk = (long) k * k;
        int size = fp64 ? 8 : 4;
        try (DeviceBuffer m = dev.alloc(size * kk);
                DeviceBuffer info = dev.upload(new int[1], 0, 1);
                DeviceBuffer pivots = dev.alloc((long) size * k)) {
            DeviceCholesky.init(dev, in, d, shift, m, k, fp64);
            long mat = VendorBlas.address(m.ptr());
            potrf(dev, fp64, k, mat, info);
            if (infoOf(dev, info, fp64 ? "cusolverDnDpotrf" : "cusolverDnSpotrf") != 0) {
                return false;
            }
            blas.copy(fp64, k, mat, k + 1, VendorBlas.address(pivots.ptr()), 1);
            if (!positive(dev, pivots, k, fp64)) {
                return false;
            }
            if (trtri.isPresent()) {
                invert(dev, fp64, k, mat, info);
                if (infoOf(dev, info, "cusolverDnXtrtri") != 0) {
                    return false; // a zero pivot, which the check above already excludes
                }
                if (fp64) {
                    dev.kernel("m2q_convert_f64_f32").launch(Device.blocks(kk, 256), 1, 1, 256, 1, 1, 0, kk, m, in);
                } else {
                    dev.ctx.copy(in, 0, m, 0, 4 * kk);
                }
            } else {
                DeviceCholesky.invert(dev, in, m, k, fp64);
            }
            return true;
        }
    }

    private void potrf(Device dev, boolean fp64, int k, long mat, DeviceBuffer info) {
        int lwork = potrfBufferSize(fp64, k, mat);
        try (DeviceBuffer work = dev.alloc((fp64 ? 8L : 4L) * Math.max(1, lwork))) {
            potrf(fp64, k, mat, VendorBlas.address(work.ptr()), lwork, VendorBlas.address(info.ptr()));
        }
    }

    private void invert(Device dev, boolean fp64, int k, long mat, DeviceBuffer info) {
        long[] bytes = trtriBufferSize(fp64, k, mat);
        try (DeviceBuffer work = dev.alloc(Math.max(1, bytes[0]))) {
            trtri(fp64, k, mat, VendorBlas.address(work.ptr()), bytes[0], bytes[1], VendorBlas.address(info.ptr()));
        }
    }

    /** potrf's workspace in elements for the k × k matrix at {@code mat}, UPPER. */
    int potrfBufferSize(boolean fp64, int k, long mat) {
        String name = (fp64 ? "cusolverDnDpotrf" : "cusolverDnSpotrf") + "_bufferSize";
        int[] lwork = new int[1];
        caller.call(name, () -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment out = a.allocate(JAVA_INT);
                VendorBlas.status(name, (int) (fp64 ? dpotrfBuffer : spotrfBuffer)
                        .invokeExact(handle(), FILL_UPPER, k, MemorySegment.ofAddress(mat), k, out));
                lwork[0] = out.get(JAVA_INT, 0);
            }
        });
        return lwork[0];
    }

    /** Factors the column-major upper triangle at {@code mat} in place; devInfo at {@code info}. */
    void potrf(boolean fp64, int k, long mat, long work, int lwork, long info) {
        String name = fp64 ? "cusolverDnDpotrf" : "cusolverDnSpotrf";
        caller.call(
                name,
                () -> VendorBlas.status(name, (int) (fp64 ? dpotrf : spotrf)
                        .invokeExact(
                                handle(),
                                FILL_UPPER,
                                k,
                                MemorySegment.ofAddress(mat),
                                k,
                                MemorySegment.ofAddress(work),
                                lwork,
                                MemorySegment.ofAddress(info))));
    }

    /** Xtrtri's workspace in bytes: {device, host}. */
    long[] trtriBufferSize(boolean fp64, int k, long mat) {
        int type = fp64 ? VendorBlas.CUDA_R_64F : VendorBlas.CUDA_R_32F;
        long[] bytes = new long[2];
        caller.call("cusolverDnXtrtri_bufferSize", () -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment device = a.allocate(JAVA_LONG);
                MemorySegment host = a.allocate(JAVA_LONG);
                VendorBlas.status("cusolverDnXtrtri_bufferSize", (int) trtriBuffer
                        .orElseThrow()
                        .invokeExact(
                                handle(),
                                FILL_UPPER,
                                DIAG_NON_UNIT,
                                (long) k,
                                type,
                                MemorySegment.ofAddress(mat),
                                (long) k,
                                device,
                                host));
                bytes[0] = device.get(JAVA_LONG, 0);
                bytes[1] = host.get(JAVA_LONG, 0);
            }
        });
        return bytes;
    }

    /** Inverts the column-major upper triangle at {@code mat} in place (non-unit diagonal); devInfo at {@code info}. */
    void trtri(boolean fp64, int k, long mat, long work, long deviceBytes, long hostBytes, long info) {
        int type = fp64 ? VendorBlas.CUDA_R_64F : VendorBlas.CUDA_R_32F;
        caller.call("cusolverDnXtrtri", () -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment hostWork = a.allocate(Math.max(1, hostBytes), 16);
                VendorBlas.status("cusolverDnXtrtri", (int) trtri.orElseThrow()
                        .invokeExact(
                                handle(),
                                FILL_UPPER,
                                DIAG_NON_UNIT,
                                (long) k,
                                type,
                                MemorySegment.ofAddress(mat),
                                (long) k,
                                MemorySegment.ofAddress(work),
                                deviceBytes,
                                hostWork,
                                hostBytes,
                                MemorySegment.ofAddress(info)));
            }
        });
    }

    /** devInfo: 0 success, &gt; 0 the order of the failing minor (or zero pivot); &lt; 0 a wrong argument (a bug). */
    private static int infoOf(Device dev, DeviceBuffer info, String what) {
        int[] v = new int[1];
        dev.ctx.download(info, 0, v, 0, 1);
        if (v[0] < 0) {
            throw new CudaException(what + ": devInfo " + v[0] + " (argument " + -v[0] + " is invalid)");
        }
        return v[0];
    }

    /** Whether every pivot L[j, j] is finite and positive. */
    private static boolean positive(Device dev, DeviceBuffer pivots, int k, boolean fp64) {
        if (fp64) {
            double[] p = new double[k];
            dev.ctx.download(pivots, 0, p, 0, k);
            for (double v : p) {
                if (!(v > 0) || !Double.isFinite(v)) {
                    return false;
                }
            }
        } else {
            float[] p = new float[k];
            dev.ctx.download(pivots, 0, p, 0, k);
            for (float v : p) {
                if (!(v > 0) || !Float.isFinite(v)) {
                    return false;
                }
            }
        }
        return true;
    }

    /** The handle, created on first use with the context current. */
    private MemorySegment handle() {
        if (handle == null) {
            caller.call("cusolverDnCreate", () -> {
                if (handle != null) {
                    return; // another thread created it while this one waited for the context
                }
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment out = a.allocate(ADDRESS);
                    VendorBlas.status("cusolverDnCreate", (int) create.invokeExact(out));
                    handle = out.get(ADDRESS, 0);
                }
            });
        }
        return handle;
    }
}
