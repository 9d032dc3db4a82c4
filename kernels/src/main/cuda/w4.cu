// W4A16: y = x.W^T straight from GPTQ-packed 4-bit weights (Matrix.W4), bit for bit the Java twins for 1..16
// rows; and the helpers around it: per-group sums of x, the act-order gather and repack, and the dequantization
// to bf16/fp32 that feeds the dense products for more rows.
//
// Positions. The kernels fold each group's members in increasing input channel (the order Kernels#matmul
// fixes). With g_idx = k / G the members of group g are the channels [g*G, (g+1)*G), so position = channel and
// the checkpoint's qweight is read as is. With any other g_idx (act-order) the host sorts the channels by group
// once per matrix (members, start: W4Groups' counting sort) and m2q_w4_repack writes the codes in that order,
// so group g is again the consecutive positions [start[g], start[g+1]) of the repacked words, and m2q_w4_gather
// permutes x to match per call. Either way the matmul kernel sees contiguous groups of any size (even empty).
#include <cuda_bf16.h>

#include "m2q_common.cuh"

namespace {

// Code j of a packed word as fp32, exactly: the nibble ORed into the mantissa of 2^23, minus 2^23 (no I2F).
__device__ __forceinline__ float nibble(uint32_t word, int j) {
    return __uint_as_float(0x4B000000u | ((word >> (4 * j)) & 0xFu)) - 8388608.0f;
}

}  // namespace

// Java twin: W4Groups.groupSums (the sx of ScalarKernels.matmulW4), Kernels#matmul javadoc. Bit for bit.
// sx[t*groups + g] = x[t*k + members[i]] summed for i in [start[g], start[g+1]) left to right from 0f.
// Grid ceil(rows*groups / 256), block 256.
extern "C" __global__ void m2q_w4_group_sums(
        int rows, int k, int groups,
        const float* x,        // [rows, k]
        const int* members,    // [k] channels grouped, increasing within a group
        const int* start,      // [groups + 1]
        float* sx) {           // [rows, groups]
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(rows) * groups) {
        return;
    }
    int t = static_cast<int>(e / groups);
    int g = static_cast<int>(e % groups);
    const float* xr = x + static_cast<long long>(t) * k;
    float s = 0.0f;
    for (int i = start[g]; i < start[g + 1]; i++) {
        s = __fadd_rn(s, xr[members[i]]);
    }
    sx[e] = s;
}

// Java twin: none (a layout step of the act-order path): xp[t*k + i] = x[t*k + members[i]].
// Grid ceil(rows*k / 256), block 256.
extern "C" __global__ void m2q_w4_gather(
        int rows, int k,
        const float* x,      // [rows, k]
        const int* members,  // [k]
        float* xp) {         // [rows, k]
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(rows) * k) {
        return;
    }
    long long t = e / k;
    int i = static_cast<int>(e % k);
    xp[e] = x[t * k + members[i]];
}

// Java twin: none (a layout step of the act-order path, once per matrix): the codes in position order,
// qp[(i/8)*n + c] nibble i%8 = q[members[i], c], q[kk, c] = (qw[(kk/8)*n + c] >> 4*(kk%8)) & 15.
// Grid ceil(k/8*n / 256), block 256.
extern "C" __global__ void m2q_w4_repack(
        int n, int k,
        const int* qw,       // [k/8, n] GPTQ packed words
        const int* members,  // [k]
        int* qp) {           // [k/8, n] repacked
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(k / 8) * n) {
        return;
    }
    int r = static_cast<int>(e / n);
    int c = static_cast<int>(e % n);
    uint32_t out = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int kk = members[8 * r + j];
        uint32_t word = static_cast<uint32_t>(qw[static_cast<long long>(kk / 8) * n + c]);
        out |= ((word >> (4 * (kk % 8))) & 0xFu) << (4 * j);
    }
    qp[e] = static_cast<int>(out);
}

namespace {

constexpr int W4_COLS = 32;  // output columns per thread block: 8 threads x 4 columns

// One thread block: 32 output columns, all tokens (rows <= TMAX), all groups. Threads are (quad, lane-of-groups)
// = (tid % 8, tid / 8): a thread owns 4 adjacent columns (one 16-byte load of qweight per packed row) and, per
// round, one group; GL = blockDim.x / 8 groups are folded per round. The group partials acc - 8*sx go through
// shared memory, and then the fold y = fma(scale[g], partial[g], y) runs over the round's groups in increasing g,
// so each y[t, c] is exactly the twin's sequence. Dynamic shared memory: (GL + 1) * TMAX * 32 floats.
template <int TMAX>
__device__ __forceinline__ void w4_matmul(
        int rows, int n, int k, int groups, const float* xp, const int* qw, const float* scales, const int* start,
        const float* sx, const float* bias, int hasBias, float* y) {
    extern __shared__ float smem[];
    const int gl = threadIdx.x / 8;
    const int quad = threadIdx.x % 8;
    const int GL = blockDim.x / 8;
    float* part = smem;                        // [GL][TMAX][32]
    float* ys = smem + GL * TMAX * W4_COLS;    // [TMAX][32]
    const int n0 = blockIdx.x * W4_COLS;
    const int c0 = n0 + quad * 4;
    const bool vecLoad = n % 4 == 0 && c0 + 3 < n;

    for (int e = threadIdx.x; e < TMAX * W4_COLS; e += blockDim.x) {
        int col = n0 + e % W4_COLS;
        ys[e] = hasBias && col < n ? bias[col] : 0.0f;
    }
    for (int g0 = 0; g0 < groups; g0 += GL) {
        const int g = g0 + gl;
        float acc[TMAX][4];
#pragma unroll
        for (int t = 0; t < TMAX; t++) {
#pragma unroll
            for (int q = 0; q < 4; q++) {
                acc[t][q] = 0.0f;
            }
        }
        if (g < groups) {
            const int s0 = start[g];
            const int s1 = start[g + 1];
            for (int r = s0 / 8; 8 * r < s1; r++) {
                uint32_t wd[4];
                const int* src = qw + static_cast<long long>(r) * n + c0;
                if (vecLoad) {
                    int4 v = __ldg(reinterpret_cast<const int4*>(src));
                    wd[0] = v.x;
                    wd[1] = v.y;
                    wd[2] = v.z;
                    wd[3] = v.w;
                } else {
#pragma unroll
                    for (int q = 0; q < 4; q++) {
                        wd[q] = c0 + q < n ? static_cast<uint32_t>(__ldg(src + q)) : 0u;
                    }
                }
                float code[8][4];
#pragma unroll
                for (int j = 0; j < 8; j++) {
#pragma unroll
                    for (int q = 0; q < 4; q++) {
                        code[j][q] = nibble(wd[q], j);
                    }
                }
                const bool whole = 8 * r >= s0 && 8 * r + 8 <= s1;
#pragma unroll
                for (int t = 0; t < TMAX; t++) {
                    if (t < rows) {
                        const float* xr = xp + static_cast<long long>(t) * k + 8 * r;
                        float4 lo = __ldg(reinterpret_cast<const float4*>(xr));
                        float4 hi = __ldg(reinterpret_cast<const float4*>(xr + 4));
                        float xv[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
                        if (whole) {
#pragma unroll
                            for (int j = 0; j < 8; j++) {
#pragma unroll
                                for (int q = 0; q < 4; q++) {
                                    acc[t][q] = __fmaf_rn(code[j][q], xv[j], acc[t][q]);
                                }
                            }
                        } else {
#pragma unroll
                            for (int j = 0; j < 8; j++) {
                                int i = 8 * r + j;
                                if (i >= s0 && i < s1) {
#pragma unroll
                                    for (int q = 0; q < 4; q++) {
                                        acc[t][q] = __fmaf_rn(code[j][q], xv[j], acc[t][q]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
#pragma unroll
            for (int t = 0; t < TMAX; t++) {
                if (t < rows) {
                    float zero = __fmul_rn(8.0f, sx[static_cast<long long>(t) * groups + g]);
#pragma unroll
                    for (int q = 0; q < 4; q++) {
                        part[(gl * TMAX + t) * W4_COLS + quad * 4 + q] = __fsub_rn(acc[t][q], zero);
                    }
                }
            }
        }
        __syncthreads();
        const int inRound = min(GL, groups - g0);
        for (int e = threadIdx.x; e < TMAX * W4_COLS; e += blockDim.x) {
            int t = e / W4_COLS;
            int col = n0 + e % W4_COLS;
            if (t < rows && col < n) {
                float v = ys[e];
                for (int gg = 0; gg < inRound; gg++) {
                    v = __fmaf_rn(scales[static_cast<long long>(g0 + gg) * n + col], part[(gg * TMAX) * W4_COLS + e],
                                  v);
                }
                ys[e] = v;
            }
        }
        __syncthreads();
    }
    for (int e = threadIdx.x; e < TMAX * W4_COLS; e += blockDim.x) {
        int t = e / W4_COLS;
        int col = n0 + e % W4_COLS;
        if (t < rows && col < n) {
            y[static_cast<long long>(t) * n + col] = ys[e];
        }
    }
}

}  // namespace

// Java twin: ScalarKernels.matmulW4 / VectorW4.matmul, Kernels#matmul javadoc (the W4 sequence). Bit for bit.
// rows <= the suffix. xp [rows, k] x in position order; qw [k/8, n] codes in position order; scales [groups, n];
// start [groups + 1] (group g = positions [start[g], start[g+1])); sx [rows, groups] from m2q_w4_group_sums;
// bias [n] when hasBias; y [rows, n]. Grid ceil(n/32), block 8*GL (GL <= 32 groups per round), dynamic shared
// (GL + 1) * suffix * 32 * 4 bytes.
#define M2Q_W4(NAME, TMAX)                                                                                    \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                   \
            int rows, int n, int k, int groups, const float* xp, const int* qw, const float* scales,          \
            const int* start, const float* sx, const float* bias, int hasBias, float* y) {                    \
        w4_matmul<TMAX>(rows, n, k, groups, xp, qw, scales, start, sx, bias, hasBias, y);                     \
    }
M2Q_W4(m2q_w4_matmul_r1, 1)
M2Q_W4(m2q_w4_matmul_r2, 2)
M2Q_W4(m2q_w4_matmul_r4, 4)
M2Q_W4(m2q_w4_matmul_r8, 8)
M2Q_W4(m2q_w4_matmul_r16, 16)

namespace {

// W[c, 8r .. 8r+7] from packed word (r, c): scales[gIdx[kk]*n + c] * (q - 8) in fp32, as Matrix.W4.dequantize.
__device__ __forceinline__ void dequant8(
        int n, int k, const int* qw, const float* scales, const int* gIdx, long long e, float (&v)[8], int& c,
        int& r) {
    r = static_cast<int>(e / n);
    c = static_cast<int>(e % n);
    uint32_t word = static_cast<uint32_t>(qw[e]);
#pragma unroll
    for (int j = 0; j < 8; j++) {
        int kk = 8 * r + j;
        v[j] = m2q::rtn_dequant(static_cast<int>((word >> (4 * j)) & 0xFu),
                                scales[static_cast<long long>(gIdx[kk]) * n + c]);
    }
}

}  // namespace

// Java twin: Matrix.W4.dequantize (exact in fp32), then rounded to bf16 (nearest even) for the tensor-core
// product: each weight within 2^-8 relative (bf16 keeps 8 significant bits). qw [k/8, n], scales [k/G, n],
// gIdx [k] (the original g_idx), w [n, k] bf16 bits. Grid ceil(k/8*n / 256), block 256.
extern "C" __global__ void m2q_w4_dequant_bf16(
        int n, int k, const int* qw, const float* scales, const int* gIdx, uint16_t* w) {
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(k / 8) * n) {
        return;
    }
    float v[8];
    int c;
    int r;
    dequant8(n, k, qw, scales, gIdx, e, v, c, r);
    uint32_t packed[4];
#pragma unroll
    for (int h = 0; h < 4; h++) {
        uint32_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(v[2 * h]));
        uint32_t hi = __bfloat16_as_ushort(__float2bfloat16_rn(v[2 * h + 1]));
        packed[h] = lo | (hi << 16);
    }
    *reinterpret_cast<uint4*>(w + static_cast<long long>(c) * k + 8 * r) =
            make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

// Java twin: Matrix.W4.dequantize. Bit for bit. qw [k/8, n], scales [k/G, n], gIdx [k], w [n, k] fp32.
// Grid ceil(k/8*n / 256), block 256.
extern "C" __global__ void m2q_w4_dequant_f32(
        int n, int k, const int* qw, const float* scales, const int* gIdx, float* w) {
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(k / 8) * n) {
        return;
    }
    float v[8];
    int c;
    int r;
    dequant8(n, k, qw, scales, gIdx, e, v, c, r);
    float4* dst = reinterpret_cast<float4*>(w + static_cast<long long>(c) * k + 8 * r);
    dst[0] = make_float4(v[0], v[1], v[2], v[3]);
    dst[1] = make_float4(v[4], v[5], v[6], v[7]);
}
