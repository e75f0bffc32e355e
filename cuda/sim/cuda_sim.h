// Host emulation of the few CUDA features the nshap kernels use, to check kernel logic (indexing, barriers,
// shuffles, the tensor-core fragment layout) on a machine without a GPU. Blocks run one after another; the threads
// of a block run as real threads with real barriers; warp shuffles, ldmatrix and mma.sync are emulated from their
// PTX definitions. Slow and only for small shapes: see cuda/sim/run.sh. Not part of the build.
#pragma once
#include <array>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct nshap_dim3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local nshap_dim3 threadIdx, blockIdx;
inline nshap_dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct alignas(16) float4 { float x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

struct __nv_bfloat16 { uint16_t bits; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t b; std::memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return {(uint16_t)((b >> 16) | 0x40)};
    return {(uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16)};
}
inline float nshap_bf16_to_float(uint16_t h) { uint32_t b = (uint32_t)h << 16; float f; std::memcpy(&f, &b, 4); return f; }

inline float __expf(float x) { return std::exp(x); }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }


// ---- per-block context: barriers and warp exchange slots
struct NshapBlockCtx {
    std::barrier<> block;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<std::array<std::array<uint64_t, 8>, 32>> slots;
    explicit NshapBlockCtx(int threads) : block(threads) {
        int nw = (threads + 31) / 32;
        for (int w = 0; w < nw; w++) warps.emplace_back(new std::barrier<>(std::min(32, threads - 32 * w)));
        slots.resize(nw);
    }
};
inline thread_local NshapBlockCtx* nshap_ctx;
inline std::vector<unsigned char> nshap_dyn_smem;

#define NSHAP_DYN_SMEM(T, name) T* name = reinterpret_cast<T*>(nshap_dyn_smem.data())

inline void __syncthreads() { nshap_ctx->block.arrive_and_wait(); }
inline int nshap_lane() { return threadIdx.x & 31; }
inline std::barrier<>& nshap_warp_bar() { return *nshap_ctx->warps[threadIdx.x >> 5]; }
inline auto& nshap_slots() { return nshap_ctx->slots[threadIdx.x >> 5]; }
inline void __syncwarp(unsigned = 0xffffffffu) { nshap_warp_bar().arrive_and_wait(); }

template <typename T> inline T __shfl_xor_sync(unsigned, T v, int o) {
    uint64_t b = 0; std::memcpy(&b, &v, sizeof(T));
    nshap_slots()[nshap_lane()][0] = b;
    nshap_warp_bar().arrive_and_wait();
    uint64_t r = nshap_slots()[nshap_lane() ^ o][0];
    nshap_warp_bar().arrive_and_wait();
    T out; std::memcpy(&out, &r, sizeof(T));
    return out;
}

// ---- tensor-core path: shared addresses are offsets into the dynamic shared memory
inline unsigned smem_u32(const void* p) { return (unsigned)((const unsigned char*)p - nshap_dyn_smem.data()); }
inline void cp_async16(unsigned dst, const void* src, bool valid) {
    if (valid) std::memcpy(nshap_dyn_smem.data() + dst, src, 16); else std::memset(nshap_dyn_smem.data() + dst, 0, 16);
}
inline void cp_async_commit() {}
template <int N> inline void cp_async_wait() {}

// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of matrix i; lane t gets row t/4, columns 2(t%4), 2(t%4)+1.
inline void ldmatrix_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, unsigned addr) {
    int lane = nshap_lane();
    nshap_slots()[lane][0] = addr;
    nshap_warp_bar().arrive_and_wait();
    unsigned r[4];
    for (int i = 0; i < 4; i++) {
        unsigned rowAddr = (unsigned)nshap_slots()[8 * i + lane / 4][0];
        std::memcpy(&r[i], nshap_dyn_smem.data() + rowAddr + 4 * (lane % 4), 4);
    }
    nshap_warp_bar().arrive_and_wait();
    r0 = r[0]; r1 = r[1]; r2 = r[2]; r3 = r[3];
}

// mma.m16n8k16.row.col bf16 -> f32, fragments as in the PTX ISA (groupID = lane/4, tig = lane%4).
inline void mma_bf16_16816(float* d, const unsigned* a, const unsigned* b) {
    int lane = nshap_lane();
    auto& s = nshap_slots();
    for (int i = 0; i < 4; i++) s[lane][i] = a[i];
    s[lane][4] = b[0]; s[lane][5] = b[1];
    nshap_warp_bar().arrive_and_wait();
    float A[16][16], B[16][8];
    for (int t = 0; t < 32; t++) {
        int g = t / 4, q = t % 4;
        for (int i = 0; i < 4; i++) {
            unsigned v = (unsigned)s[t][i];
            int row = g + ((i & 1) ? 8 : 0), col = 2 * q + ((i & 2) ? 8 : 0);
            A[row][col] = nshap_bf16_to_float(v & 0xffff);
            A[row][col + 1] = nshap_bf16_to_float(v >> 16);
        }
        for (int i = 0; i < 2; i++) {
            unsigned v = (unsigned)s[t][4 + i];
            int k = 2 * q + 8 * i;
            B[k][g] = nshap_bf16_to_float(v & 0xffff);
            B[k + 1][g] = nshap_bf16_to_float(v >> 16);
        }
    }
    nshap_warp_bar().arrive_and_wait();
    int g = lane / 4, q = lane % 4;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * q + (i & 1);
        float acc = d[i];
        for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
        d[i] = acc;
    }
}

// ---- launches
template <typename K, typename... Args>
void nshap_launch(K kernel, nshap_dim3 grid, int block, size_t smem, Args... args) {
    gridDim = grid;
    blockDim = {(unsigned)block, 1, 1};
    nshap_dyn_smem.assign(smem + 16, 0xCD);  // garbage, as on a GPU
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                NshapBlockCtx ctx(block);
                std::vector<std::thread> ts;
                for (int t = 0; t < block; t++)
                    ts.emplace_back([&, t] {
                        threadIdx = {(unsigned)t, 0, 0};
                        blockIdx = {x, y, z};
                        nshap_ctx = &ctx;
                        kernel(args...);
                        // an exited thread leaves the barriers, as on the GPU
                        ctx.block.arrive_and_drop();
                        ctx.warps[t >> 5]->arrive_and_drop();
                    });
                for (auto& th : ts) th.join();
            }
}
