package dev.nshap.backend.cuda;

import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cuda.CudaKernels.GemmKind;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;
import jcuda.driver.CUdeviceptr;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;

/**
 * Kernel and forward-pass timings on the GPU (run by scripts/gpu-check.sh):
 * {@code java -cp nshap.jar dev.nshap.backend.cuda.CudaPerf}. GPT-2 small shapes, random weights; the forward is
 * the Shapley workload: 64 prompts x 32 tokens x 16 coalitions, neurons zeroed per coalition at mlp.hook_post.
 */
public final class CudaPerf {
    private CudaPerf() {}

    public static void main(String[] args) {
        String why = CudaDevice.unavailableReason();
        if (why != null) {
            System.out.println("cuda-perf: CUDA backend unavailable: " + why);
            System.exit(2);
        }
        CudaDevice dev = CudaDevice.get();
        CudaKernels k = new CudaKernels(dev);
        System.out.println("cuda-perf: " + dev.describe());
        int C = 768, H = 3072, rows = 64 * 32 * 16;
        Random r = new Random(1);
        List<CUdeviceptr> bufs = new ArrayList<>();
        Consumer<CUdeviceptr> keep = bufs::add;
        CUdeviceptr a32 = dev.upload(rand(r, rows * C)), w32 = dev.upload(rand(r, C * H)), bias = dev.upload(rand(r, H));
        CUdeviceptr a16 = dev.upload(CudaKernels.toBf16(rand(r, rows * C))), w16 = dev.upload(CudaKernels.toBf16(rand(r, C * H)));
        CUdeviceptr out = dev.alloc(4L * rows * H), out16 = dev.alloc(2L * rows * H);
        for (CUdeviceptr p : new CUdeviceptr[]{a32, w32, bias, a16, w16, out, out16}) keep.accept(p);
        double flop = 2.0 * rows * C * H;
        time("gemm_bf16_tc  32768x3072x768", 20, () -> k.gemm(GemmKind.BF16_TC, out, a16, w16, bias, rows, H, C, false), dev, flop, 0);
        time("gemm_f32_nn   32768x3072x768", 5, () -> k.gemm(GemmKind.F32_NN, out, a32, w32, bias, rows, H, C, false), dev, flop, 0);
        time("layernorm_bf16 32768x768", 20, () -> k.layerNorm(out16, true, a32, null, bias, bias, rows, C, 1e-5f), dev, 0,
                (long) rows * C * 6);
        time("gelu_intervene_bf16 32768x3072", 20, () -> k.geluIntervene(out16, true, null, out, rows, H,
                CudaKernels.ACT_GELU_TANH, null, null, null), dev, 0, (long) rows * H * 6);
        // attention: 1024 sequences of 32 tokens (short kernel), 16 of 1024 (flash kernel)
        CUdeviceptr qkv = dev.alloc(4L * rows * 3 * C), z = dev.alloc(2L * rows * C);
        keep.accept(qkv); keep.accept(z);
        dev.zero(qkv, 4L * rows * 3 * C);
        int[] st = new int[1024], ln = new int[1024];
        for (int s = 0; s < 1024; s++) { st[s] = 32 * s; ln[s] = 32; }
        CUdeviceptr dst = dev.upload(st), dln = dev.upload(ln);
        keep.accept(dst); keep.accept(dln);
        time("attn_short 1024 x T=32, 12 heads", 20, () -> k.attention(z, true, qkv, dst, dln, 1024, 32, 12, C, false), dev,
                2.0 * 2 * 1024 * 32 * 33 / 2 * C, 0);
        int[] st2 = new int[16], ln2 = new int[16];
        for (int s = 0; s < 16; s++) { st2[s] = 1024 * s; ln2[s] = 1024; }
        CUdeviceptr dst2 = dev.upload(st2), dln2 = dev.upload(ln2);
        keep.accept(dst2); keep.accept(dln2);
        time("attn_flash 16 x T=1024, 12 heads", 10, () -> k.attention(z, true, qkv, dst2, dln2, 16, 1024, 12, C, true), dev,
                2.0 * 2 * 16 * 1024 * 1025 / 2 * C, 0);
        for (CUdeviceptr p : bufs) dev.free(p);

        GPT2Config cfg = GPT2Config.preset("small");
        GPT2Weights w = ModelInit.random(cfg, 7);
        for (String precision : new String[]{"bf16", "fp32"})
            try (CudaBackend b = new CudaBackend(w, precision, false)) {
                for (int firstLayer : new int[]{0, 6}) {
                    ForwardRequest q = shapleyBatch(cfg, 64, 32, 16, firstLayer, new Random(3));
                    b.forward(q); // warm-up: workspace, JIT
                    int reps = precision.equals("bf16") ? 5 : 2;
                    long t0 = System.nanoTime();
                    for (int i = 0; i < reps; i++) b.forward(q);
                    double ms = (System.nanoTime() - t0) / 1e6 / reps;
                    System.out.printf("forward %s GPT-2 small, 64 prompts x 32 tokens x 16 coalitions, interventions from layer %d: "
                            + "%.1f ms, %.0f token rows/s, %.0f coalition-prompts/s%n", precision, firstLayer, ms,
                            q.size() * 32 / (ms / 1e3), q.size() / (ms / 1e3));
                }
            }
    }

    /** Sequence = coalition * prompts + prompt; each coalition zeroes its own half of the neurons from firstLayer on. */
    static ForwardRequest shapleyBatch(GPT2Config c, int prompts, int T, int coalitions, int firstLayer, Random r) {
        ForwardRequest q = new ForwardRequest();
        List<int[]> ps = new ArrayList<>();
        for (int p = 0; p < prompts; p++) {
            int[] t = new int[T];
            for (int i = 0; i < T; i++) t[i] = r.nextInt(c.vocabSize());
            ps.add(t);
        }
        for (int k = 0; k < coalitions; k++)
            for (int p = 0; p < prompts; p++) q.add(ps.get(p), new int[]{T - 1}, new int[]{r.nextInt(c.vocabSize())});
        q.wantLogits = false;
        for (int k = 0; k < coalitions; k++) {
            int[] seqs = new int[prompts];
            for (int p = 0; p < prompts; p++) seqs[p] = k * prompts + p;
            for (int l = firstLayer; l < c.nLayer(); l++) {
                int[] units = r.ints(0, c.nInner()).distinct().limit(c.nInner() / 2).toArray();
                q.interventions.add(Intervention.zero(HookPoint.mlpPost(l), units, seqs));
            }
        }
        return q;
    }

    private static float[] rand(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * 0.1);
        return a;
    }

    private static void time(String what, int reps, Runnable op, CudaDevice dev, double flop, long bytes) {
        op.run();
        dev.synchronize();
        long t0 = System.nanoTime();
        for (int i = 0; i < reps; i++) op.run();
        dev.synchronize();
        double s = (System.nanoTime() - t0) / 1e9 / reps;
        StringBuilder sb = new StringBuilder(String.format("kernel %-36s %8.3f ms", what, s * 1e3));
        if (flop > 0) sb.append(String.format("  %7.1f TFLOP/s", flop / s / 1e12));
        if (bytes > 0) sb.append(String.format("  %7.1f GB/s", bytes / s / 1e9));
        System.out.println(sb);
    }
}
