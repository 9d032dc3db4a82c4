package dev.m2q.kernels;

/**
 * Run in a child JVM by {@link CudaContextGpuTest}: launches m2q_fill_f32 on address 0x10, which no allocation
 * holds, and prints what the launch and the next call threw. A separate process because the error is sticky: it
 * leaves the context unusable for the rest of the process.
 */
final class BadPointerLaunch {
    private BadPointerLaunch() {}

    public static void main(String[] args) {
        CudaContext ctx = CudaContext.get();
        try {
            ctx.kernel("m2q_fill_f32").launch(1, 1, 1, 32, 1, 1, 0, 0x10L, 1f, 32);
            System.out.println("launch: no error");
        } catch (CudaException e) {
            System.out.println("launch: " + e.getMessage());
        }
        try (DeviceBuffer b = ctx.alloc(64)) {
            System.out.println("then: allocated " + b.bytes() + " bytes");
        } catch (CudaException e) {
            System.out.println("then: " + e.getMessage());
        }
    }
}
