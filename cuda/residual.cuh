// Residual-stream helpers: resid += delta (the residual add after an intervened or cached hook), bias add
// (after a cuBLAS GEMM, which has no epilogue), and row gathers used by prefix reuse and the scored positions.
#pragma once
#include "common.cuh"

// x[i] += y[i] over n floats (n % 4 == 0).
extern "C" __global__ void residual_add(float* __restrict__ x, const float* __restrict__ y, long long n4) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n4) return;
    float4 a = reinterpret_cast<float4*>(x)[i], b = reinterpret_cast<const float4*>(y)[i];
    reinterpret_cast<float4*>(x)[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// x[r, c] += bias[c] over a [rows, N] matrix (N % 4 == 0).
extern "C" __global__ void bias_add(float* __restrict__ x, const float* __restrict__ bias, int rows, int N) {
    int n4 = N >> 2;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * n4) return;
    float4 a = reinterpret_cast<float4*>(x)[i], b = reinterpret_cast<const float4*>(bias)[i % n4];
    reinterpret_cast<float4*>(x)[i] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// out[r, :] = in[index[r], :] for [rows, C] fp32 rows (C % 4 == 0): broadcasts a shared prefix to every sequence.
extern "C" __global__ void gather_rows(float* __restrict__ out, const float* __restrict__ in,
                                       const int* __restrict__ index, int rows, int C) {
    int c4 = C >> 2;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * c4) return;
    int r = (int)(i / c4), j = (int)(i % c4);
    reinterpret_cast<float4*>(out + (long long)r * C)[j] =
        reinterpret_cast<const float4*>(in + (long long)index[r] * C)[j];
}
