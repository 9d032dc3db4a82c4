// Dense products: Kernels#gemmAcc and #syrkUpper (fp32 SIMT, one in-order FMA chain per element, so bit for bit
// the Java twins), and y = x.W^T (+ bias) for bf16 and fp32 weights: a warp-per-output matvec for 1..8 rows, a
// tiled fp32 SIMT product, and a bf16 tensor-core product (nvcuda::wmma 16x16x16, fp32 accumulators, x rounded
// to bf16 when staged).
//
// Launch shapes (the host code in CudaKernels follows them):
//   SIMT fp32 tiles  grid (ceil(n/128), ceil(m/128)), block 256
//   tensor cores     grid (ceil(n/128), ceil(rows/128)), block 256
//   matvec           grid ceil(n/8), block 256 (one warp per output column)
#include <cuda_bf16.h>
#include <mma.h>

#include "m2q_common.cuh"
#include "m2q_gemm_tile.cuh"

using m2q::Mode;
using m2q::Operand;
using m2q::Tri;

namespace {
constexpr int F_BM = 128;
constexpr int F_BN = 128;
constexpr int F_BK = 8;
constexpr int F_TM = 8;
constexpr int F_TN = 8;
}  // namespace

// Java twin: VectorKernels.gemmAcc / ScalarKernels.gemmAcc, Kernels#gemmAcc javadoc. Bit for bit.
// c[cOff + i*ldc + j] (i < m, j < n) continues its own value with fma(a[aOff + i*aRow + p*aCol], b[bOff + p*ldb + j])
// for p = 0 .. depth-1 in order. a, b, c: fp32 buffers addressed by the offsets and strides (elements).
extern "C" __global__ void __launch_bounds__(256) m2q_gemm_acc_f32(
        int m, int n, int depth,
        const float* a, int aOff, int aRow, int aCol,  // A [m, depth] strided
        const float* b, int bOff, int ldb,             // B [depth, n] row stride ldb
        float* c, int cOff, int ldc) {                 // C [m, n] row stride ldc
    m2q::gemm_tile<float, float, float, F_BM, F_BN, F_BK, F_TM, F_TN, Tri::NONE, false, Mode::CHAIN>(
            m, n, depth, Operand<float>{a, aOff, aRow, aCol}, Operand<float>{b, bOff, ldb, 1}, c, cOff, ldc,
            nullptr);
}

// Java twin: VectorKernels.syrkUpper / ScalarKernels.syrkUpper, Kernels#syrkUpper javadoc. Bit for bit.
// s[i*k + j] = sum over t of x[t*k + i] * x[t*k + j] (from 0f, t in order, FMAs) for i <= j; the strict lower
// triangle of s is not touched. The host adds s to its c (the SPI's "add the sum to c once").
extern "C" __global__ void __launch_bounds__(256, 2) m2q_syrk_upper_f32(
        int rows, int k,
        const float* x,  // [rows, k]
        float* s) {      // [k, k], upper triangle written
    m2q::gemm_tile<float, float, float, F_BM, F_BN, F_BK, F_TM, F_TN, Tri::UPPER, false, Mode::STORE>(
            k, k, rows, Operand<float>{x, 0, 1, k}, Operand<float>{x, 0, k, 1}, s, 0, k, nullptr);
}

// Java twin: Kernels#syrkUpper with c resident on the device: c[i*k + j] += (chunk sum from 0f) for i <= j.
extern "C" __global__ void __launch_bounds__(256, 2) m2q_syrk_upper_add_f32(
        int rows, int k,
        const float* x,  // [rows, k]
        float* c) {      // [k, k], upper triangle accumulated
    m2q::gemm_tile<float, float, float, F_BM, F_BN, F_BK, F_TM, F_TN, Tri::UPPER, false, Mode::ADD>(
            k, k, rows, Operand<float>{x, 0, 1, k}, Operand<float>{x, 0, k, 1}, c, 0, k, nullptr);
}

// Java twin: none (a layout step of syrkUpper): the upper triangle of s [k, k] row by row into packed
// [k(k+1)/2], row i at i*k - i*(i-1)/2, so that only it travels to the host. Grid (ceil(k/256), k), block 256.
extern "C" __global__ void m2q_pack_upper_f32(int k, const float* s, float* packed) {
    const int i = blockIdx.y;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < i || j >= k) {
        return;
    }
    const long long row = static_cast<long long>(i) * k - static_cast<long long>(i) * (i - 1) / 2;
    packed[row + (j - i)] = s[static_cast<long long>(i) * k + j];
}

// Java twin: VectorKernels.matmul (Matrix.F32 path), Kernels#matmul javadoc. fp32 accumulate in another order
// than the twin's: equal within fp32 summation error.
// y[t*n + j] = sum_p x[t*k + p] * w[j*k + p] (+ bias[j])
extern "C" __global__ void __launch_bounds__(256, 2) m2q_matmul_f32w(
        int rows, int n, int k,
        const float* x,     // [rows, k]
        const float* w,     // [n, k]
        const float* bias,  // [n], read when hasBias
        int hasBias,
        float* y) {         // [rows, n]
    m2q::gemm_tile<float, float, float, F_BM, F_BN, F_BK, F_TM, F_TN, Tri::NONE, false, Mode::STORE>(
            rows, n, k, Operand<float>{x, 0, k, 1}, Operand<float>{w, 0, 1, k}, y, 0, n, hasBias ? bias : nullptr);
}

// Java twin: VectorKernels.matmul (Matrix.Bf16 path), Kernels#matmul javadoc. fp32 products of the exact bf16
// weights; equal to the twin within fp32 summation error.
extern "C" __global__ void __launch_bounds__(256, 2) m2q_matmul_bf16w(
        int rows, int n, int k,
        const float* x,        // [rows, k]
        const uint16_t* w,     // [n, k] bf16 bits
        const float* bias,     // [n], read when hasBias
        int hasBias,
        float* y) {            // [rows, n]
    m2q::gemm_tile<float, float, uint16_t, F_BM, F_BN, F_BK, F_TM, F_TN, Tri::NONE, false, Mode::STORE>(
            rows, n, k, Operand<float>{x, 0, k, 1}, Operand<uint16_t>{w, 0, 1, k}, y, 0, n,
            hasBias ? bias : nullptr);
}

namespace {

// Eight consecutive weights of a row as fp32.
__device__ __forceinline__ void load8(const uint16_t* p, float (&v)[8]) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    uint32_t wds[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int h = 0; h < 4; h++) {
        v[2 * h] = __uint_as_float(wds[h] << 16);
        v[2 * h + 1] = __uint_as_float(wds[h] & 0xFFFF0000u);
    }
}

__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
    float4 lo = *reinterpret_cast<const float4*>(p);
    float4 hi = *reinterpret_cast<const float4*>(p + 4);
    v[0] = lo.x;
    v[1] = lo.y;
    v[2] = lo.z;
    v[3] = lo.w;
    v[4] = hi.x;
    v[5] = hi.y;
    v[6] = hi.z;
    v[7] = hi.w;
}

// One warp per output column j: lanes stride over k eight weights at a time (16-byte loads of a bf16 row, two of
// an fp32 one), R token rows at once, then a shuffle reduction. rows <= R.
template <typename WT, int R>
__device__ __forceinline__ void gemv(
        int rows, int n, int k, const float* x, const WT* w, const float* bias, int hasBias, float* y) {
    const int j = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (j >= n) {
        return;
    }
    float acc[R];
#pragma unroll
    for (int t = 0; t < R; t++) {
        acc[t] = 0.0f;
    }
    const WT* wr = w + static_cast<long long>(j) * k;
    if (k % 8 == 0) {
#pragma unroll 2
        for (int kb = lane * 8; kb < k; kb += 256) {
            float wv[8];
            load8(wr + kb, wv);
#pragma unroll
            for (int t = 0; t < R; t++) {
                if (t < rows) {
                    const float* xr = x + static_cast<long long>(t) * k + kb;
                    float4 lo = *reinterpret_cast<const float4*>(xr);
                    float4 hi = *reinterpret_cast<const float4*>(xr + 4);
                    float a = acc[t];
                    a = __fmaf_rn(lo.x, wv[0], a);
                    a = __fmaf_rn(lo.y, wv[1], a);
                    a = __fmaf_rn(lo.z, wv[2], a);
                    a = __fmaf_rn(lo.w, wv[3], a);
                    a = __fmaf_rn(hi.x, wv[4], a);
                    a = __fmaf_rn(hi.y, wv[5], a);
                    a = __fmaf_rn(hi.z, wv[6], a);
                    a = __fmaf_rn(hi.w, wv[7], a);
                    acc[t] = a;
                }
            }
        }
    } else {
        for (int kk = lane; kk < k; kk += 32) {
            float wv = m2q::widen(wr[kk]);
#pragma unroll
            for (int t = 0; t < R; t++) {
                if (t < rows) {
                    acc[t] = __fmaf_rn(x[static_cast<long long>(t) * k + kk], wv, acc[t]);
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < R; t++) {
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
            acc[t] += __shfl_xor_sync(0xFFFFFFFFu, acc[t], off);
        }
    }
    if (lane == 0) {
        float b = hasBias ? bias[j] : 0.0f;
#pragma unroll
        for (int t = 0; t < R; t++) {
            if (t < rows) {
                y[static_cast<long long>(t) * n + j] = acc[t] + b;
            }
        }
    }
}

}  // namespace

// Java twin: VectorKernels.matmul (Matrix.Bf16 path, few rows), Kernels#matmul javadoc. Equal within fp32
// summation error. x [rows, k], w [n, k] bf16 bits, bias [n] when hasBias, y [rows, n]; rows <= the suffix.
#define M2Q_GEMV(NAME, WT, R)                                                                                  \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                                    \
            int rows, int n, int k, const float* x, const WT* w, const float* bias, int hasBias, float* y) { \
        gemv<WT, R>(rows, n, k, x, w, bias, hasBias, y);                                                       \
    }
M2Q_GEMV(m2q_gemv_bf16w_r1, uint16_t, 1)
M2Q_GEMV(m2q_gemv_bf16w_r2, uint16_t, 2)
M2Q_GEMV(m2q_gemv_bf16w_r4, uint16_t, 4)
M2Q_GEMV(m2q_gemv_bf16w_r8, uint16_t, 8)
// Java twin: VectorKernels.matmul (Matrix.F32 path, few rows); as above with w [n, k] fp32.
M2Q_GEMV(m2q_gemv_f32w_r1, float, 1)
M2Q_GEMV(m2q_gemv_f32w_r2, float, 2)
M2Q_GEMV(m2q_gemv_f32w_r4, float, 4)
M2Q_GEMV(m2q_gemv_f32w_r8, float, 8)

namespace {
namespace wmma = nvcuda::wmma;

constexpr int TC_BM = 128;
constexpr int TC_BN = 128;
constexpr int TC_BK = 32;
constexpr int TC_LD = TC_BK + 8;  // bf16 elements per staged row: a multiple of 8, rows 80 bytes apart

// A [m, k] row-major (fp32 rounded to bf16 here, or bf16 bits), W [n, k] bf16 bits; y [m, n] = A.W^T (+ bias).
// Eight warps, 2 x 4, each a 64 x 32 piece of the 128 x 128 tile: 4 x 2 fragments of 16 x 16, fp32.
template <bool A_F32>
__device__ __forceinline__ void tc_gemm(
        int m, int n, int k, const float* af, const uint16_t* ab, const uint16_t* w, const float* bias, int hasBias,
        float* y) {
    __shared__ __align__(32) __nv_bfloat16 As[TC_BM * TC_LD];
    __shared__ __align__(32) __nv_bfloat16 Bs[TC_BN * TC_LD];
    __shared__ __align__(32) float scratch[8][16 * 16];

    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int lane = tid % 32;
    const int wm = warp / 4;
    const int wn = warp % 4;
    const int i0 = blockIdx.y * TC_BM;
    const int j0 = blockIdx.x * TC_BN;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
    for (int fi = 0; fi < 4; fi++) {
#pragma unroll
        for (int fj = 0; fj < 2; fj++) {
            wmma::fill_fragment(acc[fi][fj], 0.0f);
        }
    }
    const bool vec8 = k % 8 == 0;
    for (int k0 = 0; k0 < k; k0 += TC_BK) {
        // A tile, 128 rows x 32: groups of 8 consecutive k per thread step.
        for (int e = tid; e < TC_BM * TC_BK / 8; e += 256) {
            int r = e / (TC_BK / 8);
            int c8 = (e % (TC_BK / 8)) * 8;
            int gi = i0 + r;
            int gk = k0 + c8;
            __nv_bfloat16* dst = As + r * TC_LD + c8;
            if (A_F32) {
                const float* src = af + static_cast<long long>(gi) * k + gk;
                if (gi < m && vec8 && gk + 8 <= k) {
                    float4 lo = *reinterpret_cast<const float4*>(src);
                    float4 hi = *reinterpret_cast<const float4*>(src + 4);
                    __nv_bfloat162 p[4] = {__floats2bfloat162_rn(lo.x, lo.y), __floats2bfloat162_rn(lo.z, lo.w),
                                           __floats2bfloat162_rn(hi.x, hi.y), __floats2bfloat162_rn(hi.z, hi.w)};
                    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(p);
                } else {
#pragma unroll
                    for (int q = 0; q < 8; q++) {
                        dst[q] = __float2bfloat16_rn(gi < m && gk + q < k ? src[q] : 0.0f);
                    }
                }
            } else {
                const uint16_t* src = ab + static_cast<long long>(gi) * k + gk;
                if (gi < m && vec8 && gk + 8 <= k) {
                    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
                } else {
#pragma unroll
                    for (int q = 0; q < 8; q++) {
                        dst[q] = __ushort_as_bfloat16(gi < m && gk + q < k ? src[q] : static_cast<uint16_t>(0));
                    }
                }
            }
        }
        // W tile, 128 output columns x 32.
        for (int e = tid; e < TC_BN * TC_BK / 8; e += 256) {
            int r = e / (TC_BK / 8);
            int c8 = (e % (TC_BK / 8)) * 8;
            int gj = j0 + r;
            int gk = k0 + c8;
            __nv_bfloat16* dst = Bs + r * TC_LD + c8;
            const uint16_t* src = w + static_cast<long long>(gj) * k + gk;
            if (gj < n && vec8 && gk + 8 <= k) {
                *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
            } else {
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    dst[q] = __ushort_as_bfloat16(gj < n && gk + q < k ? src[q] : static_cast<uint16_t>(0));
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[4];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
#pragma unroll
            for (int fi = 0; fi < 4; fi++) {
                wmma::load_matrix_sync(fa[fi], As + (wm * 64 + fi * 16) * TC_LD + kk, TC_LD);
            }
#pragma unroll
            for (int fj = 0; fj < 2; fj++) {
                wmma::load_matrix_sync(fb[fj], Bs + (wn * 32 + fj * 16) * TC_LD + kk, TC_LD);
            }
#pragma unroll
            for (int fi = 0; fi < 4; fi++) {
#pragma unroll
                for (int fj = 0; fj < 2; fj++) {
                    wmma::mma_sync(acc[fi][fj], fa[fi], fb[fj], acc[fi][fj]);
                }
            }
        }
        __syncthreads();
    }
    float* sc = scratch[warp];
#pragma unroll
    for (int fi = 0; fi < 4; fi++) {
#pragma unroll
        for (int fj = 0; fj < 2; fj++) {
            wmma::store_matrix_sync(sc, acc[fi][fj], 16, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                int i = i0 + wm * 64 + fi * 16 + e / 16;
                int j = j0 + wn * 32 + fj * 16 + e % 16;
                if (i < m && j < n) {
                    y[static_cast<long long>(i) * n + j] = hasBias ? sc[e] + bias[j] : sc[e];
                }
            }
            __syncwarp();
        }
    }
}

}  // namespace

// Java twin: VectorKernels.matmul (Matrix.Bf16 path), Kernels#matmul javadoc, with x rounded to bf16 for the
// tensor cores: |y - y_twin| <= 2^-8 * sum_k |x_k w_k| plus fp32 summation error (bf16 operands, ~1e-3..1e-2).
// x [rows, k] fp32, w [n, k] bf16 bits, bias [n] when hasBias, y [rows, n].
extern "C" __global__ void __launch_bounds__(256) m2q_matmul_bf16w_tc(
        int rows, int n, int k, const float* x, const uint16_t* w, const float* bias, int hasBias, float* y) {
    tc_gemm<true>(rows, n, k, x, nullptr, w, bias, hasBias, y);
}

// Java twin: none (benchmark ceiling): y [m, n] = a [m, k] . w [n, k]^T, both bf16 bits, fp32 out.
extern "C" __global__ void __launch_bounds__(256) m2q_gemm_bf16_tc(
        int m, int n, int k, const uint16_t* a, const uint16_t* w, float* y) {
    tc_gemm<false>(m, n, k, nullptr, a, w, nullptr, 0, y);
}
