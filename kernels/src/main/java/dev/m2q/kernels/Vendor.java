package dev.m2q.kernels;

import java.util.Optional;

/**
 * The vendor libraries this process uses, found and loaded once ({@link VendorLibraries}): cuBLAS for the dense
 * products, cuSOLVER for the Cholesky factor and inverse, each absent when not found or not loadable, and then
 * m2q's own kernels run. {@link #describe()} is the device line's part saying which.
 *
 * @param blas present when libcublas loaded and bound
 * @param solver present when libcusolver loaded and bound too (it reads its pivots through cuBLAS)
 * @param describe "cuBLAS /path/libcublas.so.12, cuSOLVER /path/libcusolver.so.11", or "m2q kernels (why)"
 */
record Vendor(Optional<VendorBlas> blas, Optional<VendorSolver> solver, String describe) {
    /** m2q's kernels only. */
    static final Vendor NONE = new Vendor(Optional.empty(), Optional.empty(), "m2q kernels");

    private static Vendor loaded;

    /** The libraries for {@code ctx}'s device, looked up and bound on the first call. Never throws. */
    static synchronized Vendor of(CudaContext ctx) {
        if (loaded == null) {
            loaded = bind(
                    ctx, VendorLibraries.load(VendorLibraries.find(VendorLibraries.search(), ctx.driverVersion())));
        }
        return loaded;
    }

    /** Binds the symbols of what loaded; a missing symbol leaves that library to m2q's kernels, saying so. */
    static Vendor bind(CudaContext ctx, VendorLibraries.Loaded libs) {
        if (libs.blas().isEmpty()) {
            return new Vendor(Optional.empty(), Optional.empty(), libs.describe());
        }
        VendorBlas blas;
        try {
            blas = new VendorBlas(ctx::vendorCall, libs.blas().get());
        } catch (RuntimeException e) {
            return new Vendor(Optional.empty(), Optional.empty(), "m2q kernels (cuBLAS: " + e.getMessage() + ")");
        }
        if (libs.solver().isEmpty()) {
            return new Vendor(Optional.of(blas), Optional.empty(), libs.describe());
        }
        try {
            VendorSolver solver =
                    new VendorSolver(ctx::vendorCall, libs.solver().get());
            String line = libs.describe() + (solver.invertsToo() ? "" : " (factor only: no cusolverDnXtrtri)");
            return new Vendor(Optional.of(blas), Optional.of(solver), line);
        } catch (RuntimeException e) {
            return new Vendor(
                    Optional.of(blas),
                    Optional.empty(),
                    libs.describe() + "; Cholesky on m2q kernels (cuSOLVER: " + e.getMessage() + ")");
        }
    }
}
