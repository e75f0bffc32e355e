package dev.nshap.impair;

import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.Condition;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.Prompt;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.RefGpt2;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

class ImpairmentTest {
    static final int V = 41;
    final GPT2Config cfg = TestModels.tinyConfig(V);
    final GPT2Weights w = TestModels.random(cfg, 11, 0.4f);
    final CpuBackend be = new CpuBackend(w);

    /** Ten random prompts with two-token answers; foils for logit-diff. */
    TokenizedDataset data() {
        Random r = new Random(3);
        int n = 10;
        int[][] seqs = new int[n][], pos = new int[n][], ans = new int[n][];
        int[] foils = new int[n];
        List<Prompt> ps = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int len = 3 + r.nextInt(6);
            seqs[i] = TestModels.randomTokens(r, len + 1, V);
            pos[i] = new int[]{len - 1, len};
            ans[i] = new int[]{seqs[i][len], r.nextInt(V)};
            foils[i] = (ans[i][0] + 3) % V;
            ps.add(new Prompt("p" + i, "t", "x", "y", "z", null));
        }
        return TokenizedDataset.ofTokens(new Dataset("rand", Path.of("rand.jsonl"), ps), seqs, pos, ans, foils);
    }

    Target cluster() {
        Map<Integer, int[]> m = new TreeMap<>();
        m.put(0, new int[]{2, 5, 9, 30, 77});
        m.put(1, new int[]{0, 64, 127});
        return new Target("c", HookPoint.Kind.MLP_POST, m);
    }

    @Test void levelsParseInclusiveRangesWithoutFloatDust() {
        double[] l = Levels.parse("0:2:0.1");
        assertEquals(21, l.length);
        assertEquals(0.3, l[3]);
        assertEquals(2.0, l[20]);
        assertArrayEquals(new double[]{0, 0.25, 0.5}, Levels.parse("0:0.5:0.25"));
        assertArrayEquals(new double[]{1, 0.5, 0}, Levels.parse("1, 0.5,0"));
        assertArrayEquals(new double[]{0.7}, Levels.parse("0.7"));
        for (String bad : new String[]{"", "0:2", "0:2:0", "2:0:0.1", "a,b", "0:1:x", "1,1", "0:1:-0.1"})
            assertThrows(NshapException.class, () -> Levels.parse(bad), bad);
    }

    @Test void sitesParseAndRejectUnknownHooks() {
        assertEquals(new Site(HookPoint.Kind.MLP_POST, -1), Site.parse("blocks.*.mlp.hook_post"));
        assertEquals(new Site(HookPoint.Kind.RESID_MID, 3), Site.parse("blocks.3.hook_resid_mid"));
        assertEquals(new Site(HookPoint.Kind.MLP_OUT, -1), Site.parse("hook_mlp_out"));
        assertEquals(new Site(HookPoint.Kind.MLP_PRE, -1), Site.parse("blocks.*.mlp.hook_pre"));
        for (String bad : new String[]{"blocks.*.hook_attn_out", "blocks.x.mlp.hook_post", "mlp.hook_mid", ""})
            assertThrows(NshapException.class, () -> Site.parse(bad), bad);
        assertThrows(NshapException.class, () -> Site.parse("blocks.2.mlp.hook_post").checkFor(cfg));
    }

    @Test void neutralLevelsLeaveEveryMetricUnchangedAndStrongLevelsDoNot() {
        TokenizedDataset d = data();
        Evaluator ev = new Evaluator(be, d, 40);
        for (Metric metric : Metric.values())
            for (Mode mode : Mode.values()) {
                double neutral = mode.neutralLevel(), strong = mode == Mode.SCALE ? 0.0 : 3.0;
                Sweep.Values v = Sweep.run(ev, List.of(cluster(), Target.allUnits(Site.parse("blocks.*.hook_resid_mid"), cfg)),
                        mode, new double[]{neutral, strong}, 2, 5, metric, null, new long[1]);
                for (int t = 0; t < 2; t++) {
                    assertArrayEquals(v.clean(), v.impaired()[t][0], 1e-6, metric + " " + mode);
                    if (metric != Metric.ACCURACY) // the stronger impairment must move the metric somewhere
                        assertFalse(Arrays.equals(v.clean(), v.impaired()[t][1]), metric + " " + mode + " target " + t);
                }
            }
    }

    @Test void scaleZeroEqualsZeroAblationAndMatchesTheFloat64Reference() {
        TokenizedDataset d = data();
        Evaluator ev = new Evaluator(be, d, 30);
        Target c = cluster();
        Sweep.Values v = Sweep.run(ev, List.of(c), Mode.SCALE, new double[]{0.0, 0.5}, 1, 0, Metric.LOSS, null, new long[1]);
        List<Intervention> zero = new ArrayList<>();
        c.units().forEach((l, u) -> zero.add(Intervention.zero(HookPoint.mlpPost(l), u, null)));
        double[] ablated = ev.evaluate(List.of(Condition.of(zero, cfg.nLayer())), ev.allPrompts(), Metric.LOSS)[0];
        assertArrayEquals(ablated, v.impaired()[0][0], 1e-9);
        // and both agree with a float64 forward where the neurons are zeroed / halved by hand
        RefGpt2 ref = new RefGpt2(w);
        for (int p = 0; p < d.size(); p++)
            for (int li = 0; li < 2; li++) {
                List<Intervention> ivs = new ArrayList<>();
                float f = li == 0 ? 0f : 0.5f;
                c.units().forEach((l, u) -> ivs.add(Intervention.scale(HookPoint.mlpPost(l), u, null, f)));
                double[][] lp = ref.logSoftmax(d.sequences[p], ivs, 0);
                double nll = 0;
                for (int k = 0; k < d.answers[p].length; k++) nll -= lp[d.scorePositions[p][k]][d.answers[p][k]];
                assertEquals(nll / d.answers[p].length, v.impaired()[0][li][p], 2e-4, "prompt " + p + " level " + li);
            }
    }

    @Test void everyPromptGetsItsOwnNoiseWhateverTheBatchAndTheReferenceAgrees() {
        TokenizedDataset d = data();
        Target c = cluster();
        long seed = 42;
        double level = 1.3;
        for (Mode mode : new Mode[]{Mode.NOISE, Mode.NEGATIVE_NOISE}) {
            // tiny batches and one huge batch give the same per-prompt values
            Sweep.Values small = Sweep.run(new Evaluator(be, d, 8), List.of(c), mode, new double[]{level}, 1, seed, Metric.LOSS, null, new long[1]);
            Sweep.Values big = Sweep.run(new Evaluator(be, d, 10_000), List.of(c), mode, new double[]{level}, 1, seed, Metric.LOSS, null, new long[1]);
            assertArrayEquals(small.impaired()[0][0], big.impaired()[0][0], 1e-5);
            RefGpt2 ref = new RefGpt2(w);
            for (int p = 0; p < d.size(); p += 3) {
                List<Intervention> ivs = new ArrayList<>();
                for (var e : c.units().entrySet()) {
                    long s = Impairment.noiseSeed(seed, p, e.getKey());
                    ivs.add(mode == Mode.NOISE ? Intervention.noise(HookPoint.mlpPost(e.getKey()), e.getValue(), null, (float) level, s)
                            : Intervention.negativeNoise(HookPoint.mlpPost(e.getKey()), e.getValue(), null, (float) level, s));
                }
                double[][] lp = ref.logSoftmax(d.sequences[p], ivs, 0);
                double nll = 0;
                for (int k = 0; k < d.answers[p].length; k++) nll -= lp[d.scorePositions[p][k]][d.answers[p][k]];
                assertEquals(nll / d.answers[p].length, big.impaired()[0][0][p], 2e-4, mode + " prompt " + p);
            }
            // prompts really do get different noise: two identical prompts would otherwise score alike
            assertNotEquals(Impairment.noiseSeed(seed, 0, 0), Impairment.noiseSeed(seed, 1, 0));
            assertNotEquals(Impairment.noiseSeed(seed, 0, 0), Impairment.noiseSeed(seed, 0, 1));
        }
    }

    @Test void negativeNoiseIsNeverPositiveAndTouchesOnlyTheChosenUnits() {
        TokenizedDataset d = data();
        Target c = cluster();
        int width = cfg.nInner();
        for (Mode mode : new Mode[]{Mode.NEGATIVE_NOISE, Mode.NOISE}) {
            ForwardRequest clean = new ForwardRequest(), noisy = new ForwardRequest();
            int[] seqs = new int[d.size()], prompts = new int[d.size()];
            for (int p = 0; p < d.size(); p++) {
                clean.add(d.sequences[p], null, null);
                noisy.add(d.sequences[p], null, null);
                seqs[p] = p;
                prompts[p] = p;
            }
            noisy.interventions.addAll(new Impairment(c, mode).condition(2.0, 9).interventions(seqs, prompts));
            HookPoint h0 = HookPoint.mlpPost(0);
            clean.cache.add(h0);
            noisy.cache.add(h0);
            ForwardResult a = be.forward(clean), b = be.forward(noisy);
            int negatives = 0, positives = 0;
            boolean[] chosen = new boolean[width];
            for (int u : c.units().get(0)) chosen[u] = true;
            for (int p = 0; p < d.size(); p++)
                for (int i = 0; i < a.cache().get(h0)[p].length; i++) {
                    double diff = b.cache().get(h0)[p][i] - a.cache().get(h0)[p][i];
                    if (!chosen[i % width]) assertEquals(0.0, diff, 0.0);
                    if (diff < 0) negatives++;
                    if (diff > 0) positives++;
                }
            if (mode == Mode.NEGATIVE_NOISE) assertEquals(0, positives, "negative noise raised a unit");
            else assertTrue(positives > 0, "plain noise should raise some units");
            assertTrue(negatives > 0);
        }
    }

    @Test void theSameSeedGivesTheSameCurveAndAnotherSeedAnother() {
        TokenizedDataset d = data();
        Evaluator ev = new Evaluator(be, d, 25);
        double[] levels = Levels.parse("0:1.5:0.5");
        Sweep.Values a = Sweep.run(ev, List.of(cluster()), Mode.NOISE, levels, 3, 17, Metric.LOSS, null, new long[1]);
        Sweep.Values b = Sweep.run(new Evaluator(be, d, 60), List.of(cluster()), Mode.NOISE, levels, 3, 17, Metric.LOSS, null, new long[1]);
        Sweep.Values c = Sweep.run(ev, List.of(cluster()), Mode.NOISE, levels, 3, 18, Metric.LOSS, null, new long[1]);
        for (int l = 0; l < levels.length; l++) assertArrayEquals(a.impaired()[0][l], b.impaired()[0][l], 1e-5);
        assertFalse(Arrays.equals(a.impaired()[0][3], c.impaired()[0][3]));
    }

    @Test void harmAndAucFollowTheMetricsDirection() {
        // hand-made values: loss (lower is better) rising from 1 to 3 over levels 0, 1, 2 for one prompt
        Sweep.Values v = new Sweep.Values(Metric.LOSS, new double[]{2, 0, 1}, new double[]{1.0},
                new double[][][]{{{3.0}, {1.0}, {2.0}}});
        assertArrayEquals(new double[]{2.0}, v.harm(0, 0));
        // trapezoids over sorted levels 0,1,2 with harm 0,1,2: 0.5 + 1.5 = 2
        assertArrayEquals(new double[]{2.0}, v.harmAuc(0), 1e-12);
        Sweep.Values acc = new Sweep.Values(Metric.ACCURACY, new double[]{0}, new double[]{1.0, 1.0}, new double[][][]{{{0.0, 1.0}}});
        assertArrayEquals(new double[]{1.0, 0.0}, acc.harm(0, 0));
    }

    @Test void statsGiveTheStudentTInterval() {
        Stats s = Stats.of(new double[]{1, 2, 3, 4});
        assertEquals(2.5, s.mean(), 1e-12);
        assertEquals(Math.sqrt(5.0 / 3), s.sd(), 1e-12);
        // t_{3, 0.975} = 3.182446305284263
        assertEquals(2.5 - 3.182446305284263 * Math.sqrt(5.0 / 3) / 2, s.ciLow(), 1e-9);
        Stats flat = Stats.of(new double[]{7, 7, 7});
        assertEquals(7.0, flat.ciLow(), 0.0);
        assertEquals(7.0, flat.ciHigh(), 0.0);
    }
}
