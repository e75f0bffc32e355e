package dev.nshap.bench;

import dev.nshap.backend.cpu.CpuKernels;
import dev.nshap.backend.cuda.CudaKernels;
import dev.nshap.model.GPT2Config;
import jcuda.driver.CUdeviceptr;

import java.util.SplittableRandom;
import java.util.stream.IntStream;

/** Single-kernel workloads: one weight GEMM, one layer's causal attention over a batch. */
public final class KernelBench {
    private KernelBench() {}

    static float[] random(int n, SplittableRandom r, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextDouble() - 0.5) * scale;
        return a;
    }

    /** out[M,N] = x[M,K] W[K,N] + b with the given CPU GEMM (as the forward pass calls it). */
    public static Stats cpuGemm(dev.nshap.backend.cpu.Gemm.Impl g, int m, int k, int n, int warmup, int reps, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = random(m * k, r, 1f), w = random(k * n, r, 0.05f), b = random(n, r, 0.1f), o = new float[m * n];
        return Stats.time(warmup, reps, () -> g.linear(o, x, w, b, m, k, n));
    }

    /** FLOPs of one layer's causal attention (scores and the weighted sum of V) over batch sequences of seq tokens. */
    public static double attentionFlops(GPT2Config c, int batch, int seq) {
        return 4.0 * c.nEmbd() * batch * (seq * (seq + 1) / 2.0);
    }

    /** Every (sequence, head) of one layer, as the CPU backend runs them. */
    public static Stats cpuAttention(GPT2Config c, int batch, int seq, int warmup, int reps, long seed) {
        int C = c.nEmbd();
        SplittableRandom r = new SplittableRandom(seed);
        float[] qkv = random(batch * seq * 3 * C, r, 1f), out = new float[batch * seq * C];
        int heads = c.nHead();
        return Stats.time(warmup, reps, () -> IntStream.range(0, batch * heads).parallel().forEach(task -> {
            int s = task / heads, h = task % heads;
            CpuKernels.attentionHead(out, qkv, s * seq, seq, C, heads, h, new float[seq]);
        }));
    }

    /** The CUDA attention kernel on one layer's packed qkv (fp32) for a batch of equal-length sequences. */
    public static Stats gpuAttention(GpuBench g, GPT2Config c, boolean bf16, int batch, int seq, int warmup, int reps, long seed) {
        int C = c.nEmbd();
        SplittableRandom r = new SplittableRandom(seed);
        CUdeviceptr qkv = g.dev.upload(random(batch * seq * 3 * C, r, 1f));
        CUdeviceptr z = g.dev.alloc((long) batch * seq * C * 4);
        int[] start = new int[batch], len = new int[batch];
        for (int s = 0; s < batch; s++) { start[s] = s * seq; len[s] = seq; }
        CUdeviceptr ds = g.dev.upload(start), dl = g.dev.upload(len);
        CudaKernels k = g.kernels;
        try {
            return g.time(warmup, reps, () -> k.attention(z, bf16, qkv, ds, dl, batch, seq, c.nHead(), C, null));
        } finally {
            g.dev.free(qkv); g.dev.free(z); g.dev.free(ds); g.dev.free(dl);
        }
    }
}
