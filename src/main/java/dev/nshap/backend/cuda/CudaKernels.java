package dev.nshap.backend.cuda;

import dev.nshap.model.SafeTensors;

import dev.nshap.NshapException;
import jcuda.driver.CUdeviceptr;

/**
 * One typed method per kernel of cuda/nshap.cu: grid shapes and shared memory are decided here, so the backend
 * and the per-kernel tests launch the kernels the same way.
 */
public final class CudaKernels {
    /** Kernel-side op codes of gelu_intervene.cuh. */
    public static final int OP_ZERO = 0, OP_REPLACE = 1, OP_SCALE = 2, OP_NOISE = 3, OP_NEGATIVE_NOISE = 4, OP_ADD = 5;
    public static final int ACT_GELU_TANH = 0, ACT_GELU_ERF = 1;
    /** Sequences up to this length use the attention kernel that keeps all of K and V in shared memory. */
    public static final int ATTN_SHORT_T = 64;

    public enum GemmKind {
        /** fp32 SIMT, B as [K,N] (the HF Conv1D layout). */
        F32_NN,
        /** fp32 SIMT, B as [N,K] (the unembedding, wte [V,C]). */
        F32_NT,
        /** bf16 tensor cores, A bf16 [M,K], B as bf16 [N,K]. */
        BF16_TC
    }

    private final CudaDevice dev;

    public CudaKernels(CudaDevice dev) { this.dev = dev; }

    public CudaDevice device() { return dev; }

    private static int blocks(long n, int per) {
        long b = (n + per - 1) / per;
        if (b > Integer.MAX_VALUE) throw new NshapException("CUDA launch too large: " + n + " elements");
        return (int) b;
    }

    public static short[] toBf16(float[] a) {
        short[] h = new short[a.length];
        for (int i = 0; i < a.length; i++) h[i] = SafeTensors.floatToBf16(a[i]);
        return h;
    }

    /** [rows, cols] row-major -> its transpose [cols, rows] in bf16 (Conv1D [in,out] weights -> [N,K]). */
    public static short[] transposeBf16(float[] a, int rows, int cols) {
        short[] t = new short[a.length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) t[c * rows + r] = SafeTensors.floatToBf16(a[r * cols + c]);
        return t;
    }

    public void embedding(CUdeviceptr out, CUdeviceptr tokens, CUdeviceptr positions, CUdeviceptr wte, CUdeviceptr wpe,
                          int rows, int C) {
        long n = (long) rows * (C / 4);
        if (n == 0) return;
        dev.launch("embedding", blocks(n, 256), 1, 1, 256, 0, out, tokens, positions, wte, wpe, rows, C);
    }

    /** rowIndex (nullable) gathers input rows; out is bf16 when bf16 is set. */
    public void layerNorm(CUdeviceptr out, boolean bf16, CUdeviceptr in, CUdeviceptr rowIndex, CUdeviceptr w,
                          CUdeviceptr b, int rows, int C, float eps) {
        if (rows == 0) return;
        dev.launch(bf16 ? "layernorm_bf16" : "layernorm_f32", blocks(rows, 4), 1, 1, 128, 0,
                out, in, rowIndex, w, b, rows, C, eps);
    }

    /** out[M,N] (+)= A[M,K] B + bias (bias nullable). */
    public void gemm(GemmKind kind, CUdeviceptr out, CUdeviceptr a, CUdeviceptr b, CUdeviceptr bias, int M, int N, int K,
                     boolean accumulate) {
        if (M == 0) return;
        switch (kind) {
            case BF16_TC -> dev.launch("gemm_bf16_tc", blocks(N, 128), blocks(M, 128), 1, 256, 3 * 256 * 32 * 2,
                    out, a, b, bias, M, N, K, accumulate ? 1 : 0);
            case F32_NN -> dev.launch("gemm_f32_nn", blocks(N, 64), blocks(M, 64), 1, 256, 0,
                    out, a, b, bias, M, N, K, accumulate ? 1 : 0);
            case F32_NT -> dev.launch("gemm_f32_nt", blocks(N, 64), blocks(M, 64), 1, 256, 0,
                    out, a, b, bias, M, N, K, accumulate ? 1 : 0);
        }
    }

    public static boolean headDimSupported(int hd) { return hd == 16 || hd == 32 || hd == 64 || hd == 128; }

    /**
     * Causal attention over packed sequences. flash: null = choose by maxLen, else force the long-sequence
     * (true) or short-sequence (false) kernel.
     */
    public void attention(CUdeviceptr z, boolean bf16, CUdeviceptr qkv, CUdeviceptr seqStart, CUdeviceptr seqLen,
                          int nSeq, int maxLen, int nHead, int C, Boolean flash) {
        if (nSeq == 0) return;
        int hd = C / nHead;
        if (!headDimSupported(hd)) throw new NshapException("CUDA backend: head dim " + hd + " is not one of 16, 32, 64, 128");
        boolean useFlash = flash != null ? flash : maxLen > ATTN_SHORT_T;
        if (!useFlash && maxLen > ATTN_SHORT_T)
            throw new IllegalArgumentException("short attention kernel needs T <= " + ATTN_SHORT_T);
        String t = bf16 ? "bf16" : "f32";
        if (useFlash) {
            dev.launch("attn_flash_" + t + "_" + hd, blocks(maxLen, 64), nHead, nSeq, 256, 2 * 64 * hd * 4,
                    z, qkv, seqStart, seqLen, C);
        } else {
            int warps = 4;
            int smem = 4 * (ATTN_SHORT_T * (hd + 1) + ATTN_SHORT_T * hd + warps * hd + warps * ATTN_SHORT_T);
            dev.launch("attn_short_" + t + "_" + hd, nHead, nSeq, 1, 32 * warps, smem, z, qkv, seqStart, seqLen, C);
        }
    }

    /**
     * The device arrays of an {@link InterventionTable}: views into an {@link InterventionArena} (the backend), or
     * buffers of their own (the kernel tests' constructor), freed by close().
     */
    public static final class Ops implements AutoCloseable {
        final CudaDevice dev;
        final boolean owned;
        public final CUdeviceptr seqOpStart, opList, ops, masks, vecs;

        public Ops(CudaDevice dev, InterventionTable t) {
            this.dev = dev;
            this.owned = true;
            seqOpStart = dev.upload(t.seqOpStart);
            opList = dev.upload(t.opList);
            ops = dev.upload(t.ops);
            masks = dev.upload(t.masks);
            vecs = dev.upload(t.vecs);
        }

        Ops(CUdeviceptr seqOpStart, CUdeviceptr opList, CUdeviceptr ops, CUdeviceptr masks, CUdeviceptr vecs) {
            this.dev = null;
            this.owned = false;
            this.seqOpStart = seqOpStart;
            this.opList = opList;
            this.ops = ops;
            this.masks = masks;
            this.vecs = vecs;
        }

        @Override public void close() {
            if (owned) { dev.free(seqOpStart); dev.free(opList); dev.free(ops); dev.free(masks); dev.free(vecs); }
        }
    }

    /**
     * gelu -> the interventions of ops (nullable: none) -> out (fp32, or bf16 when bf16). cacheOut (nullable) gets an
     * fp32 copy of the result; it may be {@code in} itself.
     */
    public void geluIntervene(CUdeviceptr out, boolean bf16, CUdeviceptr cacheOut, CUdeviceptr in, int rows, int width,
                              int act, CUdeviceptr rowSeq, CUdeviceptr rowPos, Ops ops) {
        if (rows == 0) return;
        dev.launch(bf16 ? "gelu_intervene_bf16" : "gelu_intervene_f32", rows, 1, 1, 256, 4 * width,
                out, cacheOut, in, width, act, rowSeq, rowPos,
                ops == null ? null : ops.seqOpStart, ops == null ? null : ops.opList, ops == null ? null : ops.ops,
                ops == null ? null : ops.masks, ops == null ? null : ops.vecs);
    }

    /** The interventions of ops, in place on an fp32 hook buffer [rows, width]. */
    public void intervene(CUdeviceptr x, int rows, int width, CUdeviceptr rowSeq, CUdeviceptr rowPos, Ops ops) {
        if (rows == 0) return;
        dev.launch("intervene_f32", rows, 1, 1, 256, 4 * width, x, width, rowSeq, rowPos,
                ops.seqOpStart, ops.opList, ops.ops, ops.masks, ops.vecs);
    }

    /** x += y over n floats (n % 4 == 0). */
    public void residualAdd(CUdeviceptr x, CUdeviceptr y, long n) {
        if (n == 0) return;
        dev.launch("residual_add", blocks(n / 4, 256), 1, 1, 256, 0, x, y, n / 4);
    }

    public void biasAdd(CUdeviceptr x, CUdeviceptr bias, int rows, int N) {
        if (rows == 0) return;
        dev.launch("bias_add", blocks((long) rows * (N / 4), 256), 1, 1, 256, 0, x, bias, rows, N);
    }

    public void gatherRows(CUdeviceptr out, CUdeviceptr in, CUdeviceptr index, int rows, int C) {
        if (rows == 0) return;
        dev.launch("gather_rows", blocks((long) rows * (C / 4), 256), 1, 1, 256, 0, out, in, index, rows, C);
    }

    /** Per row of logits [rows, V]: log p(target) (targets nullable, -1 = none), top-1, log-sum-exp (lse nullable). */
    public void logSoftmaxSummary(CUdeviceptr logits, CUdeviceptr targets, CUdeviceptr logProb, CUdeviceptr top1,
                                  CUdeviceptr lse, int rows, int V) {
        if (rows == 0) return;
        dev.launch("logsoftmax_summary", rows, 1, 1, 256, 0, logits, targets, logProb, top1, lse, rows, V);
    }

    /** Column tile of the summary epilogues: partial summaries per row = ceil(V / tile). */
    public static int summaryTiles(boolean bf16, int V) { return (V + (bf16 ? 128 : 64) - 1) / (bf16 ? 128 : 64); }

    /**
     * The unembedding A[M,K] x lm_head[V,K]^T reduced in the GEMM's epilogue to log p(target) (targets nullable,
     * -1 = none), top-1 and log-sum-exp (nullable) per row, without storing the logits. bf16: A and lm_head bf16.
     * Scratch: tgtLogit [M], pMax/pSum/pArg [M x summaryTiles].
     */
    public void unembedSummary(boolean bf16, CUdeviceptr a, CUdeviceptr lmHead, int M, int V, int K, CUdeviceptr targets,
                               CUdeviceptr tgtLogit, CUdeviceptr pMax, CUdeviceptr pSum, CUdeviceptr pArg,
                               CUdeviceptr logProb, CUdeviceptr top1, CUdeviceptr lse) {
        if (M == 0) return;
        int tiles = summaryTiles(bf16, V);
        if (bf16) dev.launch("gemm_bf16_tc_summary", tiles, blocks(M, 128), 1, 256, 3 * 256 * 32 * 2,
                a, lmHead, M, V, K, targets, tgtLogit, pMax, pSum, pArg);
        else dev.launch("gemm_f32_nt_summary", tiles, blocks(M, 64), 1, 256, 0,
                a, lmHead, M, V, K, targets, tgtLogit, pMax, pSum, pArg);
        dev.launch("lse_combine", blocks(M, 4), 1, 1, 128, 0, pMax, pSum, pArg, tiles, tgtLogit, targets, logProb, top1, lse, M);
    }

    public void rngGaussian(CUdeviceptr out, CUdeviceptr positions, CUdeviceptr units, int n, long seed) {
        if (n == 0) return;
        dev.launch("rng_gaussian", blocks(n, 256), 1, 1, 256, 0, out, positions, units, n, seed);
    }
}
