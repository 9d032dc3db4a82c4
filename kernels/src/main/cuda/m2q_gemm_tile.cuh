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

// Element offsets are int: every buffer here holds fewer than 2^31 elements (each mirrors a Java array or is a
// [k, k] matrix with k*k < 2^31), so in-range offsets fit, and out-of-range elements are never addressed.
template <typename S>
struct Operand {
    const S* p;
    int off;
    int s0;
    int s1;
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

// Element (r, s) of an operand as T, 0 outside [0, rows) x [0, cols).
template <typename T, typename S>
__device__ __forceinline__ T element(const Operand<S>& o, int r, int s, int rows, int cols) {
    return r < rows && s < cols ? T(widen(o.p[o.off + r * o.s0 + s * o.s1])) : T(0);
}

// T values per 16-byte shared-memory load: the micro-tile reads of A and B are vectorized.
template <typename T>
struct Vec;
template <>
struct Vec<float> {
    using type = float4;
    static constexpr int N = 4;
};
template <>
struct Vec<double> {
    using type = double2;
    static constexpr int N = 2;
};

// One BM x BN tile of C per thread block (blockIdx.x over columns, blockIdx.y over rows), (BM/TM) x (BN/TN)
// threads. Thread (tx, ty) owns rows (r / V) * (BM / (TM / V)) + ty * V + r % V for r < TM, and the same pattern
// of columns with tx, V = 16 bytes / sizeof(T): its A and B values of each depth step are 16-byte shared loads,
// conflict-free across a warp.
template <typename T, typename SA, typename SB, int BM, int BN, int BK, int TM, int TN, Tri TRI, bool NEG, Mode MODE>
__device__ __forceinline__ void gemm_tile(
        int m, int n, int depth, Operand<SA> a, Operand<SB> b, T* c, int cOff, int ldc, const float* bias) {
    constexpr int V = Vec<T>::N;
    using VT = typename Vec<T>::type;
    constexpr int NTX = BN / TN;
    constexpr int NTY = BM / TM;
    constexpr int NT = NTX * NTY;
    constexpr int PAD = V;  // keeps rows 16-byte aligned; spreads the p-fast tile stores over the banks
    constexpr int LA = BM * BK / NT;
    constexpr int LB = BK * BN / NT;
    static_assert(TM % V == 0 && TN % V == 0, "micro-tile must be whole 16-byte vectors");
    static_assert((BM * BK) % NT == 0 && (BK * BN) % NT == 0, "tile loads must divide evenly");
    __shared__ __align__(16) T As[BK][BM + PAD];  // As[p][i]
    __shared__ __align__(16) T Bs[BK][BN + PAD];  // Bs[p][j]

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
            int i = i0 + (r / V) * (NTY * V) + ty * V + r % V;
            int j = j0 + (q / V) * (NTX * V) + tx * V + q % V;
            bool mine = i < m && j < n && in_triangle<TRI>(i, j);
            acc[r][q] = (MODE == Mode::CHAIN && mine) ? c[cOff + i * ldc + j] : T(0);
        }
    }

    // Tile element e of A is (ii, pp) and of B (pp, jj), walking each operand's contiguous index first.
    const bool aPFast = a.s1 == 1;
    const bool bJFast = b.s1 == 1;
    auto load = [&](int p0) {
#pragma unroll
        for (int l = 0; l < LA; l++) {
            int e = tid + l * NT;
            int ii = aPFast ? e / BK : e % BM;
            int pp = aPFast ? e % BK : e / BM;
            As[pp][ii] = element<T>(a, i0 + ii, p0 + pp, m, depth);
        }
#pragma unroll
        for (int l = 0; l < LB; l++) {
            int e = tid + l * NT;
            int jj = bJFast ? e % BN : e / BK;
            int pp = bJFast ? e / BN : e % BK;
            Bs[pp][jj] = element<T>(b, p0 + pp, j0 + jj, depth, n);
        }
    };
    auto step = [&](int pp) {
        T av[TM];
        T bv[TN];
#pragma unroll
        for (int r = 0; r < TM; r += V) {
            VT v = *reinterpret_cast<const VT*>(&As[pp][(r / V) * (NTY * V) + ty * V]);
            const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
            for (int h = 0; h < V; h++) {
                av[r + h] = NEG ? -e[h] : e[h];
            }
        }
#pragma unroll
        for (int q = 0; q < TN; q += V) {
            VT v = *reinterpret_cast<const VT*>(&Bs[pp][(q / V) * (NTX * V) + tx * V]);
            const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
            for (int h = 0; h < V; h++) {
                bv[q + h] = e[h];
            }
        }
#pragma unroll
        for (int r = 0; r < TM; r++) {
#pragma unroll
            for (int q = 0; q < TN; q++) {
                acc[r][q] = fma_rn(av[r], bv[q], acc[r][q]);
            }
        }
    };

    for (int p0 = 0; p0 < depth; p0 += BK) {
        load(p0);
        __syncthreads();
        const int pmax = min(BK, depth - p0);
        if (pmax == BK) {
#pragma unroll
            for (int pp = 0; pp < BK; pp++) {
                step(pp);
            }
        } else {
            for (int pp = 0; pp < pmax; pp++) {
                step(pp);
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < TM; r++) {
#pragma unroll
        for (int q = 0; q < TN; q++) {
            int i = i0 + (r / V) * (NTY * V) + ty * V + r % V;
            int j = j0 + (q / V) * (NTX * V) + tx * V + q % V;
            if (i < m && j < n && in_triangle<TRI>(i, j)) {
                int at = cOff + i * ldc + j;
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
