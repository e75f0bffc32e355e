package dev.nshap.bench;

import dev.nshap.NshapException;
import dev.nshap.backend.Backend;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.eval.Condition;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Config;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The workload of a Shapley run without the estimator: C coalitions, each a random keep-set over the MLP neurons
 * of the chosen layers (dropped neurons zeroed at every position), each valued on the same P prompts of T random
 * tokens with the loss of a random answer token at the last position. One coalition evaluation = one coalition
 * valued on all P prompts.
 */
public final class CoalitionBench {
    private CoalitionBench() {}

    public record Result(Stats time, double evaluationsPerSecond, double tokensPerSecond, double modelGflops,
                         long forwardPasses, double checksum) {}

    public static TokenizedDataset prompts(GPT2Config c, int prompts, int tokens, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[][] seqs = new int[prompts][], pos = new int[prompts][], ans = new int[prompts][];
        int[] foils = new int[prompts];
        for (int p = 0; p < prompts; p++) {
            seqs[p] = new int[tokens];
            for (int t = 0; t < tokens; t++) seqs[p][t] = r.nextInt(c.vocabSize());
            pos[p] = new int[]{tokens - 1};
            ans[p] = new int[]{r.nextInt(c.vocabSize())};
            foils[p] = -1;
        }
        return TokenizedDataset.ofTokens(null, seqs, pos, ans, foils);
    }

    /** Layers "all" or a comma list of indices. */
    public static int[] layers(GPT2Config c, String spec) {
        if (spec.equals("all")) return java.util.stream.IntStream.range(0, c.nLayer()).toArray();
        try {
            int[] l = java.util.Arrays.stream(spec.split(",")).map(String::strip).mapToInt(Integer::parseInt).toArray();
            for (int x : l) if (x < 0 || x >= c.nLayer()) throw new NshapException("--layers: layer " + x + " outside 0.." + (c.nLayer() - 1));
            if (l.length == 0) throw new NshapException("--layers: no layer given");
            return l;
        } catch (NumberFormatException e) {
            throw new NshapException("--layers: expected 'all' or a comma list of layer indices, got '" + spec + "'");
        }
    }

    public static List<Condition> coalitions(GPT2Config c, int count, int[] layers, double keep, long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0x5eed);
        int h = c.nInner();
        List<Condition> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            List<Intervention> ivs = new ArrayList<>(layers.length);
            for (int l : layers) {
                int[] dropped = new int[h];
                int n = 0;
                for (int u = 0; u < h; u++) if (r.nextDouble() >= keep) dropped[n++] = u;
                ivs.add(Intervention.zero(HookPoint.mlpPost(l), java.util.Arrays.copyOf(dropped, n), null));
            }
            out.add(Condition.of(ivs, c.nLayer()));
        }
        return out;
    }

    public static Result run(Backend backend, int coalitions, int prompts, int tokens, int[] layers, double keep,
                             int maxTokens, int warmup, int reps, long seed, ForwardBench.Timer timer) {
        GPT2Config c = backend.config();
        TokenizedDataset data = prompts(c, prompts, tokens, seed);
        List<Condition> conds = coalitions(c, coalitions, layers, keep, seed);
        Evaluator ev = new Evaluator(backend, data, maxTokens);
        int[] all = ev.allPrompts();
        double[] sum = new double[1];
        // The evaluator caches the clean prefix up to the first intervened layer (CUDA shares it on the device
        // instead): warm-up builds it once, as a Shapley run does, so the timed repetitions measure the steady state.
        Stats st = timer.time(warmup, reps, () -> {
            double[] m = ev.evaluateMean(conds, all, Metric.LOSS);
            for (double v : m) sum[0] += v;
        });
        int first = layers[0];
        for (int l : layers) first = Math.min(first, l);
        // FLOPs actually run: the layers from the first intervened one on, for every coalition x prompt sequence.
        GPT2Config tail = new GPT2Config(c.nLayer() - first, c.nHead(), c.nEmbd(), c.nPositions(), c.vocabSize(),
                c.layerNormEpsilon(), c.activationFunction());
        double flop = ForwardBench.flops(tail, coalitions * prompts, tokens, 1);
        return new Result(st, coalitions / st.median(), (double) coalitions * prompts * tokens / st.median(),
                flop / st.median() / 1e9, ev.forwardPasses(), sum[0]);
    }
}
