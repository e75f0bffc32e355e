package dev.nshap.cli;

import dev.nshap.NshapException;
import dev.nshap.bench.CpuPeak;
import dev.nshap.bench.ForwardBench;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.ModelInit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.Locale;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks that print figures: throughput and the fraction of the measured peak.",
        subcommands = {BenchCommand.Forward.class})
public final class BenchCommand implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    @Command(name = "forward", mixinStandardHelpOptions = true,
            description = "Forward-pass tokens/s and GFLOP/s of the CPU backend on a random-init model, with the machine's matmul rate measured in the same run.")
    public static final class Forward implements Runnable {
        @Option(names = "--config", defaultValue = "small", description = "tiny|small|medium|large|xl|FILE.json (default: ${DEFAULT-VALUE})")
        String config;
        @Option(names = "--batch", defaultValue = "8") int batch;
        @Option(names = "--seq", defaultValue = "64") int seq;
        @Option(names = "--warmup", defaultValue = "2") int warmup;
        @Option(names = "--reps", defaultValue = "5") int reps;
        @Option(names = "--seed", defaultValue = "1") long seed;

        @Override public void run() {
            GPT2Config c = GPT2Config.presetOrFile(config);
            if (batch < 1 || seq < 1 || reps < 1 || warmup < 0) throw new NshapException("--batch, --seq and --reps must be positive");
            if (seq > c.nPositions()) throw new NshapException("--seq " + seq + " exceeds the model's context of " + c.nPositions());
            System.err.printf(Locale.ROOT, "initialising a random GPT-2 (%s: %d layers, n_embd %d)...%n", config, c.nLayer(), c.nEmbd());
            var w = ModelInit.random(c, seed);
            System.err.println("measuring the Vector-API matmul peak...");
            CpuPeak.Result peak = CpuPeak.matmul(2, 5);
            System.err.println("timing the forward pass...");
            ForwardBench.Result r = ForwardBench.run(w, batch, seq, warmup, reps, seed);
            System.out.printf(Locale.ROOT, "CPU forward, GPT-2 %s (random init), batch %d x %d tokens, %d cores, %s%n", config, batch, seq,
                    Runtime.getRuntime().availableProcessors(), System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
            System.out.printf(Locale.ROOT, "  forward        median %.3f s  (p10 %.3f, p90 %.3f, n=%d)%n", r.time().median(), r.time().p10(), r.time().p90(), r.time().n());
            System.out.printf(Locale.ROOT, "  tokens/s       %.1f%n", r.tokensPerSecond());
            System.out.printf(Locale.ROOT, "  model GFLOP/s  %.1f  (%.1f%% of matmul peak)%n", r.modelGflops(), 100 * r.modelGflops() / peak.gflops());
            System.out.printf(Locale.ROOT, "  GEMM GFLOP/s   %.1f  inside the forward = %.1f%% of matmul peak%n", r.gemmGflops(), 100 * r.gemmGflops() / peak.gflops());
            System.out.printf(Locale.ROOT, "  matmul peak    %.1f GFLOP/s  (Vector API, %dx%dx%d, same run)%n", peak.gflops(), peak.n(), peak.k(), peak.m());
            System.out.printf(Locale.ROOT, "  time split     GEMM %.0f%%, attention %.0f%%, unembedding %.0f%%, other %.0f%%%n",
                    100 * r.gemmShare(), 100 * r.attentionShare(), 100 * r.unembedShare(),
                    Math.max(0, 100 * (1 - r.gemmShare() - r.attentionShare() - r.unembedShare())));
        }
    }
}
