// GPTQ's column loop (GptqKernels#columnLoop): one launch per block of B positions quantizes the block with one
// thread per output column; the lazy batch update that follows is m2q_gemm_acc_f32 (gemm.cu) on the same
// device-resident W1, U and -Err1.
#include "m2q_common.cuh"

namespace {
constexpr int GPTQ_THREADS = 32;  // output columns per thread block

// The first failure of column c, kept only if the column has none yet (each column has one owner thread, so
// no race): [pos, kind (0: a non-finite weight, 1: a scale beyond fp16), row, value bits].
__device__ __forceinline__ void fail(int* errRec, int* errAny, int c, int pos, int kind, int row, float value) {
    int* rec = errRec + 4LL * c;
    if (rec[0] < 0) {
        rec[0] = pos;
        rec[1] = kind;
        rec[2] = row;
        rec[3] = __float_as_int(value);
    }
    *errAny = 1;
}
}  // namespace

// Java twin: GptqLoop.run, GptqKernels#columnLoop javadoc.
// For positions i in [i1, i2), column c = this thread: the group's scale (static: scales[(perm[i]/G)*n + c];
// dynamic: at i % G == 0, Rtn.scale of max |W1[r, c]| over r in [i, i + G), the rows of this block as this
// block has updated them and the later rows as the earlier blocks left them, exactly as the Java loop sees
// them), q = Rtn.code, codes[perm[i]*n + c] = q, err = (w - Rtn.dequant(q, s)) / U[i, i], -err into negErr row
// i - i1, then w_j = fma(-U[i, j], err, w_j) for the block's later rows j: each W1 element receives the errors
// of earlier positions in position order, one FMA each, as the lazy update's FMA chain continues it.
// Failures follow GptqLoop.groupScales / Rtn.scale (dynamic groups, at a group start) or any quantized weight that is
// not finite (static groups): recorded per column, the host reports the first in the Java loop's order.
//
// wt [k, n] W1 (rows of this block and later), u [k, k] U, perm [k] position -> original channel, scales [k/G, n],
// codes [k, n] by original channel, negErr [B, n], errRec [n, 4] (rec[0] = -1: none), errAny [1], errSq [n]: each
// column's sum of err^2, folded in position order with double fmas (GptqLoop's errSq; the host adds the columns in
// order, GptqCodes.total).
// Grid ceil(n/32), block 32; dynamic shared B*32*4 bytes when useShared (the block's column slice lives there),
// else 0 (the slice is updated in wt itself).
extern "C" __global__ void __launch_bounds__(GPTQ_THREADS) m2q_gptq_block(
        int k, int n, int i1, int i2, int groupSize, int staticGroups, int useShared,
        float* wt, const float* u, const int* perm, float* scales, int* codes, float* negErr, int* errRec,
        int* errAny, double* errSq) {
    extern __shared__ float slice[];
    const int c = blockIdx.x * GPTQ_THREADS + threadIdx.x;
    if (c >= n || errRec[4LL * c] >= 0) {
        return;
    }
    float* seg;
    long long stride;
    if (useShared) {
        seg = slice + threadIdx.x;
        stride = GPTQ_THREADS;
        for (int j = 0; j < i2 - i1; j++) {
            seg[j * stride] = wt[static_cast<long long>(i1 + j) * n + c];
        }
    } else {
        seg = wt + static_cast<long long>(i1) * n + c;
        stride = n;
    }
    const int G = groupSize;
    double sq = errSq[c];
    float s = 0.0f;
    if (!staticGroups && i1 % G != 0) {
        s = scales[static_cast<long long>(i1 / G) * n + c];  // the group began in an earlier block
    }
    for (int i = i1; i < i2; i++) {
        if (staticGroups) {
            s = scales[static_cast<long long>(perm[i] / G) * n + c];
        } else if (i % G == 0) {
            float amax = 0.0f;
            for (int r = i; r < i + G; r++) {
                float v = r < i2 ? seg[(r - i1) * stride] : wt[static_cast<long long>(r) * n + c];
                if (!isfinite(v)) {
                    fail(errRec, errAny, c, i, 0, r, v);
                    return;
                }
                amax = fmaxf(amax, fabsf(v));
            }
            s = m2q::rtn_scale(amax);
            if (isinf(s)) {
                fail(errRec, errAny, c, i, 1, i, amax);
                return;
            }
            scales[static_cast<long long>(i / G) * n + c] = s;
        }
        const float w = seg[(i - i1) * stride];
        if (staticGroups && !isfinite(w)) {
            fail(errRec, errAny, c, i, 0, i, w);
            return;
        }
        const int q = m2q::rtn_code(w, s);
        codes[static_cast<long long>(perm[i]) * n + c] = q;
        const float* ui = u + static_cast<long long>(i) * k;
        const float err = __fdiv_rn(__fsub_rn(w, m2q::rtn_dequant(q, s)), ui[i]);
        negErr[static_cast<long long>(i - i1) * n + c] = -err;
        sq = __fma_rn(static_cast<double>(err), static_cast<double>(err), sq);
        for (int j = i + 1; j < i2; j++) {
            float* wj = seg + (j - i1) * stride;
            *wj = __fmaf_rn(-__ldg(ui + j), err, *wj);
        }
    }
    errSq[c] = sq;
}

// ---- GPTQ on resident data (GptqKernels#quantize, #finishHessian): the steps around the column loop. ----

namespace {
constexpr int TILE = 32;  // side of the shared-memory tiles of the transposing kernels; blocks are 32 x 8

// W [n, k] element (r, c) as fp32: bf16 bits (exact) or fp32.
__device__ __forceinline__ float weight_at(const void* w, int bf16, long long e) {
    return bf16 ? m2q::bf16_bits_to_float(static_cast<const uint16_t*>(w)[e]) : static_cast<const float*>(w)[e];
}
}  // namespace

// Java twin: HessianAccumulator.finish. Bit for bit: each upper element s[i, j] (i <= j) becomes fl(s[i, j] * f)
// and is mirrored into s[j, i]; f = fp32(2 / tokens) from the host. s [k, k]. Only tiles on and above the
// diagonal work: tile (bi, bj) reads its upper elements, writes them scaled (coalesced) and, through shared
// memory, the mirror into tile (bj, bi) (coalesced too). Grid (ceil(k/32), ceil(k/32)), block (32, 8).
extern "C" __global__ void m2q_hessian_finish(int k, float f, float* s) {
    __shared__ float tile[TILE][TILE + 1];
    const int bi = blockIdx.y * TILE;  // rows
    const int bj = blockIdx.x * TILE;  // columns
    if (bj < bi) {
        return;
    }
    for (int r = threadIdx.y; r < TILE; r += 8) {
        const int i = bi + r;
        const int j = bj + threadIdx.x;
        if (i < k && j < k && i <= j) {
            const long long e = static_cast<long long>(i) * k + j;
            const float v = __fmul_rn(s[e], f);
            s[e] = v;
            tile[r][threadIdx.x] = v;
        }
    }
    __syncthreads();
    for (int r = threadIdx.y; r < TILE; r += 8) {
        const int j = bj + r;            // row of the mirror
        const int i = bi + threadIdx.x;  // its column
        if (i < k && j < k && i < j) {
            s[static_cast<long long>(j) * k + i] = tile[threadIdx.x][r];
        }
    }
}

// Java twin: Gptq.transpose, then ActOrder.permuteRows (Gptq.quantize's W1 with dead inputs zeroed and act-order
// applied, in one pass). w1[i*n + r] = cols[i] < 0 ? 0 : W[r*k + cols[i]]: cols[i] is the original input
// channel at position i, or -1 for a dead one. W [n, k] fp32 or bf16 bits (exact). Through a 32 x 32 tile so
// that the writes coalesce. Grid (ceil(n/32), ceil(k/32)), block (32, 8).
extern "C" __global__ void m2q_gptq_transpose(int n, int k, const void* w, int bf16, const int* cols, float* w1) {
    __shared__ float tile[TILE][TILE + 1];
    const int r0 = blockIdx.x * TILE;  // rows of W (columns of W1)
    const int i0 = blockIdx.y * TILE;  // positions (rows of W1)
    const int i = i0 + threadIdx.x;
    const int col = i < k ? cols[i] : -1;
    for (int rr = threadIdx.y; rr < TILE; rr += 8) {
        const int r = r0 + rr;
        float v = 0.0f;
        if (r < n && col >= 0) {
            v = weight_at(w, bf16, static_cast<long long>(r) * k + col);
        }
        tile[rr][threadIdx.x] = v;  // tile[row of W][position]
    }
    __syncthreads();
    for (int ii = threadIdx.y; ii < TILE; ii += 8) {
        const int p = i0 + ii;
        const int r = r0 + threadIdx.x;
        if (p < k && r < n) {
            w1[static_cast<long long>(p) * n + r] = tile[threadIdx.x][ii];
        }
    }
}

// Java twin: GptqLoop.groupScales (static groups, Gptq.quantize before act-order permutes W1). For group gi and
// output c (one thread): absmax (Math.max's rules) of W1 at the rows rowOf[ch] holding the group's original
// channels ch in [gi*G, gi*G + G), then scales[gi*n + c] = Rtn.scale. A non-finite absmax or a scale beyond
// fp16 writes the absmax there instead and lowers *failed to gi*n + c (the first the Java loop meets, which the
// host reports with GptqLoop.groupScale's message). w1 [k, n], rowOf [k], scales [k/G, n], failed [1] (k/G*n
// before). Grid ceil(groups*n / 256), block 256.
extern "C" __global__ void m2q_gptq_static_scales(
        int n, int groupSize, int groups, const float* w1, const int* rowOf, float* scales, int* failed) {
    const long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(groups) * n) {
        return;
    }
    const int gi = static_cast<int>(e / n);
    const int c = static_cast<int>(e % n);
    float amax = 0.0f;
    for (int ch = gi * groupSize; ch < (gi + 1) * groupSize; ch++) {
        amax = m2q::java_max(amax, fabsf(w1[static_cast<long long>(rowOf[ch]) * n + c]));
    }
    const float s = isfinite(amax) ? m2q::rtn_scale(amax) : amax;
    if (!isfinite(s)) {
        scales[e] = amax;
        atomicMin(failed, static_cast<int>(e));
    } else {
        scales[e] = s;
    }
}

// Java twin: DampedCholesky.factor (its a = JHJ and the finiteness check), ActOrder.permuteSymmetric. Exact:
// a[p*k + q] = h[src[p]*k + src[q]] with src[p] the original channel of position k-1-p (JHJ of the permuted H).
// A non-finite value lowers *firstBad to its index in the permuted H, (k-1-p)*k + (k-1-q), the entry that
// DampedCholesky.factor names. h, a [k, k] (k*k < 2^31), src [k], firstBad [1] (k*k before).
// Grid (ceil(k/256), k), block 256.
extern "C" __global__ void m2q_gptq_jhj(int k, const float* h, const int* src, float* a, int* firstBad) {
    const int q = blockIdx.x * blockDim.x + threadIdx.x;
    const int p = blockIdx.y;
    if (q >= k) {
        return;
    }
    const float v = h[static_cast<long long>(src[p]) * k + src[q]];
    a[static_cast<long long>(p) * k + q] = v;
    if (!isfinite(v)) {
        atomicMin(firstBad, (k - 1 - p) * k + (k - 1 - q));
    }
}

// Java twin: DampedCholesky.reverseLowerIntoUpper. Exact, in place: U = J X J for X = L^-1 in the lower triangle
// of a [k, k]: the thread of (p, q), q > p, moves a[k-1-p, k-1-q] (strictly lower) to a[p, q] and zeroes it, so
// every lower element is read and cleared by one thread; the thread of (p, p), p < k-1-p, swaps the two diagonal
// entries. Grid (ceil(k/256), k), block 256.
extern "C" __global__ void m2q_gptq_reverse_upper(int k, float* a) {
    const int q = blockIdx.x * blockDim.x + threadIdx.x;
    const int p = blockIdx.y;
    if (q >= k || q < p) {
        return;
    }
    const long long up = static_cast<long long>(p) * k + q;
    const long long low = static_cast<long long>(k - 1 - p) * k + (k - 1 - q);
    if (q > p) {
        a[up] = a[low];
        a[low] = 0.0f;
    } else if (p < k - 1 - p) {
        const float t = a[up];
        a[up] = a[low];
        a[low] = t;
    }
}

// Java twin: QuantizedLinear.dequantize, bit for bit, and Gptq.proxyLoss's D = W - Wq (one fp32 subtraction).
// wq[r*k + c] = scales[gIdx[c]*n + r] * (codes[c*n + r] - 8), d[r*k + c] = W[r*k + c] - wq[r*k + c].
// codes [k, n] by original channel, scales [k/G, n], gIdx [k], W [n, k] fp32 or bf16 bits, wq and d [n, k].
// Through a 32 x 32 tile (codes are read transposed). Grid (ceil(k/32), ceil(n/32)), block (32, 8).
extern "C" __global__ void m2q_gptq_dequant(
        int n, int k, const int* codes, const float* scales, const int* gIdx, const void* w, int bf16, float* wq,
        float* d) {
    __shared__ float tile[TILE][TILE + 1];
    const int c0 = blockIdx.x * TILE;  // input channels
    const int r0 = blockIdx.y * TILE;  // outputs
    for (int cc = threadIdx.y; cc < TILE; cc += 8) {
        const int c = c0 + cc;
        const int r = r0 + threadIdx.x;
        float v = 0.0f;
        if (c < k && r < n) {
            v = m2q::rtn_dequant(codes[static_cast<long long>(c) * n + r],
                                 scales[static_cast<long long>(gIdx[c]) * n + r]);
        }
        tile[cc][threadIdx.x] = v;  // tile[channel][output]
    }
    __syncthreads();
    for (int rr = threadIdx.y; rr < TILE; rr += 8) {
        const int r = r0 + rr;
        const int c = c0 + threadIdx.x;
        if (r < n && c < k) {
            const long long e = static_cast<long long>(r) * k + c;
            const float v = tile[threadIdx.x][rr];
            wq[e] = v;
            d[e] = __fsub_rn(weight_at(w, bf16, e), v);
        }
    }
}

// Java twin: Gptq.proxyLoss (as Gptq.sampledLoss calls it), its sum of (D H) o D in double, first pass: rows[r] =
// sum over c of (double) y[r*k + c] * d[r*dStride + c], one block per row, a fixed tree (deterministic; the Java
// loop adds in sequence, so the two differ by double rounding only). y [count, k]; d rows dStride apart (the
// sample's rows of D [n, k]); rows [count]. Grid count, block 256.
extern "C" __global__ void __launch_bounds__(256) m2q_gptq_loss_rows(
        int k, const float* y, const float* d, long long dStride, double* rows) {
    __shared__ double part[256];
    const long long base = static_cast<long long>(blockIdx.x) * k;
    const long long dBase = static_cast<long long>(blockIdx.x) * dStride;
    double s = 0.0;
    for (int c = threadIdx.x; c < k; c += blockDim.x) {
        s += static_cast<double>(y[base + c]) * static_cast<double>(d[dBase + c]);
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h /= 2) {
        if (threadIdx.x < h) {
            part[threadIdx.x] += part[threadIdx.x + h];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        rows[blockIdx.x] = part[0];
    }
}

// Java twin: Gptq.proxyLoss, second pass: *out = sum of rows[0 .. count) in double (a fixed tree). One block of 256.
extern "C" __global__ void __launch_bounds__(256) m2q_gptq_loss_total(int count, const double* rows, double* out) {
    __shared__ double part[256];
    double s = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        s += rows[i];
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h /= 2) {
        if (threadIdx.x < h) {
            part[threadIdx.x] += part[threadIdx.x + h];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        *out = part[0];
    }
}

// Java twin: DampedCholesky.factor's diagonal read (H[i, i] for the dead columns, act-order and the damping's
// mean, decided on the host). diag[i] = h[i*k + i]. Grid ceil(k/256), block 256.
extern "C" __global__ void m2q_gptq_diagonal(int k, const float* h, float* diag) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < k) {
        diag[i] = h[static_cast<long long>(i) * k + i];
    }
}
