// Port of dev.nshap.backend.CounterRng: noise is a pure function of (seed, position, unit), bit for bit the same
// integer mixing as the Java code, then Box-Muller in double (so it agrees with Java to float rounding).
#pragma once
#include <stdint.h>

__device__ __forceinline__ uint64_t nshap_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// The seed-only part, hoisted out of per-element loops by callers that can.
__device__ __forceinline__ uint64_t nshap_seed_key(uint64_t seed) { return nshap_mix64(seed ^ 0x9E3779B97F4A7C15ULL); }

__device__ __forceinline__ float nshap_gaussian_k(uint64_t seedKey, int position, int unit) {
    uint64_t key = seedKey + (((uint64_t)(uint32_t)position << 32) | (uint64_t)(uint32_t)unit);
    uint64_t a = nshap_mix64(key);
    uint64_t b = nshap_mix64(key ^ 0xD1B54A32D192ED03ULL);
    double u1 = (double)((a >> 11) + 1) * 0x1.0p-53;  // (0, 1]
    double u2 = (double)(b >> 11) * 0x1.0p-53;        // [0, 1)
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.141592653589793 * u2));
}

__device__ __forceinline__ float nshap_gaussian(uint64_t seed, int position, int unit) {
    return nshap_gaussian_k(nshap_seed_key(seed), position, unit);
}

// Test hook: out[i] = gaussian(seed, positions[i], units[i]).
extern "C" __global__ void rng_gaussian(float* __restrict__ out, const int* __restrict__ positions,
                                        const int* __restrict__ units, int n, unsigned long long seed) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = nshap_gaussian(seed, positions[i], units[i]);
}
