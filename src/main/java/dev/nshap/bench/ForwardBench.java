package dev.nshap.bench;

import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.util.SplittableRandom;

/** Times the CPU forward pass on a batch of random token sequences, scored at their last position. */
public final class ForwardBench {
    private ForwardBench() {}

    public record Result(GPT2Config config, int batch, int seq, Stats time, double tokensPerSecond, double modelGflops,
                         double gemmGflops, double gemmShare, double attentionShare, double unembedShare) {}

    /** FLOPs of one forward: 24 C^2 per token per layer, attention 4 C per (query, key) pair, unembedding at scored rows. */
    public static double flops(GPT2Config c, int batch, int seq, int scoredPerSeq) {
        double C = c.nEmbd();
        double linear = 24.0 * C * C * c.nLayer() * batch * seq;
        double attention = 4.0 * C * c.nLayer() * batch * (seq * (seq + 1) / 2.0);
        double unembed = 2.0 * C * c.vocabSize() * batch * scoredPerSeq;
        return linear + attention + unembed;
    }

    public static Result run(GPT2Weights w, int batch, int seq, int warmup, int reps, long seed) {
        GPT2Config c = w.config;
        CpuBackend cpu = new CpuBackend(w);
        SplittableRandom r = new SplittableRandom(seed);
        ForwardRequest req = new ForwardRequest();
        for (int b = 0; b < batch; b++) {
            int[] t = new int[seq];
            for (int i = 0; i < seq; i++) t[i] = r.nextInt(c.vocabSize());
            req.addLast(t);
        }
        req.wantLogits = false;
        for (int i = 0; i < warmup; i++) cpu.forward(req);
        cpu.timings().reset();
        Stats st = Stats.time(0, reps, () -> cpu.forward(req));
        CpuBackend.Timings tm = cpu.timings();
        double sum = st.mean() * reps; // the stage timers cover every timed repetition
        double gemmGflops = tm.gemmFlop / (double) tm.gemmNanos;
        return new Result(c, batch, seq, st, batch * seq / st.median(), flops(c, batch, seq, 1) / st.median() / 1e9,
                gemmGflops, tm.gemmNanos / (sum * 1e9), tm.attentionNanos / (sum * 1e9), tm.unembedNanos / (sum * 1e9));
    }
}
