// LayerNorm with fp32 statistics (two passes: mean, then centred variance, as the CPU reference does).
// One warp per output row; rowIndex (optional) gathers input rows, which is how the final LayerNorm runs only at
// the scored positions. Output is fp32 or bf16 (the operand of the next GEMM).
#pragma once
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void layernorm_row(T* __restrict__ out, const float* __restrict__ in,
                                              const int* __restrict__ rowIndex, const float* __restrict__ w,
                                              const float* __restrict__ b, int rows, int C, float eps) {
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int src = rowIndex ? rowIndex[row] : row;
    const float4* x = reinterpret_cast<const float4*>(in + (long long)src * C);
    int c4 = C >> 2;
    float s = 0.f;
    for (int j = lane; j < c4; j += 32) { float4 v = x[j]; s += (v.x + v.y) + (v.z + v.w); }
    float mean = warp_sum(s) / C;
    float q = 0.f;
    for (int j = lane; j < c4; j += 32) {
        float4 v = x[j];
        float dx = v.x - mean, dy = v.y - mean, dz = v.z - mean, dw = v.w - mean;
        q += (dx * dx + dy * dy) + (dz * dz + dw * dw);
    }
    float rstd = rsqrtf(warp_sum(q) / C + eps);
    T* o = out + (long long)row * C;
    const float4* w4 = reinterpret_cast<const float4*>(w);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    for (int j = lane; j < c4; j += 32) {
        float4 v = x[j], g = w4[j], h = b4[j];
        o[4 * j + 0] = to_out<T>((v.x - mean) * rstd * g.x + h.x);
        o[4 * j + 1] = to_out<T>((v.y - mean) * rstd * g.y + h.y);
        o[4 * j + 2] = to_out<T>((v.z - mean) * rstd * g.z + h.z);
        o[4 * j + 3] = to_out<T>((v.w - mean) * rstd * g.w + h.w);
    }
}

extern "C" __global__ void layernorm_f32(float* out, const float* in, const int* rowIndex, const float* w,
                                         const float* b, int rows, int C, float eps) {
    layernorm_row<float>(out, in, rowIndex, w, b, rows, C, eps);
}

extern "C" __global__ void layernorm_bf16(__nv_bfloat16* out, const float* in, const int* rowIndex, const float* w,
                                          const float* b, int rows, int C, float eps) {
    layernorm_row<__nv_bfloat16>(out, in, rowIndex, w, b, rows, C, eps);
}
