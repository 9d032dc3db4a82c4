// The element-wise operations of the resident backend (CudaBackend): buffers already on the device, so these
// run where a host-array call would have cost a round trip. Each fp32 operation is written with an _rn
// intrinsic, so the result is the Java twin's bits (one rounding per operation, nothing contracted).
#include "m2q_common.cuh"

// Java twin: JavaBackend.add, Backend#add javadoc. out[i] = a[i] + b[i] for i < n; out may be a or b.
// Bit for bit. Grid ceil(n/256), block 256.
extern "C" __global__ void m2q_add_f32(long long n, const float* a, const float* b, float* out) {
    long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    out[i] = __fadd_rn(a[i], b[i]);
}

// Java twin: JavaBackend.scale, Backend#scale javadoc. x[i] = x[i] * f for i < n, in fp32. Bit for bit.
// Grid ceil(n/256), block 256.
extern "C" __global__ void m2q_scale_f32(long long n, float* x, float f) {
    long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    x[i] = __fmul_rn(x[i], f);
}
