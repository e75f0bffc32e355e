// Token + position embedding into the fp32 residual stream. Rows are packed sequences: row r holds token
// tokens[r] at position positions[r]. One thread per float4 (C % 4 == 0), fully coalesced.
#pragma once
#include "common.cuh"

extern "C" __global__ void embedding(float* __restrict__ out, const int* __restrict__ tokens,
                                     const int* __restrict__ positions, const float* __restrict__ wte,
                                     const float* __restrict__ wpe, int rows, int C) {
    int c4 = C >> 2;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * c4) return;
    int r = (int)(i / c4), j = (int)(i % c4);
    float4 a = reinterpret_cast<const float4*>(wte + (long long)tokens[r] * C)[j];
    float4 b = reinterpret_cast<const float4*>(wpe + (long long)positions[r] * C)[j];
    reinterpret_cast<float4*>(out + (long long)r * C)[j] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
