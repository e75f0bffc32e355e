package dev.nshap.impair;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.Condition;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.Prompt;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.io.Json;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

class MatchedRandomTest {
    static final int V = 41;
    final GPT2Config cfg = TestModels.tinyConfig(V);
    final GPT2Weights w = TestModels.random(cfg, 11, 0.4f);
    final CpuBackend be = new CpuBackend(w);

    static TokenizedDataset data(int n) {
        Random r = new Random(5);
        int[][] seqs = new int[n][], pos = new int[n][], ans = new int[n][];
        int[] foils = new int[n];
        List<Prompt> ps = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            seqs[i] = TestModels.randomTokens(r, 3 + i % 5, V);
            pos[i] = new int[]{seqs[i].length - 1};
            ans[i] = new int[]{r.nextInt(V)};
            foils[i] = -1;
            ps.add(new Prompt("p" + i, "t", "x", "y", null, null));
        }
        return TokenizedDataset.ofTokens(new Dataset("rand", Path.of("rand.jsonl"), ps), seqs, pos, ans, foils);
    }

    /** The activation at the hook, per position, under a condition applied to a single-prompt batch. */
    float[] at(HookPoint hp, int[] toks, int prompt, Condition c) {
        ForwardRequest q = new ForwardRequest().add(toks, null, null);
        if (c != null) q.interventions.addAll(c.interventions(new int[]{0}, new int[]{prompt}));
        q.cache.add(hp);
        return be.forward(q).cache().get(hp)[0];
    }

    @Test void theRandomPerturbationMovesEveryPositionExactlyAsFarAsTheRealOneInAnotherDirection() {
        TokenizedDataset d = data(4);
        HookPoint hp = HookPoint.mlpPost(1);
        Map<Integer, int[]> units = new TreeMap<>();
        units.put(1, new int[]{3, 8, 40, 99});
        Target t = new Target("c", HookPoint.Kind.MLP_POST, units);
        int H = cfg.nInner();
        int[] lengths = new int[d.size()];
        for (int p = 0; p < d.size(); p++) lengths[p] = d.sequences[p].length;
        Map<Integer, float[][]> clean = Map.of(1, new Evaluator(be, d, 100).collect(hp));
        for (Mode mode : Mode.values()) {
            double level = mode == Mode.SCALE ? 0.25 : 1.5;
            Condition real = new Impairment(t, mode).condition(level, 7);
            Condition rand = MatchedRandom.condition(cfg, t, mode, level, 7, 0, 3, clean, lengths);
            for (int p = 0; p < d.size(); p++) {
                float[] c0 = at(hp, d.sequences[p], p, null), a = at(hp, d.sequences[p], p, real), b = at(hp, d.sequences[p], p, rand);
                double outside = 0;
                for (int pos = 0; pos < lengths[p]; pos++) {
                    double nr = 0, nm = 0;
                    for (int u = 0; u < H; u++) {
                        int o = pos * H + u;
                        nr += (a[o] - c0[o]) * (a[o] - c0[o]);
                        nm += (b[o] - c0[o]) * (b[o] - c0[o]);
                        if (u != 3 && u != 8 && u != 40 && u != 99) outside += Math.abs(b[o] - c0[o]);
                    }
                    assertTrue(nr > 1e-6, mode + ": the real impairment moved position " + pos);
                    assertEquals(Math.sqrt(nr), Math.sqrt(nm), 1e-4 * Math.sqrt(nr) + 1e-5, mode + " prompt " + p + " position " + pos);
                }
                assertTrue(outside > 1e-3, mode + ": the random direction is not confined to the cluster's units");
            }
        }
    }

    @Test void theRatioIsRealOverRandomHarmWithABootstrapIntervalAndNullWhereRandomDoesNothing() {
        // loss: clean 1; real harm 2, 4, 6; matched random harm 1, 2, 3 -> ratio exactly 2 in every resample
        double[] clean = {1, 1, 1};
        Sweep.Values v = new Sweep.Values(Metric.LOSS, new double[]{0, 1}, clean, new double[][][]{{{1, 1, 1}, {3, 5, 7}}});
        double[][] matched = {{1, 1, 1}, {2, 3, 4}};
        ObjectNode curve = Results.curve(data(3), v);
        MatchedRandom.annotate(curve, v, matched, 4, 1);
        var p0 = curve.get("points").get(0);
        var p1 = curve.get("points").get(1);
        assertTrue(p0.get("ratio").isNull(), "level 0: no harm either way, no ratio");
        assertEquals(2.0, p1.get("ratio").asDouble(), 1e-12);
        assertEquals(2.0, p1.get("ratio_ci_low").asDouble(), 1e-12);
        assertEquals(2.0, p1.get("ratio_ci_high").asDouble(), 1e-12);
        assertEquals(2.0, p1.get("matched_harm").asDouble(), 1e-12);
        // unequal ratios per prompt: the interval brackets the ratio of means
        Sweep.Values u = new Sweep.Values(Metric.LOSS, new double[]{1}, clean, new double[][][]{{{2, 5, 10}}});
        ObjectNode cu = Results.curve(data(3), u);
        MatchedRandom.annotate(cu, u, new double[][]{{2, 2, 2}}, 4, 1);
        var q = cu.get("points").get(0);
        assertEquals((1 + 4 + 9) / 3.0, q.get("ratio").asDouble(), 1e-12);
        assertTrue(q.get("ratio_ci_low").asDouble() < q.get("ratio").asDouble() && q.get("ratio").asDouble() < q.get("ratio_ci_high").asDouble());
        assertTrue(q.get("ratio_ci_low").asDouble() >= 1 - 1e-12 && q.get("ratio_ci_high").asDouble() <= 9 + 1e-12);
    }

    @Test void evaluatedBaselineIsReproducibleAndDistinctFromTheRealImpairment() {
        TokenizedDataset d = data(6);
        Map<Integer, int[]> units = new TreeMap<>();
        units.put(0, new int[]{1, 2, 3});
        Target t = new Target("c", HookPoint.Kind.MLP_POST, units);
        double[] levels = {0, 2};
        List<double[][]> a = MatchedRandom.run(new Evaluator(be, d, 12), t, Mode.NOISE, levels, 2, 5, 3, 9, List.of(Metric.LOSS, Metric.KL));
        List<double[][]> b = MatchedRandom.run(new Evaluator(be, d, 1000), t, Mode.NOISE, levels, 2, 5, 3, 9, List.of(Metric.LOSS, Metric.KL));
        List<double[]> clean = new Evaluator(be, d, 1000).clean(List.of(Metric.LOSS));
        for (int p = 0; p < d.size(); p++) {
            assertEquals(clean.get(0)[p], a.get(0)[0][p], 1e-5, "level 0 is the clean model");
            assertEquals(0, a.get(1)[0][p], 1e-6, "and has no KL");
            assertEquals(a.get(0)[1][p], b.get(0)[1][p], 1e-5, "same seeds, same result, whatever the batching");
            assertTrue(a.get(1)[1][p] > 0, "a perturbation of norm ~2 sqrt(3) moves the distribution");
        }
    }
}
