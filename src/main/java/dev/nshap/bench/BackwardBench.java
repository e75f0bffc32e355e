package dev.nshap.bench;

import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.backend.cpu.CpuGradients;
import dev.nshap.backend.cpu.Objective;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Times the CPU backward pass next to the forward of the same batch, in one run:
 * lmLoss (every position scored, weight gradients) against a forward scoring every position, and an
 * attribution-style backward (answer NLL at the last position, d/d mlp.hook_post of every layer, no weight
 * gradients) against a forward scoring the last position.
 */
public final class BackwardBench {
    private BackwardBench() {}

    public record Result(Stats lmLoss, Stats forwardAll, Stats atp, Stats forwardLast, long lmLossBytes, long atpBytes,
                         double[] lmLossSplit) {}

    public static Result run(GPT2Weights w, int batch, int seq, int warmup, int reps, long seed) {
        GPT2Config c = w.config;
        SplittableRandom r = new SplittableRandom(seed);
        List<int[]> seqs = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
            int[] t = new int[seq];
            for (int i = 0; i < seq; i++) t[i] = r.nextInt(c.vocabSize());
            seqs.add(t);
        }
        CpuGradients grad = new CpuGradients(w);
        CpuBackend fwd = new CpuBackend(w);
        GPT2Weights g = new GPT2Weights(c, w.tied());

        ForwardRequest all = new ForwardRequest(), last = new ForwardRequest();
        for (int[] s : seqs) {
            int[] pos = new int[seq - 1], tg = new int[seq - 1];
            for (int t = 0; t + 1 < seq; t++) { pos[t] = t; tg[t] = s[t + 1]; }
            all.add(s, pos, tg);
            last.add(s, new int[]{seq - 1}, new int[]{s[0]});
        }
        all.wantLogits = false;
        last.wantLogits = false;
        Set<HookPoint> post = new LinkedHashSet<>();
        for (int l = 0; l < c.nLayer(); l++) post.add(HookPoint.mlpPost(l));

        Stats lm = Stats.time(warmup, reps, () -> grad.lmLoss(seqs, g));
        long lmBytes = grad.lastActivationBytes();
        // The split of the last timed lmLoss call.
        grad.timings().reset();
        grad.lmLoss(seqs, g);
        CpuGradients.Timings tm = grad.timings();
        double[] split = {tm.forwardNanos, tm.logitsNanos, tm.softmaxNanos, tm.headDxNanos, tm.headDwNanos, tm.backwardNanos, tm.attentionBackNanos};
        Stats fAll = Stats.time(warmup, reps, () -> fwd.forward(all));
        Stats atp = Stats.time(warmup, reps, () -> grad.backward(last, Objective.answerNll(), post, null));
        long atpBytes = grad.lastActivationBytes();
        Stats fLast = Stats.time(warmup, reps, () -> fwd.forward(last));
        return new Result(lm, fAll, atp, fLast, lmBytes, atpBytes, split);
    }
}
