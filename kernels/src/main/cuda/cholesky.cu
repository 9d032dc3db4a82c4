// GptqKernels#choleskyInverse on the device, in fp32 or fp64 (each kernel instantiated for both, suffix _f32/_f64):
// A + shift*I = L*L^T by a blocked right-looking Cholesky, then X = L^-1 by blocked forward substitution.
//
// Buffers (all [k, k] row-major): M holds A's lower triangle and becomes L (the strict upper triangle stays 0);
// X starts at 0 and becomes L^-1 (lower, the strict upper stays 0). Blocks of NB = 64 columns.
//
// Cholesky, for each diagonal block J = [j0, j1):
//   m2q_chol_diag      factor M[J, J] in one thread block; a pivot that is not positive or not finite sets *flag
//   m2q_chol_panel     L[j1:, J] = M[j1:, J] . L[J, J]^-T, forward substitution, one thread per row
//   m2q_chol_trailing  M[j1:, j1:] -= L[j1:, J] . L[j1:, J]^T on and below the diagonal (the tiled product)
// Every kernel returns at once when *flag is set, so after a failure the host reads one flag and stops.
//
// Inverse: m2q_trinv_diag writes every X[P, P] = L[P, P]^-1 at once; then for each block row P in order
//   m2q_trinv_rowpanel  X[P, :p0] = X[P, P] . R_P, R_P being what X[P, :p0] holds: -sum_{Q<P} L[P, Q] X[Q, :p0]
//   m2q_trinv_update    X[p1:, :p1] -= L[p1:, P] . X[P, :p1]   (the tiled product)
// The Java twin (JavaCholesky's loops) is left-looking with Crout dots, so the results agree to within the
// rounding of either order, a few ulps times the condition number: the tests state that tolerance.
#include "m2q_common.cuh"
#include "m2q_gemm_tile.cuh"

using m2q::Mode;
using m2q::Operand;
using m2q::Tri;

namespace {

constexpr int NB = 64;
constexpr int LD = NB + 1;  // padded row of a staged 64 x 64 block

__device__ __forceinline__ float to_t(float v, float) { return v; }
__device__ __forceinline__ double to_t(float v, double) { return static_cast<double>(v); }

__device__ __forceinline__ float shifted(float d, float shift, float) { return __fadd_rn(d, shift); }
__device__ __forceinline__ double shifted(float d, float shift, double) {
    return static_cast<double>(d) + static_cast<double>(shift);
}

__device__ __forceinline__ float sqrt_rn(float v) { return __fsqrt_rn(v); }
__device__ __forceinline__ double sqrt_rn(double v) { return __dsqrt_rn(v); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }

// M[i, j] = A[i, j] for i > j (A's strict lower part read from the strict upper triangle of a: a[j*k + i]),
// M[i, i] = diag[i] + shift (in T), M[i, j] = 0 for i < j. 32 x 32 tiles through shared memory so that both
// the transposed read and the write coalesce. Grid (ceil(k/32), ceil(k/32)), block (32, 8).
template <typename T>
__device__ __forceinline__ void chol_init(int k, const float* a, const float* diag, float shift, T* M) {
    __shared__ float tile[32][33];
    const int bi = blockIdx.y * 32;  // rows of M
    const int bj = blockIdx.x * 32;  // columns of M
    if (bj > bi + 31) {
        for (int r = threadIdx.y; r < 32; r += 8) {
            int i = bi + r;
            int j = bj + threadIdx.x;
            if (i < k && j < k) {
                M[static_cast<long long>(i) * k + j] = T(0);
            }
        }
        return;
    }
    // tile[c][r] = a[(bj + c)*k + bi + r]: row bj + c of a, columns bi .. bi + 31
    for (int c = threadIdx.y; c < 32; c += 8) {
        int ar = bj + c;
        int ac = bi + threadIdx.x;
        tile[c][threadIdx.x] = ar < k && ac < k ? a[static_cast<long long>(ar) * k + ac] : 0.0f;
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += 8) {
        int i = bi + r;
        int j = bj + threadIdx.x;
        if (i < k && j < k) {
            T v;
            if (i > j) {
                v = to_t(tile[threadIdx.x][r], T(0));
            } else if (i == j) {
                v = shifted(diag[i], shift, T(0));
            } else {
                v = T(0);
            }
            M[static_cast<long long>(i) * k + j] = v;
        }
    }
}

// The unblocked right-looking factorization of M[J, J], J = [j0, j0 + b), b = min(64, k - j0), staged in shared
// memory; 256 threads. Dynamic shared: 64 * 65 * sizeof(T).
template <typename T>
__device__ __forceinline__ void chol_diag(int k, int j0, T* M, int* flag) {
    extern __shared__ __align__(16) unsigned char raw[];
    T* S = reinterpret_cast<T*>(raw);
    __shared__ int failed;
    if (*flag != 0) {
        return;
    }
    const int b = min(NB, k - j0);
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        int r = e / b;
        int c = e % b;
        S[r * LD + c] = c <= r ? M[static_cast<long long>(j0 + r) * k + j0 + c] : T(0);
    }
    if (threadIdx.x == 0) {
        failed = 0;
    }
    __syncthreads();
    for (int q = 0; q < b; q++) {
        if (threadIdx.x == 0) {
            T d = S[q * LD + q];
            if (d > T(0) && !isinf(d)) {
                S[q * LD + q] = sqrt_rn(d);
            } else {
                failed = 1;
                *flag = 1;
            }
        }
        __syncthreads();
        if (failed) {
            return;
        }
        const T lqq = S[q * LD + q];
        for (int r = q + 1 + threadIdx.x; r < b; r += blockDim.x) {
            S[r * LD + q] = div_rn(S[r * LD + q], lqq);
        }
        __syncthreads();
        const int w = b - q - 1;
        for (int e = threadIdx.x; e < w * w; e += blockDim.x) {
            int r = q + 1 + e / w;
            int c = q + 1 + e % w;
            if (c <= r) {
                S[r * LD + c] = m2q::fma_rn(-S[r * LD + q], S[c * LD + q], S[r * LD + c]);
            }
        }
        __syncthreads();
    }
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        int r = e / b;
        int c = e % b;
        if (c <= r) {
            M[static_cast<long long>(j0 + r) * k + j0 + c] = S[r * LD + c];
        }
    }
}

// Rows [j1 + 64*blockIdx.x, +64) of the panel below the (factored) diagonal block, j1 = j0 + 64 < k: row i
// becomes the solution l of L[J, J] . l^T = M[i, J]^T. 64 threads, one per row. Dynamic shared 2 * 64*65*sizeof(T).
template <typename T>
__device__ __forceinline__ void chol_panel(int k, int j0, T* M, const int* flag) {
    extern __shared__ __align__(16) unsigned char raw[];
    T* L = reinterpret_cast<T*>(raw);
    T* R = L + NB * LD;
    if (*flag != 0) {
        return;
    }
    const int j1 = j0 + NB;
    const int rbase = j1 + blockIdx.x * NB;
    for (int e = threadIdx.x; e < NB * NB; e += blockDim.x) {
        int r = e / NB;
        int c = e % NB;
        L[r * LD + c] = c <= r ? M[static_cast<long long>(j0 + r) * k + j0 + c] : T(0);
        R[r * LD + c] = rbase + r < k ? M[static_cast<long long>(rbase + r) * k + j0 + c] : T(0);
    }
    __syncthreads();
    const int t = threadIdx.x;
    if (rbase + t < k) {
        T* row = R + t * LD;
        for (int q = 0; q < NB; q++) {
            T s = row[q];
            for (int p = 0; p < q; p++) {
                s = m2q::fma_rn(-row[p], L[q * LD + p], s);
            }
            row[q] = div_rn(s, L[q * LD + q]);
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < NB * NB; e += blockDim.x) {
        int r = e / NB;
        int c = e % NB;
        if (rbase + r < k) {
            M[static_cast<long long>(rbase + r) * k + j0 + c] = R[r * LD + c];
        }
    }
}

// X[P, P] = L[P, P]^-1 for block P = blockIdx.x, p0 = 64 * P: thread j computes column j by forward
// substitution, X[j, j] = 1 / L[j, j], X[i, j] = -(sum_{j <= p < i} L[i, p] X[p, j]) / L[i, i]. 64 threads.
// Dynamic shared 2 * 64*65*sizeof(T).
template <typename T>
__device__ __forceinline__ void trinv_diag(int k, const T* M, T* X) {
    extern __shared__ __align__(16) unsigned char raw[];
    T* L = reinterpret_cast<T*>(raw);
    T* Xs = L + NB * LD;
    const int p0 = blockIdx.x * NB;
    const int b = min(NB, k - p0);
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        int r = e / b;
        int c = e % b;
        L[r * LD + c] = c <= r ? M[static_cast<long long>(p0 + r) * k + p0 + c] : T(0);
    }
    __syncthreads();
    const int j = threadIdx.x;
    if (j < b) {
        Xs[j * LD + j] = div_rn(T(1), L[j * LD + j]);
        for (int i = j + 1; i < b; i++) {
            T s = T(0);
            for (int p = j; p < i; p++) {
                s = m2q::fma_rn(L[i * LD + p], Xs[p * LD + j], s);
            }
            Xs[i * LD + j] = div_rn(-s, L[i * LD + i]);
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        int r = e / b;
        int c = e % b;
        if (c <= r) {
            X[static_cast<long long>(p0 + r) * k + p0 + c] = Xs[r * LD + c];
        }
    }
}

constexpr int STRIP = 32;

// X[P, c] = X[P, P] . X[P, c] for the columns c of strip blockIdx.x below p0 (in place: the strip is staged
// first). 256 threads. Dynamic shared (64*65 + 64*33) * sizeof(T).
template <typename T>
__device__ __forceinline__ void trinv_rowpanel(int k, int p0, T* X) {
    extern __shared__ __align__(16) unsigned char raw[];
    T* D = reinterpret_cast<T*>(raw);
    T* R = D + NB * LD;  // [64][STRIP + 1]
    const int b = min(NB, k - p0);
    const int c0 = blockIdx.x * STRIP;
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        int r = e / b;
        int c = e % b;
        D[r * LD + c] = c <= r ? X[static_cast<long long>(p0 + r) * k + p0 + c] : T(0);
    }
    for (int e = threadIdx.x; e < b * STRIP; e += blockDim.x) {
        int r = e / STRIP;
        int cc = e % STRIP;
        R[r * (STRIP + 1) + cc] = c0 + cc < p0 ? X[static_cast<long long>(p0 + r) * k + c0 + cc] : T(0);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < b * STRIP; e += blockDim.x) {
        int i = e / STRIP;
        int cc = e % STRIP;
        if (c0 + cc < p0) {
            T s = T(0);
            for (int p = 0; p <= i; p++) {
                s = m2q::fma_rn(D[i * LD + p], R[p * (STRIP + 1) + cc], s);
            }
            X[static_cast<long long>(p0 + i) * k + c0 + cc] = s;
        }
    }
}

}  // namespace

#define M2Q_CHOL(SUF, T, BM, TM)                                                                                \
    /* Java twin: JavaCholesky.choleskyLower's input (A from the strict upper triangle and diag + shift). */    \
    /* a [k, k] fp32, diag [k], M [k, k]. Grid (ceil(k/32), ceil(k/32)), block (32, 8). */                      \
    extern "C" __global__ void m2q_chol_init_##SUF(int k, const float* a, const float* diag, float shift, T* M) { \
        chol_init<T>(k, a, diag, shift, M);                                                                     \
    }                                                                                                           \
    /* Java twin: JavaCholesky.choleskyLower, diagonal block. M [k, k], flag [1]. Grid 1, block 256. */         \
    extern "C" __global__ void __launch_bounds__(256) m2q_chol_diag_##SUF(int k, int j0, T* M, int* flag) {    \
        chol_diag<T>(k, j0, M, flag);                                                                           \
    }                                                                                                           \
    /* Java twin: JavaCholesky.choleskyLower, rows below the diagonal block. */                                 \
    /* M [k, k], flag [1]. Grid ceil((k - j0 - 64)/64), block 64. */                                            \
    extern "C" __global__ void __launch_bounds__(64) m2q_chol_panel_##SUF(int k, int j0, T* M, const int* flag) { \
        chol_panel<T>(k, j0, M, flag);                                                                          \
    }                                                                                                           \
    /* Java twin: JavaCholesky.choleskyLower, the panel product. M [k, k] (on and below the diagonal of */      \
    /* M[j1:, j1:]), flag [1]. Grid (ceil((k-j1)/BM), ceil((k-j1)/BM)), block 256. */                           \
    extern "C" __global__ void __launch_bounds__(256) m2q_chol_trailing_##SUF(int k, int j0, T* M, const int* flag) { \
        if (*flag != 0) {                                                                                       \
            return;                                                                                             \
        }                                                                                                       \
        const int j1 = j0 + NB;                                                                                 \
        const int panel = j1 * k + j0;                                            \
        m2q::gemm_tile<T, T, T, BM, BM, 8, TM, TM, Tri::LOWER, true, Mode::CHAIN>(                              \
                k - j1, k - j1, NB, Operand<T>{M, panel, k, 1}, Operand<T>{M, panel, 1, k}, M, j1 * k + j1, k,    \
                nullptr);                                               \
    }                                                                                                           \
    /* Java twin: JavaCholesky.invertLowerInPlace, diagonal blocks. M [k, k] = L, X [k, k]. */                  \
    /* Grid ceil(k/64), block 64. */                                                                            \
    extern "C" __global__ void __launch_bounds__(64) m2q_trinv_diag_##SUF(int k, const T* M, T* X) {           \
        trinv_diag<T>(k, M, X);                                                                                 \
    }                                                                                                           \
    /* Java twin: JavaCholesky.invertLowerInPlace, block row p0 left of its diagonal block. X [k, k]. */        \
    /* Grid ceil(p0/32), block 256. */                                                                          \
    extern "C" __global__ void __launch_bounds__(256) m2q_trinv_rowpanel_##SUF(int k, int p0, T* X) {          \
        trinv_rowpanel<T>(k, p0, X);                                                                            \
    }                                                                                                           \
    /* Java twin: JavaCholesky.invertLowerInPlace, the product pushing block row p0 down. */                    \
    /* M [k, k] = L, X [k, k]. Grid (ceil(p1/BM), ceil((k-p1)/BM)), block 256. */                               \
    extern "C" __global__ void __launch_bounds__(256) m2q_trinv_update_##SUF(int k, int p0, const T* M, T* X) { \
        const int p1 = p0 + NB;                                                                                 \
        m2q::gemm_tile<T, T, T, BM, BM, 8, TM, TM, Tri::NONE, true, Mode::CHAIN>(                               \
                k - p1, p1, NB, Operand<T>{M, p1 * k + p0, k, 1}, Operand<T>{X, p0 * k, k, 1}, X, p1 * k, k,    \
                nullptr);                                                                                       \
    }

M2Q_CHOL(f32, float, 128, 8)
M2Q_CHOL(f64, double, 64, 4)

// Java twin: GptqKernels#choleskyInverse's "rounds the result to fp32 once" (fp64). out[e] = (float) x[e].
// Grid ceil(count/256), block 256.
extern "C" __global__ void m2q_convert_f64_f32(long long count, const double* x, float* out) {
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e < count) {
        out[e] = static_cast<float>(x[e]);
    }
}
