package dev.nshap.bench;

import dev.nshap.backend.Backend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.model.GPT2Config;

import java.util.SplittableRandom;

/** Times the forward pass on a batch of random token sequences, scored at their last position. */
public final class ForwardBench {
    private ForwardBench() {}

    /** gemmGflops and the shares are NaN where the backend has no stage timers (CUDA). */
    public record Result(GPT2Config config, int batch, int seq, Stats time, double tokensPerSecond, double modelGflops,
                         double gemmGflops, double gemmShare, double attentionShare, double unembedShare) {}

    @FunctionalInterface
    public interface Timer { Stats time(int warmup, int reps, Stats.Body body); }

    /** FLOPs of one forward: 24 C^2 per token per layer, attention 4 C per (query, key) pair, unembedding at scored rows. */
    public static double flops(GPT2Config c, int batch, int seq, int scoredPerSeq) {
        double C = c.nEmbd();
        double linear = 24.0 * C * C * c.nLayer() * batch * seq;
        double attention = KernelBench.attentionFlops(c, batch, seq) * c.nLayer();
        double unembed = 2.0 * C * c.vocabSize() * batch * scoredPerSeq;
        return linear + attention + unembed;
    }

    public static ForwardRequest randomBatch(GPT2Config c, int batch, int seq, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        ForwardRequest req = new ForwardRequest();
        for (int b = 0; b < batch; b++) {
            int[] t = new int[seq];
            for (int i = 0; i < seq; i++) t[i] = r.nextInt(c.vocabSize());
            req.addLast(t);
        }
        req.wantLogits = false;
        return req;
    }

    public static Result run(Backend backend, int batch, int seq, int warmup, int reps, long seed, Timer timer) {
        GPT2Config c = backend.config();
        ForwardRequest req = randomBatch(c, batch, seq, seed);
        for (int i = 0; i < warmup; i++) backend.forward(req);
        CpuBackend cpu = backend instanceof CpuBackend cb ? cb : null;
        if (cpu != null) cpu.timings().reset();
        Stats st = timer.time(0, reps, () -> backend.forward(req));
        double gemmGflops = Double.NaN, gemmShare = Double.NaN, attShare = Double.NaN, unShare = Double.NaN;
        if (cpu != null) {
            CpuBackend.Timings tm = cpu.timings();
            double sum = st.mean() * reps; // the stage timers cover every timed repetition
            gemmGflops = tm.gemmFlop / (double) tm.gemmNanos;
            gemmShare = tm.gemmNanos / (sum * 1e9);
            attShare = tm.attentionNanos / (sum * 1e9);
            unShare = tm.unembedNanos / (sum * 1e9);
        }
        return new Result(c, batch, seq, st, batch * seq / st.median(), flops(c, batch, seq, 1) / st.median() / 1e9,
                gemmGflops, gemmShare, attShare, unShare);
    }
}
