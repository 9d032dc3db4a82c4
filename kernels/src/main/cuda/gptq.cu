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
// codes [k, n] by original channel, negErr [B, n], errRec [n, 4] (rec[0] = -1: none), errAny [1].
// Grid ceil(n/32), block 32; dynamic shared B*32*4 bytes when useShared (the block's column slice lives there),
// else 0 (the slice is updated in wt itself).
extern "C" __global__ void __launch_bounds__(GPTQ_THREADS) m2q_gptq_block(
        int k, int n, int i1, int i2, int groupSize, int staticGroups, int useShared,
        float* wt, const float* u, const int* perm, float* scales, int* codes, float* negErr, int* errRec,
        int* errAny) {
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
        for (int j = i + 1; j < i2; j++) {
            float* wj = seg + (j - i1) * stride;
            *wj = __fmaf_rn(-__ldg(ui + j), err, *wj);
        }
    }
}
