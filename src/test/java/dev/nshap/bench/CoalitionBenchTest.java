package dev.nshap.bench;

import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.Condition;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.RefGpt2;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class CoalitionBenchTest {
    final GPT2Config cfg = TestModels.tinyConfig(97);
    final GPT2Weights w = TestModels.random(cfg, 5, 0.3f);

    static int dropped(Condition c) {
        int n = 0;
        for (Intervention iv : c.interventions(new int[]{0}, new int[]{0})) n += iv.units().length;
        return n;
    }

    @Test void keepProbabilityControlsTheDroppedNeurons() {
        int[] layers = CoalitionBench.layers(cfg, "all");
        assertArrayEquals(new int[]{0, 1}, layers);
        int h = cfg.nInner();
        for (Condition c : CoalitionBench.coalitions(cfg, 4, layers, 1.0, 1)) assertEquals(0, dropped(c));
        for (Condition c : CoalitionBench.coalitions(cfg, 4, layers, 0.0, 1)) assertEquals(2 * h, dropped(c));
        int total = 0;
        for (Condition c : CoalitionBench.coalitions(cfg, 50, layers, 0.5, 1)) total += dropped(c);
        // 50 x 256 Bernoulli(0.5) draws: mean 6400, sd 80; 6 sd either way.
        assertEquals(6400, total, 480);
        assertEquals(1, CoalitionBench.coalitions(cfg, 1, new int[]{1}, 0.5, 1).get(0).firstLayer());
    }

    @Test void badLayerListsAreRefused() {
        assertThrows(dev.nshap.NshapException.class, () -> CoalitionBench.layers(cfg, "2"));
        assertThrows(dev.nshap.NshapException.class, () -> CoalitionBench.layers(cfg, "x"));
    }

    /** The benchmark's workload is what it claims: the mean loss per coalition equals float64 masked runs. */
    @Test void evaluatesEachCoalitionOnEveryPromptAsMaskedFloat64Runs() {
        int nc = 3, np = 4, t = 6;
        long seed = 11;
        CoalitionBench.Result r = CoalitionBench.run(new CpuBackend(w), nc, np, t, new int[]{0, 1}, 0.5, 10, 0, 1, seed, Stats::time);
        TokenizedDataset data = CoalitionBench.prompts(cfg, np, t, seed);
        List<Condition> conds = CoalitionBench.coalitions(cfg, nc, new int[]{0, 1}, 0.5, seed);
        RefGpt2 ref = new RefGpt2(w);
        double want = 0;
        for (Condition c : conds) {
            double mean = 0;
            for (int p = 0; p < np; p++) {
                List<Intervention> ivs = c.interventions(new int[]{0}, new int[]{p});
                double[][] lp = ref.logSoftmax(data.sequences[p], ivs, 0);
                mean -= lp[t - 1][data.answers[p][0]] / np;
            }
            want += mean;
        }
        assertEquals(want, r.checksum(), 1e-4 * Math.abs(want));
        // 12 sequences of 6 tokens in batches of at most 10 tokens: one sequence per forward pass.
        assertEquals(12, r.forwardPasses());
        assertEquals(nc / r.time().median(), r.evaluationsPerSecond(), 1e-9 * r.evaluationsPerSecond());
        assertEquals(nc * np * t / r.time().median(), r.tokensPerSecond(), 1e-9 * r.tokensPerSecond());
        assertEquals(HookPoint.mlpPost(0), conds.get(0).interventions(new int[]{0}, new int[]{0}).get(0).hook());
    }
}
