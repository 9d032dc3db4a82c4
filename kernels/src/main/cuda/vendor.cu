// Operand steps of the products m2q hands to cuBLAS (VendorBlas, DeviceMatmul): cuBLAS's bf16 GEMM takes both
// operands in bf16, so the fp32 activations are rounded first, exactly as m2q_matmul_bf16w_tc rounds them when
// staging (round to nearest even, __floats2bfloat162_rn).
#include <cuda_bf16.h>

// Java twin: Bf16.fromFloat (an operand step of the cuBLAS bf16 product): out[e] = x[e] rounded to bf16, to
// nearest even, for e < count. x [count] fp32, out [count] bf16. Grid ceil(count/256), block 256.
extern "C" __global__ void m2q_convert_f32_bf16(long long count, const float* x, __nv_bfloat16* out) {
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e < count) {
        out[e] = __float2bfloat16_rn(x[e]);
    }
}
