// GEMMs with a fused epilogue: out[M,N] (= or +=) A[M,K] B + bias.
//   gemm_bf16_tc: A bf16 [M,K] row-major, B given as Bt bf16 [N,K] (weights are transposed once at upload), fp32
//                 accumulation on tensor cores (mma.sync m16n8k16), 3-stage cp.async pipeline, swizzled shared memory
//                 so ldmatrix is conflict free. K % 8 == 0.
//   gemm_f32_nn / gemm_f32_nt: fp32 SIMT tiles for the exact fp32 mode; B as [K,N] (HF Conv1D layout) or [N,K]
//                 (the tied unembedding, wte [V,C]). K % 4 == 0; nn also needs N % 4 == 0.
// accumulate = 1 adds into out (the residual stream) instead of overwriting it: the residual add fused into the
// GEMM when nothing needs the hook value on its own.
#pragma once
#include "common.cuh"

__device__ __forceinline__ void epilogue_store(float* __restrict__ out, const float* __restrict__ bias, int M, int N,
                                               int r, int c, float v, int accumulate) {
    if (r < M && c < N) {
        long long i = (long long)r * N + c;
        if (bias) v += bias[c];
        out[i] = accumulate ? out[i] + v : v;
    }
}

// ---------------------------------------------------------------- bf16 tensor cores
#define TC_BM 128
#define TC_BN 128
#define TC_BK 32
#define TC_STAGES 3
#define TC_THREADS 256

#ifndef NSHAP_SIM
__device__ __forceinline__ unsigned smem_u32(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
    int n = valid ? 16 : 0;  // zero-fill outside the matrix
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

// d += a b for one m16n8k16 tile (bf16 in, fp32 accumulate)
__device__ __forceinline__ void mma_bf16_16816(float* d, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// Element offset of 16-byte chunk ch (0..3) of tile row `row` (rows of TC_BK = 32 bf16 = 64 bytes): the XOR
// spreads the 8 rows one ldmatrix reads over all 32 banks.
__device__ __forceinline__ int tc_swz(int row, int ch) { return row * TC_BK + ((ch ^ ((row >> 1) & 3)) << 3); }

__device__ __forceinline__ void tc_load_tile(__nv_bfloat16* sA, __nv_bfloat16* sB, const __nv_bfloat16* A,
                                             const __nv_bfloat16* Bt, int M, int N, int K, int bm, int bn, int k0) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = threadIdx.x + i * TC_THREADS, row = c >> 2, ch = c & 3, k = k0 + ch * 8;
        bool va = bm + row < M && k < K, vb = bn + row < N && k < K;
        const __nv_bfloat16* ga = va ? A + (long long)(bm + row) * K + k : A;
        const __nv_bfloat16* gb = vb ? Bt + (long long)(bn + row) * K + k : Bt;
        cp_async16(smem_u32(sA + tc_swz(row, ch)), ga, va);
        cp_async16(smem_u32(sB + tc_swz(row, ch)), gb, vb);
    }
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
gemm_bf16_tc(float* __restrict__ out, const __nv_bfloat16* __restrict__ A, const __nv_bfloat16* __restrict__ Bt,
             const float* __restrict__ bias, int M, int N, int K, int accumulate) {
    NSHAP_DYN_SMEM(unsigned char, tc_smem);
    __nv_bfloat16* sA = reinterpret_cast<__nv_bfloat16*>(tc_smem);
    __nv_bfloat16* sB = sA + TC_STAGES * TC_BM * TC_BK;
    int bm = blockIdx.y * TC_BM, bn = blockIdx.x * TC_BN;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wm = warp >> 2, wn = warp & 3;
    float acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[a][b][c] = 0.f;

    int kTiles = (K + TC_BK - 1) / TC_BK;
#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; s++) {
        if (s < kTiles) tc_load_tile(sA + s * TC_BM * TC_BK, sB + s * TC_BN * TC_BK, A, Bt, M, N, K, bm, bn, s * TC_BK);
        cp_async_commit();
    }
    for (int kt = 0; kt < kTiles; kt++) {
        cp_async_wait<TC_STAGES - 2>();
        __syncthreads();
        int nt = kt + TC_STAGES - 1;
        if (nt < kTiles) {
            int st = nt % TC_STAGES;
            tc_load_tile(sA + st * TC_BM * TC_BK, sB + st * TC_BN * TC_BK, A, Bt, M, N, K, bm, bn, nt * TC_BK);
        }
        cp_async_commit();
        const __nv_bfloat16* a_s = sA + (kt % TC_STAGES) * TC_BM * TC_BK;
        const __nv_bfloat16* b_s = sB + (kt % TC_STAGES) * TC_BN * TC_BK;
#pragma unroll
        for (int kk = 0; kk < TC_BK / 16; kk++) {
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                int row = wm * 64 + mi * 16 + (lane & 15), ch = kk * 2 + (lane >> 4);
                ldmatrix_x4(af[mi][0], af[mi][1], af[mi][2], af[mi][3], smem_u32(a_s + tc_swz(row, ch)));
            }
#pragma unroll
            for (int nj = 0; nj < 2; nj++) {
                int row = wn * 32 + nj * 16 + (lane & 7) + ((lane >> 4) << 3), ch = kk * 2 + ((lane >> 3) & 1);
                ldmatrix_x4(bf[2 * nj][0], bf[2 * nj][1], bf[2 * nj + 1][0], bf[2 * nj + 1][1], smem_u32(b_s + tc_swz(row, ch)));
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    mma_bf16_16816(acc[mi][ni], af[mi], bf[ni]);
        }
    }
    cp_async_wait<0>();
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            int r = bm + wm * 64 + mi * 16 + (lane >> 2), c = bn + wn * 32 + ni * 8 + (lane & 3) * 2;
            epilogue_store(out, bias, M, N, r, c, acc[mi][ni][0], accumulate);
            epilogue_store(out, bias, M, N, r, c + 1, acc[mi][ni][1], accumulate);
            epilogue_store(out, bias, M, N, r + 8, c, acc[mi][ni][2], accumulate);
            epilogue_store(out, bias, M, N, r + 8, c + 1, acc[mi][ni][3], accumulate);
        }
}

// ---------------------------------------------------------------- fp32 SIMT
#define SG_BM 64
#define SG_BN 64
#define SG_BK 16

// B_NK: B is stored [N,K]; otherwise [K,N]. 256 threads, 4x4 outputs each, register prefetch of the next tile.
template <bool B_NK>
__device__ void gemm_f32_body(float* __restrict__ out, const float* __restrict__ A, const float* __restrict__ B,
                              const float* __restrict__ bias, int M, int N, int K, int accumulate) {
    __shared__ __align__(16) float As[2][SG_BK][SG_BM + 4];
    __shared__ __align__(16) float Bs[2][SG_BK][SG_BN + 4];
    int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    int bm = blockIdx.y * SG_BM, bn = blockIdx.x * SG_BN;
    int lr = tid >> 2, lk = (tid & 3) * 4;         // A (and B_NK) loads: 64 rows x 4 float4
    int bk = tid >> 4, bc = (tid & 15) * 4;        // B [K,N] loads: 16 k x 16 float4
    float acc[4][4] = {};
    const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
    auto loadA = [&](int k0) {
        return (bm + lr < M && k0 + lk < K) ? *reinterpret_cast<const float4*>(A + (long long)(bm + lr) * K + k0 + lk) : zero;
    };
    auto loadB = [&](int k0) {
        if (B_NK) return (bn + lr < N && k0 + lk < K) ? *reinterpret_cast<const float4*>(B + (long long)(bn + lr) * K + k0 + lk) : zero;
        return (k0 + bk < K && bn + bc < N) ? *reinterpret_cast<const float4*>(B + (long long)(k0 + bk) * N + bn + bc) : zero;
    };
    auto store = [&](int buf, float4 a, float4 b) {
        As[buf][lk + 0][lr] = a.x; As[buf][lk + 1][lr] = a.y; As[buf][lk + 2][lr] = a.z; As[buf][lk + 3][lr] = a.w;
        if (B_NK) { Bs[buf][lk + 0][lr] = b.x; Bs[buf][lk + 1][lr] = b.y; Bs[buf][lk + 2][lr] = b.z; Bs[buf][lk + 3][lr] = b.w; }
        else *reinterpret_cast<float4*>(&Bs[buf][bk][bc]) = b;
    };
    store(0, loadA(0), loadB(0));
    __syncthreads();
    int kTiles = (K + SG_BK - 1) / SG_BK;
    for (int kt = 0; kt < kTiles; kt++) {
        int buf = kt & 1;
        float4 na = zero, nb = zero;
        bool more = kt + 1 < kTiles;
        if (more) { na = loadA((kt + 1) * SG_BK); nb = loadB((kt + 1) * SG_BK); }
#pragma unroll
        for (int k = 0; k < SG_BK; k++) {
            float4 a = *reinterpret_cast<const float4*>(&As[buf][k][ty * 4]);
            float4 b = *reinterpret_cast<const float4*>(&Bs[buf][k][tx * 4]);
            float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        if (more) store(buf ^ 1, na, nb);
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) epilogue_store(out, bias, M, N, bm + ty * 4 + i, bn + tx * 4 + j, acc[i][j], accumulate);
}

extern "C" __global__ void __launch_bounds__(256)
gemm_f32_nn(float* out, const float* A, const float* B, const float* bias, int M, int N, int K, int accumulate) {
    gemm_f32_body<false>(out, A, B, bias, M, N, K, accumulate);
}

extern "C" __global__ void __launch_bounds__(256)
gemm_f32_nt(float* out, const float* A, const float* B, const float* bias, int M, int N, int K, int accumulate) {
    gemm_f32_body<true>(out, A, B, bias, M, N, K, accumulate);
}
