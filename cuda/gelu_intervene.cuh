// GELU fused with the per-sequence interventions at mlp.hook_post, and the same intervention code on its own for
// every other hook point (residual stream, attn_out, mlp_pre, mlp_out).
//
// Coalitions: every row knows its sequence (rowSeq) and position (rowPos); every sequence has a list of op ids
// (opList[seqOpStart[s] .. seqOpStart[s+1]), in request order). An op is 8 ints:
//   {type, maskWordOffset (-1 = all units), vectorOffset, amount (float bits), seedLo, seedHi, fromPosition, onlyThere}
// and its units are a bitset in masks[]. An op acts at positions t >= fromPosition, or at t == fromPosition alone when
// onlyThere is 1 (both 0 for all but ADD; the host turns ADD at the last position into one op per sequence). So one launch serves a batch where every sequence has its own coalition.
#pragma once
#include "common.cuh"
#include "rng.cuh"

#define OP_ZERO 0
#define OP_REPLACE 1
#define OP_SCALE 2
#define OP_NOISE 3
#define OP_NEGATIVE_NOISE 4
#define OP_ADD 5

#define ACT_GELU_TANH 0
#define ACT_GELU_ERF 1

__device__ __forceinline__ float gelu_act(float x, int act) {
    if (act == ACT_GELU_ERF) return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ bool unit_in(const unsigned* __restrict__ masks, int off, int u) {
    return off < 0 || ((masks[off + (u >> 5)] >> (u & 31)) & 1u);
}

// One block per row; the row lives in shared memory while the ops run in order.
template <bool GELU, typename T>
__device__ void intervene_row(T* out, float* cacheOut, const float* in,
                              int width, int act, const int* __restrict__ rowSeq, const int* __restrict__ rowPos,
                              const int* __restrict__ seqOpStart, const int* __restrict__ opList,
                              const int* __restrict__ ops, const unsigned* __restrict__ masks,
                              const float* __restrict__ vecs) {
    NSHAP_DYN_SMEM(float, row_s);
    __shared__ float scratch[32];
    int r = blockIdx.x;
    const float4* x4 = reinterpret_cast<const float4*>(in + (long long)r * width);
    int w4 = width >> 2;
    for (int j = threadIdx.x; j < w4; j += blockDim.x) {
        float4 v = x4[j];
        if (GELU) { v.x = gelu_act(v.x, act); v.y = gelu_act(v.y, act); v.z = gelu_act(v.z, act); v.w = gelu_act(v.w, act); }
        reinterpret_cast<float4*>(row_s)[j] = v;
    }
    int s = rowSeq ? rowSeq[r] : 0;
    int o0 = seqOpStart ? seqOpStart[s] : 0, o1 = seqOpStart ? seqOpStart[s + 1] : 0;
    int t = rowPos ? rowPos[r] : 0;
    for (int oi = o0; oi < o1; oi++) {
        const int* op = ops + 8 * opList[oi];
        int type = op[0], moff = op[1], voff = op[2];
        float amount = __int_as_float(op[3]);
        uint64_t seed = (uint64_t)(uint32_t)op[4] | ((uint64_t)(uint32_t)op[5] << 32);
        if (t < op[6] || (op[7] && t != op[6])) continue;  // uniform over the block: every thread skips together
        __syncthreads();
        if (type == OP_ADD) {
            for (int u = threadIdx.x; u < width; u += blockDim.x)
                if (unit_in(masks, moff, u)) row_s[u] += amount * vecs[voff + u];
        } else if (type == OP_ZERO || type == OP_REPLACE || type == OP_SCALE) {
            for (int u = threadIdx.x; u < width; u += blockDim.x) {
                if (!unit_in(masks, moff, u)) continue;
                row_s[u] = type == OP_ZERO ? 0.f : type == OP_REPLACE ? vecs[voff + u] : row_s[u] * amount;
            }
        } else {
            uint64_t key = nshap_seed_key(seed);
            float shift = 0.f;
            if (type == OP_NEGATIVE_NOISE) {
                float m = -INFINITY;
                for (int u = threadIdx.x; u < width; u += blockDim.x)
                    if (unit_in(masks, moff, u)) m = fmaxf(m, nshap_gaussian_k(key, t, u));
                shift = block_max(m, scratch);
            }
            for (int u = threadIdx.x; u < width; u += blockDim.x) {
                if (!unit_in(masks, moff, u)) continue;
                row_s[u] += (nshap_gaussian_k(key, t, u) - shift) * amount;
            }
        }
    }
    __syncthreads();
    T* o = out + (long long)r * width;
    for (int u = threadIdx.x; u < width; u += blockDim.x) o[u] = to_out<T>(row_s[u]);
    if (cacheOut) {
        float4* c4 = reinterpret_cast<float4*>(cacheOut + (long long)r * width);
        for (int j = threadIdx.x; j < w4; j += blockDim.x) c4[j] = reinterpret_cast<float4*>(row_s)[j];
    }
}

// mlp.hook_pre -> gelu -> interventions -> mlp.hook_post (fp32, or bf16 for the c_proj GEMM; cacheOut gets an
// fp32 copy when mlp.hook_post is cached in bf16 mode).
extern "C" __global__ void gelu_intervene_f32(float* out, float* cacheOut, const float* in, int width, int act,
                                              const int* rowSeq, const int* rowPos, const int* seqOpStart,
                                              const int* opList, const int* ops, const unsigned* masks, const float* vecs) {
    intervene_row<true, float>(out, cacheOut, in, width, act, rowSeq, rowPos, seqOpStart, opList, ops, masks, vecs);
}

extern "C" __global__ void gelu_intervene_bf16(__nv_bfloat16* out, float* cacheOut, const float* in, int width, int act,
                                               const int* rowSeq, const int* rowPos, const int* seqOpStart,
                                               const int* opList, const int* ops, const unsigned* masks, const float* vecs) {
    intervene_row<true, __nv_bfloat16>(out, cacheOut, in, width, act, rowSeq, rowPos, seqOpStart, opList, ops, masks, vecs);
}

// Interventions in place on an fp32 hook buffer [rows, width] (any hook but mlp.hook_post).
extern "C" __global__ void intervene_f32(float* x, int width, const int* rowSeq, const int* rowPos,
                                         const int* seqOpStart, const int* opList, const int* ops,
                                         const unsigned* masks, const float* vecs) {
    intervene_row<false, float>(x, nullptr, x, width, 0, rowSeq, rowPos, seqOpStart, opList, ops, masks, vecs);
}
