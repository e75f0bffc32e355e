// The unembedding runs only at the scored positions: the final LayerNorm gathers those rows (layernorm.cuh),
// a GEMM against lm_head [V,C] (gemm.cuh, B given as [N,K]) writes logits for a slab of rows, and this kernel
// reduces each row to log-sum-exp, log p(target) and the top-1 in one pass, so only S x 2 numbers come back
// to the host when no logits are wanted.
#pragma once
#include "common.cuh"

// One block per row. targets[r] < 0: no target. Ties in the arg-max go to the lower token id (as on the CPU).
extern "C" __global__ void logsoftmax_summary(const float* __restrict__ logits, const int* __restrict__ targets,
                                              float* __restrict__ logProb, int* __restrict__ top1, float* __restrict__ lse,
                                              int rows, int V) {
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ float scratch[32];
    int r = blockIdx.x;
    const float* x = logits + (long long)r * V;
    float m = -INFINITY, sum = 0.f, best = -INFINITY;
    int bi = 0x7fffffff;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float v = x[j];
        if (v > best) { best = v; bi = j; }  // j increases per thread: first max wins
        if (v > m) { sum = sum * __expf(m - v) + 1.f; m = v; } else sum += __expf(v - m);
    }
    // arg-max across the block
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    if (lane == 0) { sv[warp] = best; si[warp] = bi; }
    // log-sum-exp across the block
    float gm = block_max(m, scratch);
    float part = m == -INFINITY ? 0.f : sum * __expf(m - gm);
    float total = block_sum(part, scratch);
    if (threadIdx.x == 0) {
        float bv = sv[0]; int bidx = si[0];
        for (int w = 1; w < nw; w++)
            if (sv[w] > bv || (sv[w] == bv && si[w] < bidx)) { bv = sv[w]; bidx = si[w]; }
        float l = gm + logf(total);
        top1[r] = bidx;
        if (lse) lse[r] = l;
        int t = targets ? targets[r] : -1;
        logProb[r] = t >= 0 ? x[t] - l : NAN;
    }
}
