// Causal multi-head attention over packed sequences. qkv is the c_attn output [rows, 3C] (q | k | v, head h at
// columns h*HD); sequence s occupies rows seqStart[s] .. seqStart[s] + seqLen[s]. The output z [rows, C] (heads
// concatenated) feeds the c_proj GEMM, so it is fp32 or bf16. Softmax in fp32 with the 1/sqrt(HD) scale.
//   attn_short_*: T <= 64. One block per (head, sequence) holds all of K and V in shared memory; one warp per query.
//   attn_flash_*: any T. One block per (64-query tile, head, sequence) streams 64-key tiles through shared memory
//                 with an online softmax (no T x T matrix anywhere); 4 threads per query, HD/4 dims each.
#pragma once
#include "common.cuh"

#define ATTN_SHORT_T 64

template <int HD, typename OutT>
__device__ void attn_short(OutT* __restrict__ z, const float* __restrict__ qkv, const int* __restrict__ seqStart,
                           const int* __restrict__ seqLen, int C) {
    NSHAP_DYN_SMEM(float, sm);
    float* Ks = sm;                              // [64][HD+1]: lane j reads row j, so pad a column
    float* Vs = Ks + ATTN_SHORT_T * (HD + 1);    // [64][HD]
    float* qs = Vs + ATTN_SHORT_T * HD;          // [warps][HD]
    float* ps = qs + (blockDim.x >> 5) * HD;     // [warps][64]
    int h = blockIdx.x, s = blockIdx.y;
    int base = seqStart[s], T = seqLen[s];
    int C3 = 3 * C;
    for (int i = threadIdx.x; i < T * (HD / 4); i += blockDim.x) {
        int j = i / (HD / 4), d = (i % (HD / 4)) * 4;
        const float* row = qkv + (long long)(base + j) * C3 + h * HD + d;
        float4 k = *reinterpret_cast<const float4*>(row + C), v = *reinterpret_cast<const float4*>(row + 2 * C);
        float* kr = Ks + j * (HD + 1) + d;
        kr[0] = k.x; kr[1] = k.y; kr[2] = k.z; kr[3] = k.w;
        *reinterpret_cast<float4*>(Vs + j * HD + d) = v;
    }
    __syncthreads();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    float scale = rsqrtf((float)HD);
    float* q = qs + warp * HD;
    float* p = ps + warp * ATTN_SHORT_T;
    for (int i = warp; i < T; i += nw) {
        const float* qrow = qkv + (long long)(base + i) * C3 + h * HD;
        for (int d = lane; d < HD; d += 32) q[d] = qrow[d] * scale;
        __syncwarp();
        float m = -INFINITY;
        for (int j = lane; j <= i; j += 32) {
            const float* kr = Ks + j * (HD + 1);
            float sc = 0.f;
#pragma unroll 16
            for (int d = 0; d < HD; d++) sc = fmaf(q[d], kr[d], sc);
            p[j] = sc;
            m = fmaxf(m, sc);
        }
        m = warp_max(m);
        float l = 0.f;
        for (int j = lane; j <= i; j += 32) { float e = __expf(p[j] - m); p[j] = e; l += e; }
        l = warp_sum(l);
        __syncwarp();
        float inv = 1.f / l;
        OutT* zr = z + (long long)(base + i) * C + h * HD;
        for (int d = lane; d < HD; d += 32) {
            float a = 0.f;
            for (int j = 0; j <= i; j++) a = fmaf(p[j], Vs[j * HD + d], a);
            zr[d] = to_out<OutT>(a * inv);
        }
        __syncwarp();
    }
}

#define FLASH_BQ 64
#define FLASH_BK 64

template <int HD, typename OutT>
__device__ void attn_flash(OutT* __restrict__ z, const float* __restrict__ qkv, const int* __restrict__ seqStart,
                           const int* __restrict__ seqLen, int C) {
    constexpr int DPT = HD / 4;  // dims per thread
    NSHAP_DYN_SMEM(float, sm);
    float* Ks = sm;                    // [FLASH_BK][HD]
    float* Vs = Ks + FLASH_BK * HD;    // [FLASH_BK][HD]
    int qt = blockIdx.x, h = blockIdx.y, s = blockIdx.z;
    int base = seqStart[s], T = seqLen[s];
    int q0 = qt * FLASH_BQ;
    if (q0 >= T) return;  // whole block: uniform
    int C3 = 3 * C;
    int qi = q0 + (threadIdx.x >> 2), sub = threadIdx.x & 3;
    bool valid = qi < T;
    float scale = rsqrtf((float)HD);
    float q[DPT], o[DPT];
    const float* qrow = qkv + (long long)(base + (valid ? qi : q0)) * C3 + h * HD + sub * DPT;
#pragma unroll
    for (int d = 0; d < DPT; d += 4) {
        float4 v = *reinterpret_cast<const float4*>(qrow + d);
        q[d] = v.x * scale; q[d + 1] = v.y * scale; q[d + 2] = v.z * scale; q[d + 3] = v.w * scale;
        o[d] = o[d + 1] = o[d + 2] = o[d + 3] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    int lastKey = min(T, q0 + FLASH_BQ) - 1;
    for (int k0 = 0; k0 <= lastKey; k0 += FLASH_BK) {
        __syncthreads();
        for (int i = threadIdx.x; i < FLASH_BK * (HD / 4); i += blockDim.x) {
            int j = i / (HD / 4), d = (i % (HD / 4)) * 4;
            float4 k = make_float4(0.f, 0.f, 0.f, 0.f), v = k;
            if (k0 + j < T) {
                const float* row = qkv + (long long)(base + k0 + j) * C3 + h * HD + d;
                k = *reinterpret_cast<const float4*>(row + C);
                v = *reinterpret_cast<const float4*>(row + 2 * C);
            }
            *reinterpret_cast<float4*>(Ks + j * HD + d) = k;
            *reinterpret_cast<float4*>(Vs + j * HD + d) = v;
        }
        __syncthreads();
        int jEnd = min(FLASH_BK, lastKey - k0 + 1);
        for (int j = 0; j < jEnd; j++) {
            const float* kr = Ks + j * HD + sub * DPT;
            float sc = 0.f;
#pragma unroll
            for (int d = 0; d < DPT; d += 4) {
                float4 k = *reinterpret_cast<const float4*>(kr + d);
                sc = fmaf(q[d], k.x, sc); sc = fmaf(q[d + 1], k.y, sc); sc = fmaf(q[d + 2], k.z, sc); sc = fmaf(q[d + 3], k.w, sc);
            }
            sc += __shfl_xor_sync(0xffffffffu, sc, 1);
            sc += __shfl_xor_sync(0xffffffffu, sc, 2);
            if (valid && k0 + j <= qi) {
                float mn = fmaxf(m, sc);
                float corr = __expf(m - mn), pj = __expf(sc - mn);
                l = l * corr + pj;
                const float* vr = Vs + j * HD + sub * DPT;
#pragma unroll
                for (int d = 0; d < DPT; d += 4) {
                    float4 v = *reinterpret_cast<const float4*>(vr + d);
                    o[d] = fmaf(o[d], corr, pj * v.x); o[d + 1] = fmaf(o[d + 1], corr, pj * v.y);
                    o[d + 2] = fmaf(o[d + 2], corr, pj * v.z); o[d + 3] = fmaf(o[d + 3], corr, pj * v.w);
                }
                m = mn;
            }
        }
    }
    if (valid) {
        float inv = 1.f / l;
        OutT* zr = z + (long long)(base + qi) * C + h * HD + sub * DPT;
#pragma unroll
        for (int d = 0; d < DPT; d++) zr[d] = to_out<OutT>(o[d] * inv);
    }
}

#define NSHAP_ATTN(HD)                                                                                            \
    extern "C" __global__ void attn_short_f32_##HD(float* z, const float* qkv, const int* ss, const int* sl, int C) { \
        attn_short<HD, float>(z, qkv, ss, sl, C);                                                                 \
    }                                                                                                             \
    extern "C" __global__ void attn_short_bf16_##HD(__nv_bfloat16* z, const float* qkv, const int* ss, const int* sl, \
                                                    int C) {                                                      \
        attn_short<HD, __nv_bfloat16>(z, qkv, ss, sl, C);                                                         \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256) attn_flash_f32_##HD(float* z, const float* qkv, const int* ss, \
                                                                          const int* sl, int C) {                 \
        attn_flash<HD, float>(z, qkv, ss, sl, C);                                                                 \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256) attn_flash_bf16_##HD(__nv_bfloat16* z, const float* qkv,    \
                                                                           const int* ss, const int* sl, int C) { \
        attn_flash<HD, __nv_bfloat16>(z, qkv, ss, sl, C);                                                         \
    }

NSHAP_ATTN(16)
NSHAP_ATTN(32)
NSHAP_ATTN(64)
NSHAP_ATTN(128)
