// Shared device helpers of m2q's kernels: the Java rules (Math.max, the (int) cast of a float, Rtn.scale) in
// device code, and bf16 decoding. Header only; every .cu that includes it gets its own copy.
#pragma once

#include <cstdint>
#include <cuda_fp16.h>

namespace m2q {

// bf16 bits (the upper half of an fp32) to fp32: exact.
__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) {
    return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

// java.lang.Math.max(float, float): NaN if either is NaN (a's NaN first), max(-0, +0) = +0.
__device__ __forceinline__ float java_max(float a, float b) {
    if (a != a) {
        return a;
    }
    if (a == 0.0f && b == 0.0f && signbit(a)) {
        return b;
    }
    return a >= b ? a : b;
}

// Java's (int) cast of a float: NaN -> 0, saturating at the int range, otherwise toward zero.
__device__ __forceinline__ int java_f2i(float r) {
    if (r != r) {
        return 0;
    }
    if (r >= 2147483648.0f) {
        return 2147483647;
    }
    if (r <= -2147483648.0f) {
        return -2147483647 - 1;
    }
    return static_cast<int>(r);
}

// Rtn.code: clamp((int) rint(w / s) + 8, 0, 15), w / s in fp32 (IEEE division), rint half to even, and the
// int addition wrapping like Java's (a saturated cast plus 8 wraps negative and clamps to 0).
__device__ __forceinline__ int rtn_code(float w, float s) {
    int r = java_f2i(rintf(__fdiv_rn(w, s)));
    int q = static_cast<int>(static_cast<uint32_t>(r) + 8u);
    return q < 0 ? 0 : (q > 15 ? 15 : q);
}

// Rtn.dequant: s * (q - 8) in fp32.
__device__ __forceinline__ float rtn_dequant(int q, float s) {
    return __fmul_rn(s, static_cast<float>(q - 8));
}

// Rtn.scale for a finite absmax >= 0: 2 * absmax / 15 in fp32 (2/15 for an all-zero group), rounded to fp16
// (round to nearest even, like Float.floatToFloat16), an fp16 underflow to 0 raised to 2^-24. Returns +inf
// when the scale overflows fp16, which the caller reports as Rtn.scale's IllegalArgumentException.
__device__ __forceinline__ float rtn_scale(float absmax) {
    float s = absmax == 0.0f ? 2.0f / 15.0f : __fdiv_rn(__fmul_rn(2.0f, absmax), 15.0f);
    float h = __half2float(__float2half_rn(s));
    if (isinf(h)) {
        return h;
    }
    return h == 0.0f ? 5.9604644775390625e-8f : h;
}

}  // namespace m2q
