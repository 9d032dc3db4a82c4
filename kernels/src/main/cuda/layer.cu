// The decoder layer's element-wise and attention operations: rmsNorm, rope, attention, swiglu, and the running
// column absmax. Every fp32 operation that the Java twin rounds separately is written with the _rn intrinsics,
// so nvcc cannot contract it into an FMA the twin does not do.
#include "m2q_common.cuh"

// Java twin: JavaOps.rmsNorm, Kernels#rmsNorm javadoc. One block per row, 256 threads.
// out[r, i] = weight[i] * (x[r, i] * inv_r), inv_r = fp32(1 / sqrt(fp32(sum_i x^2 / dim) + eps)). The sum of
// squares is a double tree reduction (the twin sums left to right): the double sums differ by ~1e-16 relative,
// so inv_r, rounded to fp32, is the twin's except when a sum falls within that of an fp32 rounding boundary
// (one ulp then). x and out [rows, dim] (out may be x), weight [dim].
extern "C" __global__ void __launch_bounds__(256) m2q_rmsnorm(
        int rows, int dim, const float* x, const float* weight, float eps, float* out) {
    __shared__ double partial[256];
    __shared__ float invShared;
    const long long base = static_cast<long long>(blockIdx.x) * dim;
    double ss = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        double v = x[base + i];
        ss = __fma_rn(v, v, ss);  // v*v is exact in double, so the FMA equals the twin's multiply then add
    }
    partial[threadIdx.x] = ss;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) {
            partial[threadIdx.x] += partial[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float meanSq = static_cast<float>(partial[0] / dim);
        invShared = static_cast<float>(1.0 / sqrt(static_cast<double>(__fadd_rn(meanSq, eps))));
    }
    __syncthreads();
    const float inv = invShared;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        out[base + i] = __fmul_rn(weight[i], __fmul_rn(x[base + i], inv));
    }
}

namespace {

// Row r of x [rows, heads*headDim] at position pos, pair i < headDim/2 of every head: the rotation of m2q_rope.
__device__ __forceinline__ void rope_pair(
        long long r, int i, int pos, int heads, int headDim, float* x, const float* invFreq) {
    const int half = headDim / 2;
    const float angle = __fmul_rn(static_cast<float>(pos), invFreq[i]);
    double sd;
    double cd;
    sincos(static_cast<double>(angle), &sd, &cd);
    const float c = static_cast<float>(cd);
    const float s = static_cast<float>(sd);
    float* row = x + r * heads * headDim;
    for (int h = 0; h < heads; h++) {
        float* o = row + h * headDim;
        float a = o[i];
        float b = o[i + half];
        o[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
        o[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
    }
}

}  // namespace

// Java twin: JavaOps.rope, Kernels#rope javadoc. Bit for bit except where CUDA's and Java's double cos/sin round
// to different fp32 values (both are within an ulp of the double result; a flip changes the output by at most
// ~2^-24 * (|a| + |b|)). One thread per (row, i < headDim/2), looping over the heads.
// x [rows, heads*headDim] in place, invFreq [headDim/2], positions [rows].
extern "C" __global__ void m2q_rope(
        int rows, int heads, int headDim, float* x, const float* invFreq, const int* positions) {
    const int half = headDim / 2;
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(rows) * half) {
        return;
    }
    const long long r = e / half;
    rope_pair(r, static_cast<int>(e % half), positions[r], heads, headDim, x, invFreq);
}

// Java twin: JavaBackend.rope, Backend#rope javadoc: m2q_rope with row r at position startPos + r % seqLen,
// computed here instead of read from a positions array (nSeq sequences of seqLen rows, or one sequence's new rows
// after startPos cached ones). The same agreement as m2q_rope. Grid ceil(rows*headDim/2 / 256), block 256.
extern "C" __global__ void m2q_rope_span(
        int rows, int heads, int headDim, float* x, const float* invFreq, int startPos, int seqLen) {
    const int half = headDim / 2;
    long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= static_cast<long long>(rows) * half) {
        return;
    }
    const long long r = e / half;
    const int pos = startPos + static_cast<int>(r % seqLen);
    rope_pair(r, static_cast<int>(e % half), pos, heads, headDim, x, invFreq);
}

namespace {

constexpr int ATT_WARPS = 4;
constexpr int ATT_MAX_PER_LANE = 8;  // headDim <= 256

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    }
    return v;
}

// q . k_s * scale for key row s; lanes hold q[lane + 32*c] (c < perLane); every lane gets the same result.
__device__ __forceinline__ float score(
        const float (&qv)[ATT_MAX_PER_LANE], const float* kr, int lane, int headDim, float scale) {
    float p = 0.0f;
#pragma unroll
    for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
        int d = lane + 32 * c;
        if (d < headDim) {
            p = __fmaf_rn(qv[c], kr[d], p);
        }
    }
    return __fmul_rn(warp_sum(p), scale);
}

}  // namespace

// Java twin: JavaOps.attention, Kernels#attention javadoc. One block of 4 warps per (query row, head).
// Pass 1: the scores' maximum (warps take keys round robin, a lane-parallel dot each). Pass 2: the same scores
// again, e = fp32(exp(double(score - max))), the denominator summed in double, the output sum_s e * v_s in fp32;
// then out = sum * fp32(1 / denominator). The twin scales each e before its axpy and sums in another order:
// equal within fp32 rounding of the dots and sums (~1e-6 relative).
// q, out [nSeq*seqLen, heads*headDim]; k, v [nSeq*(startPos+seqLen), kvHeads*headDim]. Grid nSeq*seqLen*heads.
extern "C" __global__ void __launch_bounds__(128) m2q_attention(
        int nSeq, int seqLen, int startPos, int heads, int kvHeads, int headDim,
        const float* q, const float* k, const float* v, float* out) {
    __shared__ float warpMax[ATT_WARPS];
    __shared__ double warpSum[ATT_WARPS];
    __shared__ float warpOut[ATT_WARPS][32 * ATT_MAX_PER_LANE];
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const long long item = blockIdx.x;
    const int h = static_cast<int>(item % heads);
    const long long row = item / heads;          // query row in [0, nSeq*seqLen)
    const int seq = static_cast<int>(row / seqLen);
    const int t = static_cast<int>(row % seqLen);
    const int kvh = h / (heads / kvHeads);
    const int total = startPos + seqLen;
    const int visible = startPos + t + 1;
    const long long qDim = static_cast<long long>(heads) * headDim;
    const long long kvDim = static_cast<long long>(kvHeads) * headDim;
    const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(headDim)));
    const float* kBase = k + static_cast<long long>(seq) * total * kvDim + static_cast<long long>(kvh) * headDim;
    const float* vBase = v + static_cast<long long>(seq) * total * kvDim + static_cast<long long>(kvh) * headDim;

    float qv[ATT_MAX_PER_LANE];
    const float* qr = q + row * qDim + static_cast<long long>(h) * headDim;
#pragma unroll
    for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
        int d = lane + 32 * c;
        qv[c] = d < headDim ? qr[d] : 0.0f;
    }

    float mx = -INFINITY;
    for (int s = warp; s < visible; s += ATT_WARPS) {
        mx = m2q::java_max(mx, score(qv, kBase + s * kvDim, lane, headDim, scale));
    }
    if (lane == 0) {
        warpMax[warp] = mx;
    }
    __syncthreads();
    mx = warpMax[0];
#pragma unroll
    for (int w = 1; w < ATT_WARPS; w++) {
        mx = m2q::java_max(mx, warpMax[w]);
    }

    double sum = 0.0;
    float acc[ATT_MAX_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
        acc[c] = 0.0f;
    }
    for (int s = warp; s < visible; s += ATT_WARPS) {
        float sc = score(qv, kBase + s * kvDim, lane, headDim, scale);
        float e = static_cast<float>(exp(static_cast<double>(__fsub_rn(sc, mx))));
        sum += e;
        const float* vr = vBase + s * kvDim;
#pragma unroll
        for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
            int d = lane + 32 * c;
            if (d < headDim) {
                acc[c] = __fmaf_rn(e, vr[d], acc[c]);
            }
        }
    }
    if (lane == 0) {
        warpSum[warp] = sum;
    }
#pragma unroll
    for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
        warpOut[warp][lane + 32 * c] = acc[c];
    }
    __syncthreads();
    double den = warpSum[0];
#pragma unroll
    for (int w = 1; w < ATT_WARPS; w++) {
        den += warpSum[w];
    }
    const float inv = static_cast<float>(1.0 / den);
    float* orow = out + row * qDim + static_cast<long long>(h) * headDim;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        float o = warpOut[0][d];
#pragma unroll
        for (int w = 1; w < ATT_WARPS; w++) {
            o = __fadd_rn(o, warpOut[w][d]);
        }
        orow[d] = __fmul_rn(o, inv);
    }
}

// Java twin: JavaOps.attentionPacked, Backend#attentionPacked javadoc. m2q_attention's arithmetic (the same two
// passes, the same tolerance against the twin) over packed rows: row r sees the key rows of PackedRows.key, its
// prefix [spans[3r], spans[3r+1]) then its segment [spans[3r+2], r], visible index s mapping to the prefix's row
// s, then the segment's row s - prefix length. q, out [rows, heads*headDim]; k, v [rows, kvHeads*headDim] (the
// rows' own keys and values); spans [rows, 3] (PackedRows.spans). Grid rows*heads, block 128.
extern "C" __global__ void __launch_bounds__(128) m2q_attention_packed(
        int rows, int heads, int kvHeads, int headDim, const int* spans,
        const float* q, const float* k, const float* v, float* out) {
    __shared__ float warpMax[ATT_WARPS];
    __shared__ double warpSum[ATT_WARPS];
    __shared__ float warpOut[ATT_WARPS][32 * ATT_MAX_PER_LANE];
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const long long item = blockIdx.x;
    const int h = static_cast<int>(item % heads);
    const long long row = item / heads;
    const int kvh = h / (heads / kvHeads);
    const int prefixStart = spans[3 * row];
    const int prefixLen = spans[3 * row + 1] - prefixStart;
    const int segmentStart = spans[3 * row + 2];
    const int visible = prefixLen + static_cast<int>(row - segmentStart) + 1;
    const long long qDim = static_cast<long long>(heads) * headDim;
    const long long kvDim = static_cast<long long>(kvHeads) * headDim;
    const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(headDim)));
    const float* kBase = k + static_cast<long long>(kvh) * headDim;
    const float* vBase = v + static_cast<long long>(kvh) * headDim;

    float qv[ATT_MAX_PER_LANE];
    const float* qr = q + row * qDim + static_cast<long long>(h) * headDim;
#pragma unroll
    for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
        int d = lane + 32 * c;
        qv[c] = d < headDim ? qr[d] : 0.0f;
    }

    float mx = -INFINITY;
    for (int s = warp; s < visible; s += ATT_WARPS) {
        const long long key = s < prefixLen ? prefixStart + s : segmentStart + (s - prefixLen);
        mx = m2q::java_max(mx, score(qv, kBase + key * kvDim, lane, headDim, scale));
    }
    if (lane == 0) {
        warpMax[warp] = mx;
    }
    __syncthreads();
    mx = warpMax[0];
#pragma unroll
    for (int w = 1; w < ATT_WARPS; w++) {
        mx = m2q::java_max(mx, warpMax[w]);
    }

    double sum = 0.0;
    float acc[ATT_MAX_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
        acc[c] = 0.0f;
    }
    for (int s = warp; s < visible; s += ATT_WARPS) {
        const long long key = s < prefixLen ? prefixStart + s : segmentStart + (s - prefixLen);
        float sc = score(qv, kBase + key * kvDim, lane, headDim, scale);
        float e = static_cast<float>(exp(static_cast<double>(__fsub_rn(sc, mx))));
        sum += e;
        const float* vr = vBase + key * kvDim;
#pragma unroll
        for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
            int d = lane + 32 * c;
            if (d < headDim) {
                acc[c] = __fmaf_rn(e, vr[d], acc[c]);
            }
        }
    }
    if (lane == 0) {
        warpSum[warp] = sum;
    }
#pragma unroll
    for (int c = 0; c < ATT_MAX_PER_LANE; c++) {
        warpOut[warp][lane + 32 * c] = acc[c];
    }
    __syncthreads();
    double den = warpSum[0];
#pragma unroll
    for (int w = 1; w < ATT_WARPS; w++) {
        den += warpSum[w];
    }
    const float inv = static_cast<float>(1.0 / den);
    float* orow = out + row * qDim + static_cast<long long>(h) * headDim;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
        float o = warpOut[0][d];
#pragma unroll
        for (int w = 1; w < ATT_WARPS; w++) {
            o = __fadd_rn(o, warpOut[w][d]);
        }
        orow[d] = __fmul_rn(o, inv);
    }
}

// Java twin: JavaOps.swiglu, Kernels#swiglu javadoc. gate[i] = gate[i] / (1 + fp32(exp(-gate[i]))) * up[i],
// each fp32 operation rounded as the twin; exp in double, so equal to the twin except where CUDA's and Java's
// double exp round to different fp32 values (one ulp of the exp). gate, up [n]. Grid ceil(n/256), block 256.
extern "C" __global__ void m2q_swiglu(long long n, float* gate, const float* up) {
    long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    float g = gate[i];
    float e = static_cast<float>(exp(-static_cast<double>(g)));
    gate[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, e)), up[i]);
}

// Java twin: Kernels#absMaxColumns javadoc, first pass: partial[split*cols + c] = max |x[r*cols + c]| over the
// split's rows [split*rowsPerSplit, ...), NaN-propagating (java_max). Exact. x [rows, cols];
// partial [splits, cols]. Grid (ceil(cols/256), splits), block 256.
extern "C" __global__ void m2q_absmax_partial(
        int rows, int cols, int rowsPerSplit, const float* x, float* partial) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    int r0 = blockIdx.y * rowsPerSplit;
    int r1 = min(rows, r0 + rowsPerSplit);
    float m = 0.0f;
    for (int r = r0; r < r1; r++) {
        m = m2q::java_max(m, fabsf(x[static_cast<long long>(r) * cols + c]));
    }
    partial[static_cast<long long>(blockIdx.y) * cols + c] = m;
}

// Java twin: Kernels#absMaxColumns javadoc, second pass: out[c] = max(out[c], partial[s*cols + c] for s in order),
// with Math.max's rules (NaN wins, max(-0, +0) = +0). Exact. Grid ceil(cols/256), block 256.
extern "C" __global__ void m2q_absmax_combine(int cols, int splits, const float* partial, float* out) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    float m = out[c];
    for (int s = 0; s < splits; s++) {
        m = m2q::java_max(m, partial[static_cast<long long>(s) * cols + c]);
    }
    out[c] = m;
}
