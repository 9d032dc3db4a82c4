// The SIMT tiled product every fp32/fp64 GEMM-shaped kernel of m2q instantiates (gemm.cu, cholesky.cu).
//
// C[i, j] (i < m, j < n) is computed by exactly one thread as ONE fused multiply-add chain over p = 0, 1, ...,
// depth - 1 in order, with no partial sums and no split of the depth: this is the arithmetic the Kernels SPI
// fixes for gemmAcc and syrkUpper, so those results equal the Java twins' bit for bit. Depth is tiled through
// shared memory (BK at a time) but each accumulator stays in one register across tiles, and the padding of a
// ragged last tile is never folded (it could turn an accumulator of -0 into +0).
//
// Operands are addressed by two strides, so transposed views cost nothing: element (r, s) of an operand is
// p[off + r * s0 + s * s1] (A: r = i, s = p; B: r = p, s = j). The tile loader walks the operand's contiguous
// index with consecutive threads, so the loads coalesce whichever stride is 1.
#pragma once

#include "m2q_common.cuh"

namespace m2q {

enum class Tri { NONE, UPPER, LOWER };
// CHAIN: the chain starts from C's value and C receives it (C += A.B, one chain). STORE: from 0, C = sum (+ bias
// [j]). ADD: from 0, then C = C + sum (the SPI's syrkUpper: each chunk's sum added to c once).
enum class Mode { CHAIN, STORE, ADD };

template <typename S>
struct Operand {
    const S* p;
    long long off;
    long long s0;
    long long s1;
};

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ double widen(double v) { return v; }
__device__ __forceinline__ float widen(uint16_t bf16) { return bf16_bits_to_float(bf16); }

__device__ __forceinline__ float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double fma_rn(double a, double b, double c) { return __fma_rn(a, b, c); }

template <Tri TRI>
__device__ __forceinline__ bool in_triangle(int i, int j) {
    return TRI == Tri::NONE || (TRI == Tri::UPPER ? i <= j : i >= j);
}

// One BM x BN tile of C per thread block (blockIdx.x over columns, blockIdx.y over rows), (BM/TM) x (BN/TN)
// threads, each owning TM x TN elements strided by the thread grid (rows ty + r * BM/TM, columns tx + c * BN/TN)
// so that the shared-memory reads of B are consecutive across a warp and those of A are broadcasts.
template <typename T, typename SA, typename SB, int BM, int BN, int BK, int TM, int TN, Tri TRI, bool NEG, Mode MODE>
__device__ __forceinline__ void gemm_tile(
        int m, int n, int depth, Operand<SA> a, Operand<SB> b, T* c, long long cOff, long long ldc,
        const float* bias) {
    constexpr int NTX = BN / TN;
    constexpr int NTY = BM / TM;
    constexpr int NT = NTX * NTY;
    __shared__ T As[BK][BM + 1];  // As[p][i], padded: p-fast tile stores spread over banks
    __shared__ T Bs[BK][BN + 1];  // Bs[p][j]

    const int i0 = blockIdx.y * BM;
    const int j0 = blockIdx.x * BN;
    if (TRI == Tri::UPPER && i0 > j0 + BN - 1) {
        return;
    }
    if (TRI == Tri::LOWER && j0 > i0 + BM - 1) {
        return;
    }
    const int tid = threadIdx.x;
    const int tx = tid % NTX;
    const int ty = tid / NTX;

    T acc[TM][TN];
#pragma unroll
    for (int r = 0; r < TM; r++) {
#pragma unroll
        for (int q = 0; q < TN; q++) {
            int i = i0 + ty + r * NTY;
            int j = j0 + tx + q * NTX;
            bool mine = i < m && j < n && in_triangle<TRI>(i, j);
            acc[r][q] = (MODE == Mode::CHAIN && mine) ? c[cOff + i * ldc + j] : T(0);
        }
    }

    const bool aPFast = a.s1 == 1;
    const bool bJFast = b.s1 == 1;
    for (int p0 = 0; p0 < depth; p0 += BK) {
        for (int e = tid; e < BM * BK; e += NT) {
            int ii = aPFast ? e / BK : e % BM;
            int pp = aPFast ? e % BK : e / BM;
            int gi = i0 + ii;
            int gp = p0 + pp;
            As[pp][ii] = (gi < m && gp < depth) ? T(widen(a.p[a.off + gi * a.s0 + gp * a.s1])) : T(0);
        }
        for (int e = tid; e < BK * BN; e += NT) {
            int jj = bJFast ? e % BN : e / BK;
            int pp = bJFast ? e / BN : e % BK;
            int gj = j0 + jj;
            int gp = p0 + pp;
            Bs[pp][jj] = (gj < n && gp < depth) ? T(widen(b.p[b.off + gp * b.s0 + gj * b.s1])) : T(0);
        }
        __syncthreads();
        const int pmax = min(BK, depth - p0);
        if (pmax == BK) {
#pragma unroll
            for (int pp = 0; pp < BK; pp++) {
                T av[TM];
                T bv[TN];
#pragma unroll
                for (int r = 0; r < TM; r++) {
                    av[r] = NEG ? -As[pp][ty + r * NTY] : As[pp][ty + r * NTY];
                }
#pragma unroll
                for (int q = 0; q < TN; q++) {
                    bv[q] = Bs[pp][tx + q * NTX];
                }
#pragma unroll
                for (int r = 0; r < TM; r++) {
#pragma unroll
                    for (int q = 0; q < TN; q++) {
                        acc[r][q] = fma_rn(av[r], bv[q], acc[r][q]);
                    }
                }
            }
        } else {
            for (int pp = 0; pp < pmax; pp++) {
                T av[TM];
                T bv[TN];
#pragma unroll
                for (int r = 0; r < TM; r++) {
                    av[r] = NEG ? -As[pp][ty + r * NTY] : As[pp][ty + r * NTY];
                }
#pragma unroll
                for (int q = 0; q < TN; q++) {
                    bv[q] = Bs[pp][tx + q * NTX];
                }
#pragma unroll
                for (int r = 0; r < TM; r++) {
#pragma unroll
                    for (int q = 0; q < TN; q++) {
                        acc[r][q] = fma_rn(av[r], bv[q], acc[r][q]);
                    }
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < TM; r++) {
#pragma unroll
        for (int q = 0; q < TN; q++) {
            int i = i0 + ty + r * NTY;
            int j = j0 + tx + q * NTX;
            if (i < m && j < n && in_triangle<TRI>(i, j)) {
                long long at = cOff + i * ldc + j;
                if (MODE == Mode::ADD) {
                    c[at] = c[at] + acc[r][q];
                } else if (MODE == Mode::STORE && bias != nullptr) {
                    c[at] = acc[r][q] + T(bias[j]);
                } else {
                    c[at] = acc[r][q];
                }
            }
        }
    }
}

}  // namespace m2q
