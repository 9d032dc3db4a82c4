// Inputs for CudaBench, made on the device so that gigabyte-sized benchmark operands need no host arrays or
// transfers: counter-based pseudo-random fills (a 64-bit mix of seed and index, so every element is independent
// of the launch shape) and a unit upper-triangular stand-in for GPTQ's U. Java twin: none (benchmark inputs).
#include <cstdint>

namespace {

// SplitMix64's finalizer of (seed, index): 64 well-mixed bits.
__device__ __forceinline__ uint64_t mix(uint64_t seed, uint64_t i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [lo, hi) from the top 24 bits.
__device__ __forceinline__ float uniform(uint64_t seed, uint64_t i, float lo, float hi) {
    float u = static_cast<float>(mix(seed, i) >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

}  // namespace

// out[i] uniform in [lo, hi), i < count. Grid ceil(count/256), block 256.
extern "C" __global__ void m2q_bench_fill_f32(long long count, float* out, long long seed, float lo, float hi) {
    long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < count) {
        out[i] = uniform(static_cast<uint64_t>(seed), static_cast<uint64_t>(i), lo, hi);
    }
}

// out[i] = the bf16 bits (truncated) of a uniform value in [lo, hi). Grid ceil(count/256), block 256.
extern "C" __global__ void m2q_bench_fill_bf16(long long count, uint16_t* out, long long seed, float lo, float hi) {
    long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < count) {
        out[i] = static_cast<uint16_t>(
                __float_as_uint(uniform(static_cast<uint64_t>(seed), static_cast<uint64_t>(i), lo, hi)) >> 16);
    }
}

// out[i] = 32 random bits (packed 4-bit codes). Grid ceil(count/256), block 256.
extern "C" __global__ void m2q_bench_fill_bits(long long count, uint32_t* out, long long seed) {
    long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < count) {
        out[i] = static_cast<uint32_t>(mix(static_cast<uint64_t>(seed), static_cast<uint64_t>(i)) >> 32);
    }
}

// u [k, k]: 1 on the diagonal, uniform in [-amp, amp) above it, 0 below: the upper Cholesky factor of the SPD
// matrix (U^T U)^-1, well conditioned for amp ~ 1/sqrt(k). Grid ceil(k*k/256), block 256.
extern "C" __global__ void m2q_bench_fill_unit_upper(int k, float* u, long long seed, float amp) {
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(k) * k) {
        return;
    }
    long long i = e / k;
    long long j = e % k;
    u[e] = i == j ? 1.0f : (j > i ? uniform(static_cast<uint64_t>(seed), static_cast<uint64_t>(e), -amp, amp) : 0.0f);
}

// out[i] = a[i*(k+1)] + shift: the diagonal of a [k, k], shifted. Grid ceil(k/256), block 256.
extern "C" __global__ void m2q_bench_diagonal(int k, const float* a, float shift, float* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < k) {
        out[i] = a[static_cast<long long>(i) * (k + 1)] + shift;
    }
}
