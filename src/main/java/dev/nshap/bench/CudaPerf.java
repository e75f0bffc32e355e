package dev.nshap.bench;

import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cuda.CudaBackend;
import dev.nshap.backend.cuda.CudaDevice;
import dev.nshap.backend.cuda.CudaKernels;
import dev.nshap.backend.cuda.CudaKernels.GemmKind;
import dev.nshap.io.Json;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;
import jcuda.driver.CUdeviceptr;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The GPU perf table of scripts/gpu-check.sh: {@code java -cp nshap.jar dev.nshap.bench.CudaPerf [out.json]}.
 * GPT-2 small shapes, random weights. Kernels by CUDA events; the Shapley workload (64 prompts x 32 tokens x 16
 * coalitions, half the neurons of every layer zeroed per coalition) both as one forward request and through the
 * evaluator exactly as a game sends it, each split into host preparation, host-to-device, GPU and device-to-host
 * time. One line per figure on stdout ("perf ..."), the same figures as JSON.
 */
public final class CudaPerf {
    private CudaPerf() {}

    static final int PROMPTS = 64, TOKENS = 32, COALITIONS = 16;

    public static void main(String[] args) throws Exception {
        String why = CudaDevice.unavailableReason();
        if (why != null) {
            System.out.println("perf: CUDA backend unavailable: " + why);
            System.exit(2);
        }
        Map<String, Object> json = new LinkedHashMap<>();
        try (GpuBench g = GpuBench.open()) {
            json.put("gpu", g.describe());
            line("device " + g.dev.describe());
            String cublasWhy = g.cublasUnavailable();
            json.put("cublas", cublasWhy == null ? "available" : cublasWhy);
            line(cublasWhy == null ? "cublas available" : "cublas unavailable, every peak below is the own GEMM: " + cublasWhy);
            kernels(g, json);
        }
        GPT2Config cfg = GPT2Config.preset("small");
        GPT2Weights w = ModelInit.random(cfg, 7);
        for (String precision : new String[]{"bf16", "fp32"})
            try (CudaBackend b = new CudaBackend(w, precision, false)) {
                ForwardRequest q = shapleyBatch(cfg, PROMPTS, TOKENS, COALITIONS, 0, new Random(3));
                // the correctness pass runs under CUDA_LAUNCH_BLOCKING=1, without graphs: here replays must give the
                // bits of launches one by one (two calls, so that the second replays the captured graph)
                b.setGraphs(false);
                dev.nshap.backend.ForwardResult plainRun = b.forward(q);
                b.setGraphs(true);
                b.forward(q);
                dev.nshap.backend.ForwardResult replayed = b.forward(q);
                int differ = 0;
                for (int s = 0; s < q.size(); s++)
                    if (!java.util.Arrays.equals(plainRun.targetLogProb()[s], replayed.targetLogProb()[s])
                            || !java.util.Arrays.equals(plainRun.top1()[s], replayed.top1()[s])) differ++;
                json.put("graph_replay_" + precision, differ == 0 ? "identical" : differ + " sequences differ");
                line("graph-replay " + precision + ": " + (differ == 0 ? "identical to kernel-by-kernel launches"
                        : "FAILED: " + differ + " of " + q.size() + " sequences differ from kernel-by-kernel launches"));
                for (boolean graphs : precision.equals("bf16") ? new boolean[]{true, false} : new boolean[]{true}) {
                    b.setGraphs(graphs);
                    b.forward(q); // workspace, JIT, graph capture
                    int reps = precision.equals("bf16") ? 10 : 3;
                    CudaBackend.Profile p = b.setProfiling(true);
                    long t0 = System.nanoTime();
                    for (int i = 0; i < reps; i++) b.forward(q);
                    double ms = (System.nanoTime() - t0) / 1e6 / reps;
                    b.setProfiling(false);
                    String key = "forward_" + precision + (graphs ? "" : "_no_graph");
                    double tps = q.size() * TOKENS / (ms / 1e3);
                    json.put(key, Map.of("ms", ms, "tokens_per_s", tps, "split", p.describe()));
                    line(String.format("%s %dx%dx%d: %.2f ms wall, %.0f tokens/s; %s", key, PROMPTS, TOKENS, COALITIONS, ms, tps, p.describe()));
                }
                // through the evaluator, as a game sends it: the prefix shared on the device, the budget from the planner
                CudaBackend.Profile p = b.setProfiling(true);
                int[] layers = java.util.stream.IntStream.range(0, cfg.nLayer()).toArray();
                int reps = precision.equals("bf16") ? 10 : 3;
                CoalitionBench.Result r = CoalitionBench.run(b, COALITIONS, PROMPTS, TOKENS, layers, 0.5, 4096, 2, reps, 11,
                        Stats::time);
                b.setProfiling(false);
                String key = "evaluator_" + precision;
                json.put(key, Map.of("coalition_evals_per_s", r.evaluationsPerSecond(), "tokens_per_s", r.tokensPerSecond(),
                        "median_s", r.time().median(), "forwards_per_call", (double) r.forwardPasses() / (2 + reps), "split", p.describe()));
                line(String.format("%s %dx%dx%d: %.1f coalition evals/s, %.0f tokens/s, %.2f forwards per game call; %s", key,
                        PROMPTS, TOKENS, COALITIONS, r.evaluationsPerSecond(), r.tokensPerSecond(), (double) r.forwardPasses() / (2 + reps),
                        p.describe()));
            }
        if (args.length > 0) Files.writeString(Path.of(args[0]), Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(json));
    }

    private static void line(String s) { System.out.println("perf " + s); }

    private static void kernels(GpuBench g, Map<String, Object> json) {
        CudaDevice dev = g.dev;
        CudaKernels k = g.kernels;
        int C = 768, H = 3072, rows = PROMPTS * TOKENS * COALITIONS;
        // the weight GEMMs at the workload's rows, and the side-by-side's M = 2048
        for (int[] s : new int[][]{{rows, H, C}, {rows, C, H}, {2048, H, C}})
            for (boolean bf16 : new boolean[]{true, false})
                try (GpuBench.GemmBuffers b = g.gemm(bf16, s[0], s[1], s[2], 7)) {
                    Stats st = g.time(3, bf16 ? 20 : 5, b::own);
                    double tf = b.flop() / st.median() / 1e12;
                    String key = "gemm_" + (bf16 ? "bf16" : "fp32") + "_M" + s[0] + "_N" + s[1] + "_K" + s[2];
                    json.put(key, Map.of("tflops", tf, "median_ms", st.median() * 1e3));
                    line(String.format("%s own: %.1f TFLOP/s (%.3f ms)", key, tf, st.median() * 1e3));
                }
        Random r = new Random(1);
        List<CUdeviceptr> bufs = new ArrayList<>();
        CUdeviceptr a32 = keep(bufs, dev.upload(rand(r, rows * C))), bias = keep(bufs, dev.upload(rand(r, H)));
        CUdeviceptr out = keep(bufs, dev.alloc(4L * rows * H)), out16 = keep(bufs, dev.alloc(2L * rows * H));
        time(g, json, "layernorm_bf16 32768x768", () -> k.layerNorm(out16, true, a32, null, bias, bias, rows, C, 1e-5f), 0, (long) rows * C * 6);
        time(g, json, "gelu_intervene_bf16 32768x3072", () -> k.geluIntervene(out16, true, null, out, rows, H,
                CudaKernels.ACT_GELU_TANH, null, null, null), 0, (long) rows * H * 6);
        CUdeviceptr qkv = keep(bufs, dev.alloc(4L * rows * 3 * C)), z = keep(bufs, dev.alloc(2L * rows * C));
        dev.zero(qkv, 4L * rows * 3 * C);
        int[] st = new int[1024], ln = new int[1024];
        for (int s = 0; s < 1024; s++) { st[s] = 32 * s; ln[s] = 32; }
        CUdeviceptr dst = keep(bufs, dev.upload(st)), dln = keep(bufs, dev.upload(ln));
        time(g, json, "attn_short 1024 x T=32, 12 heads", () -> k.attention(z, true, qkv, dst, dln, 1024, 32, 12, C, false),
                2.0 * 2 * 1024 * 32 * 33 / 2 * C, 0);
        int[] st2 = new int[16], ln2 = new int[16];
        for (int s = 0; s < 16; s++) { st2[s] = 1024 * s; ln2[s] = 1024; }
        CUdeviceptr dst2 = keep(bufs, dev.upload(st2)), dln2 = keep(bufs, dev.upload(ln2));
        time(g, json, "attn_flash 16 x T=1024, 12 heads", () -> k.attention(z, true, qkv, dst2, dln2, 16, 1024, 12, C, true),
                2.0 * 2 * 16 * 1024 * 1025 / 2 * C, 0);
        int V = 50257, S = CudaBackend.LOGIT_SLAB, tiles = CudaKernels.summaryTiles(true, V);
        CUdeviceptr head = keep(bufs, dev.upload(CudaKernels.toBf16(rand(r, V * C)))), xs = keep(bufs, dev.upload(CudaKernels.toBf16(rand(r, S * C))));
        CUdeviceptr logits = keep(bufs, dev.alloc(4L * S * V)), tg = keep(bufs, dev.upload(new int[S]));
        CUdeviceptr lp = keep(bufs, dev.alloc(4L * S)), t1 = keep(bufs, dev.alloc(4L * S)), tl = keep(bufs, dev.alloc(4L * S));
        CUdeviceptr pm = keep(bufs, dev.alloc(4L * S * tiles)), psum = keep(bufs, dev.alloc(4L * S * tiles)), pa = keep(bufs, dev.alloc(4L * S * tiles));
        double uflop = 2.0 * S * V * C;
        time(g, json, "unembed 256x50257x768 store+reduce", () -> {
            k.gemm(GemmKind.BF16_TC, logits, xs, head, null, S, V, C, false);
            k.logSoftmaxSummary(logits, tg, lp, t1, null, S, V);
        }, uflop, 0);
        time(g, json, "unembed 256x50257x768 fused summary", () -> k.unembedSummary(true, xs, head, S, V, C, tg, tl, pm, psum, pa, lp, t1, null),
                uflop, 0);
        for (CUdeviceptr p : bufs) dev.free(p);
    }

    private static CUdeviceptr keep(List<CUdeviceptr> bufs, CUdeviceptr p) {
        bufs.add(p);
        return p;
    }

    private static void time(GpuBench g, Map<String, Object> json, String what, Stats.Body op, double flop, long bytes) {
        Stats st = g.time(2, 20, op);
        double s = st.median();
        StringBuilder sb = new StringBuilder(String.format("kernel %-36s %8.3f ms", what, s * 1e3));
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("median_ms", s * 1e3);
        if (flop > 0) { sb.append(String.format("  %7.1f TFLOP/s", flop / s / 1e12)); m.put("tflops", flop / s / 1e12); }
        if (bytes > 0) { sb.append(String.format("  %7.1f GB/s", bytes / s / 1e9)); m.put("gb_per_s", bytes / s / 1e9); }
        json.put("kernel " + what, m);
        line(sb.toString());
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
}
