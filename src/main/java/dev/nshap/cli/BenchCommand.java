package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.backend.cuda.CudaBackend;
import dev.nshap.bench.BenchReport;
import dev.nshap.bench.CoalitionBench;
import dev.nshap.bench.CpuPeak;
import dev.nshap.bench.ForwardBench;
import dev.nshap.bench.GpuBench;
import dev.nshap.bench.KernelBench;
import dev.nshap.bench.Machine;
import dev.nshap.bench.Stats;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.io.Json;
import dev.nshap.io.Npy;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.ModelInit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Benchmarks: throughput with median and spread over repetitions, and the fraction of the peaks "
                + "measured in the same run. A table goes to stdout, the JSON (machine + exact configuration) to "
                + "results/bench/.", "Models are random-init from --config (no download)."},
        subcommands = {BenchCommand.Gemm.class, BenchCommand.Attention.class, BenchCommand.Forward.class,
                BenchCommand.Coalitions.class, BenchCommand.Shapley.class, BenchCommand.ReferenceData.class})
public final class BenchCommand implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    /** The options every benchmark shares. */
    public static final class Common {
        @Option(names = "--backend", defaultValue = "cpu", paramLabel = "cpu|cuda", description = "Default: ${DEFAULT-VALUE}.")
        String backend;
        @Option(names = "--config", defaultValue = "small", paramLabel = "tiny|small|medium|large|xl|FILE.json",
                description = "GPT-2 shape (random init). Default: ${DEFAULT-VALUE}.")
        String config;
        @Option(names = "--precision", defaultValue = "fp32", paramLabel = "fp32|bf16",
                description = "bf16: CUDA only (tensor cores). Default: ${DEFAULT-VALUE}.")
        String precision;
        @Option(names = "--warmup", defaultValue = "2", description = "Untimed repetitions first. Default: ${DEFAULT-VALUE}.")
        int warmup;
        @Option(names = "--reps", defaultValue = "7", description = "Timed repetitions. Default: ${DEFAULT-VALUE}.")
        int reps;
        @Option(names = "--seed", defaultValue = "1", description = "Seeds the weights, tokens and coalitions. Default: ${DEFAULT-VALUE}.")
        long seed;
        @Option(names = "--json", paramLabel = "FILE", description = "Where the JSON goes (default: results/bench/<bench>-<backend>-<config>-<UTC time>.json).")
        Path json;
        @Option(names = "--no-json", description = "Print the table only.")
        boolean noJson;

        GPT2Config cfg;

        GPT2Config config() {
            if (cfg == null) cfg = GPT2Config.presetOrFile(config);
            return cfg;
        }

        boolean cuda() {
            return switch (backend.toLowerCase(Locale.ROOT)) {
                case "cpu" -> false;
                case "cuda" -> true;
                default -> throw new NshapException("--backend must be cpu or cuda for benchmarks, got '" + backend + "'");
            };
        }

        boolean bf16() {
            return switch (precision.toLowerCase(Locale.ROOT)) {
                case "fp32" -> false;
                case "bf16" -> {
                    if (!cuda()) throw new NshapException("--precision bf16 needs --backend cuda: the CPU kernels compute in fp32");
                    yield true;
                }
                default -> throw new NshapException("unknown precision '" + precision + "' (fp32|bf16)");
            };
        }

        void check() {
            if (reps < 1 || warmup < 0) throw new NshapException("--reps must be at least 1 and --warmup at least 0");
            cuda();
            bf16();
            config();
        }

        BenchReport report(String bench, GpuBench gpu) {
            Map<String, Object> m = Machine.describe();
            if (gpu != null) m.put("gpu", gpu.describe());
            BenchReport r = new BenchReport(bench, m);
            r.config.put("backend", cuda() ? "cuda" : "cpu");
            r.config.put("config", config);
            r.config.put("model", String.format(Locale.ROOT, "GPT-2 %d layers, %d heads, n_embd %d, vocab %d, random init (seed %d)",
                    cfg.nLayer(), cfg.nHead(), cfg.nEmbd(), cfg.vocabSize(), seed));
            r.config.put("precision", precision.toLowerCase(Locale.ROOT));
            r.method.put("warmup", warmup);
            r.method.put("reps", reps);
            r.method.put("statistic", "median; spread = (p90 - p10) / median");
            r.method.put("timing", gpu != null
                    ? "CUDA events on the null stream around each repetition (device time); end-to-end runs that return results to the host include the copies"
                    : "System.nanoTime around each repetition (wall clock)");
            return r;
        }

        /** Peaks of the CUDA side: measured first, the GPU being the benchmark's alone. */
        void gpuPeaks(BenchReport r, GpuBench g) {
            System.err.println("measuring the GPU peaks (device-to-device copy, best GEMM)...");
            GpuBench.Result bw = g.copyBandwidth(1024, 2, 10);
            r.peak("gpu_copy_bandwidth", bw.rate(), "GB/s", "cuMemcpyDtoD of 1 GiB, bytes read + written, median of 10");
            GpuBench.Peak p = g.gemmPeak(bf16(), 2, 10);
            r.peak("gpu_gemm", p.gflops(), "GFLOP/s", (bf16() ? "bf16 in, fp32 accumulate" : "fp32")
                    + ": best median of the own kernel and cuBLAS over 4096^3, 8192x3072x768, 8192x768x3072; best = " + p.describe());
        }

        void finish(BenchReport r, String title) {
            r.printTable(System.out, title);
            if (!noJson) {
                Path out = json != null ? json : Path.of("results", "bench", r.defaultFileName());
                r.writeJson(out);
                System.out.println("  json: " + out);
            }
        }

        GPT2Weights weights() {
            System.err.printf(Locale.ROOT, "initialising a random GPT-2 (%s: %d layers, n_embd %d)...%n", config, cfg.nLayer(), cfg.nEmbd());
            return ModelInit.random(cfg, seed);
        }

        Backend open(GPT2Weights w) {
            return cuda() ? new CudaBackend(w, precision.toLowerCase(Locale.ROOT)) : new CpuBackend(w);
        }
    }

    static void positive(String what, int... v) {
        for (int x : v) if (x < 1) throw new NshapException(what + " must be positive");
    }

    @Command(name = "gemm", mixinStandardHelpOptions = true,
            description = "One weight GEMM out[M,N] = x[M,K] W[K,N]; on CUDA the own kernel next to cuBLAS on the same buffers.")
    public static final class Gemm implements Runnable {
        @Mixin Common o;
        @Option(names = "--m", defaultValue = "2048", description = "Rows (tokens). Default: ${DEFAULT-VALUE} (64 prompts x 32 tokens).") int m;
        @Option(names = "--k", description = "Inner dimension. Default: the config's n_embd.") Integer k;
        @Option(names = "--n", description = "Columns. Default: the config's MLP width 4 n_embd.") Integer n;

        @Override public void run() {
            o.check();
            int K = k != null ? k : o.cfg.nEmbd(), N = n != null ? n : o.cfg.nInner();
            positive("--m, --k and --n", m, K, N);
            double flop = 2.0 * m * K * N;
            String shape = m + "x" + K + "x" + N;
            if (!o.cuda()) {
                BenchReport r = o.report("gemm", null);
                r.config.put("shape_MxKxN", shape);
                CpuPeak.around(r, () -> {
                    for (dev.nshap.backend.cpu.Gemm.Impl gi : dev.nshap.backend.cpu.Gemm.Impl.available()) {
                        Stats st = KernelBench.cpuGemm(gi, m, K, N, o.warmup, o.reps, o.seed);
                        r.row("gemm " + shape + (gi == dev.nshap.backend.cpu.Gemm.Impl.OPENBLAS ? " (OpenBLAS)" : " (Vector API)"),
                                st, flop / st.median() / 1e9, "GFLOP/s", "cpu_matmul");
                    }
                    return null;
                });
                o.finish(r, "CPU GEMM");
                return;
            }
            try (GpuBench g = GpuBench.open()) {
                BenchReport r = o.report("gemm", g);
                r.config.put("shape_MxKxN", shape);
                o.gpuPeaks(r, g);
                try (GpuBench.GemmBuffers b = g.gemm(o.bf16(), m, N, K, o.seed)) {
                    Stats own = g.time(o.warmup, o.reps, b::own);
                    Stats cb = g.time(o.warmup, o.reps, b::cublas);
                    r.row("gemm " + shape + " own kernel", own, flop / own.median() / 1e9, "GFLOP/s", "gpu_gemm");
                    r.row("gemm " + shape + " cuBLAS", cb, flop / cb.median() / 1e9, "GFLOP/s", "gpu_gemm");
                    r.row("own / cuBLAS", null, cb.median() / own.median(), "ratio", null);
                }
                o.finish(r, "CUDA GEMM (" + o.precision + ")");
            }
        }
    }

    @Command(name = "attention", mixinStandardHelpOptions = true,
            description = "One layer's causal attention over a batch of sequences (every head).")
    public static final class Attention implements Runnable {
        @Mixin Common o;
        @Option(names = "--batch", defaultValue = "64") int batch;
        @Option(names = "--seq", defaultValue = "32") int seq;

        @Override public void run() {
            o.check();
            positive("--batch and --seq", batch, seq);
            if (seq > o.cfg.nPositions()) throw new NshapException("--seq " + seq + " exceeds the model's context of " + o.cfg.nPositions());
            double flop = KernelBench.attentionFlops(o.cfg, batch, seq);
            GpuBench g = o.cuda() ? GpuBench.open() : null;
            try {
                BenchReport r = o.report("attention", g);
                r.config.put("batch", batch);
                r.config.put("seq", seq);
                Stats st;
                if (g == null) {
                    st = CpuPeak.around(r, () -> KernelBench.cpuAttention(o.cfg, batch, seq, o.warmup, o.reps, o.seed));
                } else {
                    o.gpuPeaks(r, g);
                    st = KernelBench.gpuAttention(g, o.cfg, o.bf16(), batch, seq, o.warmup, o.reps, o.seed);
                }
                if (g == null) {
                    double bw = CpuPeak.copyBandwidth(1, 5);
                    r.peak("cpu_copy_bandwidth", bw, "GB/s", "parallel System.arraycopy of 256 MiB, bytes read + written, median of 5");
                }
                // Compulsory traffic: qkv read once, the head outputs written once.
                double bytes = (double) batch * seq * o.cfg.nEmbd() * (3 * 4 + (o.bf16() ? 2 : 4));
                r.row("attention (QK^T + PV FLOPs)", st, flop / st.median() / 1e9, "GFLOP/s", g == null ? "cpu_matmul" : "gpu_gemm");
                r.row("attention (qkv in + out bytes)", st, bytes / st.median() / 1e9, "GB/s", g == null ? "cpu_copy_bandwidth" : "gpu_copy_bandwidth");
                r.row("tokens/s (one layer)", st, batch * seq / st.median(), "tokens/s", null);
                o.finish(r, (g == null ? "CPU" : "CUDA") + " attention, one layer");
            } finally {
                if (g != null) g.close();
            }
        }
    }

    @Command(name = "forward", mixinStandardHelpOptions = true,
            description = "Forward-pass tokens/s on a random-init model (scored at the last position).")
    public static final class Forward implements Runnable {
        @Mixin Common o;
        @Option(names = "--batch", defaultValue = "8") int batch;
        @Option(names = "--seq", defaultValue = "64") int seq;

        @Override public void run() {
            o.check();
            positive("--batch and --seq", batch, seq);
            if (seq > o.cfg.nPositions()) throw new NshapException("--seq " + seq + " exceeds the model's context of " + o.cfg.nPositions());
            GpuBench g = o.cuda() ? GpuBench.open() : null;
            try {
                BenchReport r = o.report("forward", g);
                r.config.put("batch", batch);
                r.config.put("seq", seq);
                if (g != null) o.gpuPeaks(r, g);
                GPT2Weights w = o.weights();
                try (Backend b = o.open(w)) {
                    System.err.println("timing the forward pass...");
                    ForwardBench.Timer timer = g == null ? Stats::time : g::time;
                    ForwardBench.Result res = g == null
                            ? CpuPeak.around(r, () -> ForwardBench.run(b, batch, seq, o.warmup, o.reps, o.seed, timer))
                            : ForwardBench.run(b, batch, seq, o.warmup, o.reps, o.seed, timer);
                    String peak = g == null ? "cpu_matmul" : "gpu_gemm";
                    r.row("forward tokens/s", res.time(), res.tokensPerSecond(), "tokens/s", null);
                    r.row("model GFLOP/s", res.time(), res.modelGflops(), "GFLOP/s", peak);
                    if (!Double.isNaN(res.gemmGflops())) {
                        r.row("GEMM GFLOP/s inside the forward", null, res.gemmGflops(), "GFLOP/s", peak);
                        r.notes.add(String.format(Locale.ROOT, "time split: GEMM %.0f%%, attention %.0f%%, unembedding %.0f%%, other %.0f%%",
                                100 * res.gemmShare(), 100 * res.attentionShare(), 100 * res.unembedShare(),
                                Math.max(0, 100 * (1 - res.gemmShare() - res.attentionShare() - res.unembedShare()))));
                        r.config.put("time_split", Map.of("gemm", res.gemmShare(), "attention", res.attentionShare(), "unembed", res.unembedShare()));
                    }
                    r.method.put("flop_model", "24 C^2 per token per layer + 4 C per causal (query, key) pair per layer + 2 C V per scored row");
                }
                o.finish(r, (g == null ? "CPU" : "CUDA") + " forward, GPT-2 " + o.config + " (random init), batch " + batch + " x " + seq + " tokens");
            } finally {
                if (g != null) g.close();
            }
        }
    }

    @Command(name = "coalitions", mixinStandardHelpOptions = true,
            description = {"Masked coalition evaluations/s: C random keep-sets over the MLP neurons of the chosen layers "
                    + "(dropped neurons zeroed), each valued on P prompts of T random tokens (loss at the last position).",
                    "One evaluation = one coalition valued on all P prompts."})
    public static final class Coalitions implements Runnable {
        @Mixin Common o;
        @Option(names = "--coalitions", defaultValue = "16") int coalitions;
        @Option(names = "--prompts", defaultValue = "64") int prompts;
        @Option(names = "--tokens", defaultValue = "32") int tokens;
        @Option(names = "--layers", defaultValue = "all", description = "'all' or a comma list of layers. Default: ${DEFAULT-VALUE}.") String layers;
        @Option(names = "--keep", defaultValue = "0.5", description = "Probability a neuron is in a coalition. Default: ${DEFAULT-VALUE}.") double keep;
        @Option(names = "--max-tokens", description = "Tokens per forward batch. Default: 2048 on the CPU, all coalitions x prompts on CUDA.") Integer maxTokens;

        @Override public void run() {
            o.check();
            positive("--coalitions, --prompts and --tokens", coalitions, prompts, tokens);
            if (tokens > o.cfg.nPositions()) throw new NshapException("--tokens " + tokens + " exceeds the model's context of " + o.cfg.nPositions());
            if (!(keep >= 0 && keep <= 1)) throw new NshapException("--keep must lie in [0, 1]");
            int[] ls = CoalitionBench.layers(o.cfg, layers);
            int mt = maxTokens != null ? maxTokens : o.cuda() ? coalitions * prompts * tokens : 2048;
            positive("--max-tokens", mt);
            GpuBench g = o.cuda() ? GpuBench.open() : null;
            try {
                BenchReport r = o.report("coalitions", g);
                r.config.put("coalitions", coalitions);
                r.config.put("prompts", prompts);
                r.config.put("tokens", tokens);
                r.config.put("layers", layers);
                r.config.put("keep", keep);
                r.config.put("max_tokens_per_batch", mt);
                r.method.put("timing", "wall clock around each full evaluation of every coalition on every prompt (results back on the host)");
                if (g != null) o.gpuPeaks(r, g);
                GPT2Weights w = o.weights();
                try (Backend b = o.open(w)) {
                    System.err.println("timing the coalition evaluations...");
                    CoalitionBench.Result res = g == null
                            ? CpuPeak.around(r, () -> CoalitionBench.run(b, coalitions, prompts, tokens, ls, keep, mt, o.warmup, o.reps, o.seed, Stats::time))
                            : CoalitionBench.run(b, coalitions, prompts, tokens, ls, keep, mt, o.warmup, o.reps, o.seed, Stats::time);
                    r.row("coalition evaluations/s", res.time(), res.evaluationsPerSecond(), "evals/s", null);
                    r.row("tokens/s", res.time(), res.tokensPerSecond(), "tokens/s", null);
                    r.row("model GFLOP/s", res.time(), res.modelGflops(), "GFLOP/s", g == null ? "cpu_matmul" : "gpu_gemm");
                    r.config.put("forward_passes", res.forwardPasses());
                }
                o.finish(r, (g == null ? "CPU" : "CUDA") + " coalitions, GPT-2 " + o.config + ": " + coalitions + " coalitions x "
                        + prompts + " prompts x " + tokens + " tokens");
            } finally {
                if (g != null) g.close();
            }
        }
    }

    @Command(name = "shapley", mixinStandardHelpOptions = true,
            description = {"End-to-end TMAB Shapley run over MLP neurons for a fixed number of coalition evaluations "
                    + "(random-init model, P prompts of T random tokens, zero ablation, loss metric).",
                    "Each repetition is a whole run from the same seed; the clean prefix up to the first player layer "
                    + "is computed inside the run, as a user's run would."})
    public static final class Shapley implements Runnable {
        @Mixin Common o;
        @Option(names = "--evaluations", defaultValue = "512", description = "Coalition evaluations per run (the budget). Default: ${DEFAULT-VALUE}.") long evaluations;
        @Option(names = "--players", description = "all | blocks.L.mlp.hook_post[,...] (default: the middle layer, blocks.(n_layer/2).mlp.hook_post).")
        String players;
        @Option(names = "--group-size", defaultValue = "16", description = "Neurons per player. Default: ${DEFAULT-VALUE}.") int groupSize;
        @Option(names = "--prompts", defaultValue = "16") int prompts;
        @Option(names = "--tokens", defaultValue = "32") int tokens;
        @Option(names = "--batch", defaultValue = "64", description = "Coalitions per evaluator call. Default: ${DEFAULT-VALUE}.") int batch;
        @Option(names = "--max-tokens", description = "Tokens per forward batch. Default: 2048 on the CPU, 65536 on CUDA.") Integer maxTokens;

        @Override public void run() {
            o.check();
            positive("--prompts, --tokens, --batch and --group-size", prompts, tokens, batch, groupSize);
            if (evaluations < 1) throw new NshapException("--evaluations must be positive");
            if (tokens > o.cfg.nPositions()) throw new NshapException("--tokens " + tokens + " exceeds the model's context of " + o.cfg.nPositions());
            int mt = maxTokens != null ? maxTokens : o.cuda() ? 65536 : 2048;
            positive("--max-tokens", mt);
            if (players == null) players = "blocks." + o.cfg.nLayer() / 2 + ".mlp.hook_post";
            dev.nshap.eval.NeuronPlayers ps = dev.nshap.eval.NeuronPlayers.parse(players, groupSize, o.cfg);
            if (evaluations < ps.size() + 1)
                throw new NshapException("--evaluations " + evaluations + " does not cover one TMAB permutation of " + ps.size()
                        + " players (needs " + (ps.size() + 1) + "): raise it or --group-size");
            GpuBench g = o.cuda() ? GpuBench.open() : null;
            try {
                BenchReport r = o.report("shapley", g);
                r.config.put("estimator", "tmab");
                r.config.put("evaluations", evaluations);
                r.config.put("players", players + " (" + ps.size() + " players, " + ps.neuronCount() + " neurons)");
                r.config.put("prompts", prompts);
                r.config.put("tokens", tokens);
                r.config.put("batch", batch);
                r.config.put("max_tokens_per_batch", mt);
                r.method.put("timing", "wall clock around each whole run (estimator, evaluator and forward passes)");
                if (g != null) o.gpuPeaks(r, g);
                GPT2Weights w = o.weights();
                var data = CoalitionBench.prompts(o.cfg, prompts, tokens, o.seed);
                dev.nshap.shapley.ShapleyConfig sc = dev.nshap.shapley.ShapleyConfig.builder(dev.nshap.shapley.Estimator.TMAB)
                        .budget(evaluations).batch(batch).seed(o.seed).build();
                try (Backend b = o.open(w)) {
                    long[] done = new long[1];
                    java.util.function.Supplier<Stats> work = () -> Stats.time(o.warmup, o.reps, () -> {
                        var game = new dev.nshap.eval.NeuronGame(new dev.nshap.eval.Evaluator(b, data, mt), ps,
                                dev.nshap.eval.Metric.LOSS, dev.nshap.eval.NeuronGame.Ablation.ZERO, 0, Map.of("bench", "shapley"));
                        new dev.nshap.shapley.ShapleyRunner(game, sc).run();
                        done[0] = game.coalitionsEvaluated();
                    });
                    System.err.println("timing " + (o.warmup + o.reps) + " TMAB runs of " + evaluations + " evaluations...");
                    Stats st = g == null ? CpuPeak.around(r, work) : work.get();
                    r.config.put("evaluations_done", done[0]);
                    r.row("coalition evaluations/s", st, done[0] / st.median(), "evals/s", null);
                    r.row("tokens/s", st, (double) done[0] * prompts * tokens / st.median(), "tokens/s", null);
                }
                o.finish(r, (g == null ? "CPU" : "CUDA") + " TMAB Shapley, GPT-2 " + o.config + ": " + evaluations + " evaluations, "
                        + prompts + " prompts x " + tokens + " tokens");
            } finally {
                if (g != null) g.close();
            }
        }
    }

    @Command(name = "reference-data", mixinStandardHelpOptions = true,
            description = {"Writes a random-init checkpoint, random tokens, neuron masks and the CPU backend's logits "
                    + "(clean and masked) to DIR, for checking a reference implementation against nshap (bench/reference_numpy.py --check DIR)."})
    public static final class ReferenceData implements Runnable {
        @Option(names = "--config", defaultValue = "tiny") String config;
        @Option(names = "--seed", defaultValue = "1") long seed;
        @Option(names = "--batch", defaultValue = "2") int batch;
        @Option(names = "--seq", defaultValue = "16") int seq;
        @Option(names = "--keep", defaultValue = "0.5") double keep;
        @Option(names = "--out", required = true, paramLabel = "DIR") Path out;

        @Override public void run() {
            GPT2Config c = GPT2Config.presetOrFile(config);
            positive("--batch and --seq", batch, seq);
            if (seq > c.nPositions()) throw new NshapException("--seq " + seq + " exceeds the model's context of " + c.nPositions());
            GPT2Weights w = ModelInit.random(c, seed);
            Checkpoint.write(out, w, "f32", Map.of("nshap", "bench reference-data, seed " + seed));
            SplittableRandom r = new SplittableRandom(seed + 17);
            int H = c.nInner(), V = c.vocabSize(), L = c.nLayer();
            float[] tok = new float[batch * seq];
            float[] mask = new float[batch * L * H];
            ForwardRequest clean = new ForwardRequest(), masked = new ForwardRequest();
            int[] all = java.util.stream.IntStream.range(0, seq).toArray();
            for (int b = 0; b < batch; b++) {
                int[] t = new int[seq];
                for (int i = 0; i < seq; i++) tok[b * seq + i] = t[i] = r.nextInt(V);
                clean.add(t, all, null);
                masked.add(t, all, null);
                for (int l = 0; l < L; l++) {
                    int[] dropped = new int[H];
                    int n = 0;
                    for (int u = 0; u < H; u++) {
                        boolean kept = r.nextDouble() < keep;
                        mask[(b * L + l) * H + u] = kept ? 1f : 0f;
                        if (!kept) dropped[n++] = u;
                    }
                    masked.interventions.add(Intervention.zero(HookPoint.mlpPost(l), java.util.Arrays.copyOf(dropped, n), new int[]{b}));
                }
            }
            try (Backend be = new CpuBackend(w)) {
                write(out.resolve("logits.npy"), be.forward(clean), batch, seq, V);
                write(out.resolve("logits_masked.npy"), be.forward(masked), batch, seq, V);
            }
            // Token ids < 2^24 are exact in float32, the one dtype the .npy writer has.
            Npy.write(out.resolve("tokens.npy"), tok, batch, seq);
            Npy.write(out.resolve("mask.npy"), mask, batch, L, H);
            System.out.println("wrote " + out + ": config.json, model.safetensors, tokens.npy [" + batch + ", " + seq + "], mask.npy ["
                    + batch + ", " + L + ", " + H + "], logits.npy and logits_masked.npy [" + batch + ", " + seq + ", " + V + "]");
        }

        static void write(Path f, ForwardResult res, int batch, int seq, int v) {
            float[] all = new float[batch * seq * v];
            for (int b = 0; b < batch; b++) System.arraycopy(res.logits()[b], 0, all, b * seq * v, seq * v);
            Npy.write(f, all, batch, seq, v);
        }
    }
}
