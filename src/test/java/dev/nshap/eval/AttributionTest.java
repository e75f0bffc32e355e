package dev.nshap.eval;

import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.NeuronId;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** atp / ig / loo against references computed here from plain masked forward passes. */
class AttributionTest {
    static final int V = 47;
    final GPT2Config cfg = TestModels.tinyConfig(V);
    final GPT2Weights w = TestModels.random(cfg, 11, 0.5f);

    TokenizedDataset data() { return TestModels.randomPromptSet("t", V); }

    NeuronGame game(String players, Metric m, NeuronGame.Ablation ab) {
        Evaluator ev = new Evaluator(new CpuBackend(w), data(), 37);   // several batches
        return new NeuronGame(ev, NeuronPlayers.parse(players, 1, cfg), m, ab, 0, Map.of());
    }

    /** The game's value (signed mean metric) with one neuron's activation multiplied by f, by a plain evaluation. */
    static double valueScaled(NeuronGame g, NeuronId n, float f) {
        Condition c = new Condition() {
            @Override public List<Intervention> interventions(int[] seqs, int[] prompts) {
                return List.of(Intervention.scale(HookPoint.mlpPost(n.layer()), new int[]{n.index()}, seqs, f));
            }
            @Override public int firstLayer() { return 0; }
        };
        double[] v = g.evaluator().evaluate(List.of(c), g.evaluator().allPrompts(), g.metric())[0];
        double s = 0;
        for (double x : v) s += x;
        return (g.metric().higherIsBetter ? 1 : -1) * s / v.length;
    }

    @Test void atpIsTheFiniteDifferenceDerivativeOfTheValueAlongTheAblation() {
        for (Metric m : new Metric[]{Metric.LOSS, Metric.LOGIT_DIFF}) {
            NeuronGame g = game("blocks.0.mlp.hook_post,blocks.1.mlp.hook_post", m, NeuronGame.Ablation.ZERO);
            double[] atp = Attribution.run(g, w, Attribution.Method.ATP, 0, null).values();
            double maxAbs = Arrays.stream(atp).map(Math::abs).max().orElseThrow();
            assertTrue(maxAbs > 1e-4, "attributions should not all vanish");
            float eps = 1e-2f;
            for (int j = 0; j < g.players(); j += 7) {
                NeuronId n = g.neuronPlayers().get(j).neurons()[0];
                // a(e) = a_clean + e (a_abl - a_clean) = (1 - e) a_clean; atp = -dv/de at 0
                double fd = -(valueScaled(g, n, 1 - eps) - valueScaled(g, n, 1 + eps)) / (2 * eps);
                assertEquals(fd, atp[j], 2e-3 * maxAbs + 1e-5, m + " " + n);
            }
        }
    }

    @Test void integratedGradientsWithManyStepsAreComplete() {
        for (String players : new String[]{"blocks.1.mlp.hook_post", "blocks.0.mlp.hook_post,blocks.1.mlp.hook_post"}) {
            NeuronGame g = game(players, Metric.LOSS, NeuronGame.Ablation.ZERO);
            Attribution.Result r = Attribution.run(g, w, Attribution.Method.IG, 64, null);
            double sum = Arrays.stream(r.values()).sum();
            // v(all) - v(none) from two plain evaluations, not from the game's own helpers
            Condition none = new Condition() {
                @Override public List<Intervention> interventions(int[] seqs, int[] prompts) {
                    List<Intervention> out = new ArrayList<>();
                    for (int l : g.neuronPlayers().layers()) {
                        int[] all = new int[cfg.nInner()];
                        for (int u = 0; u < all.length; u++) all[u] = u;
                        out.add(Intervention.zero(HookPoint.mlpPost(l), all, seqs));
                    }
                    return out;
                }
                @Override public int firstLayer() { return 0; }
            };
            Evaluator ev = g.evaluator();
            double vAll = -mean(ev.evaluate(List.of(Condition.clean(cfg.nLayer())), ev.allPrompts(), Metric.LOSS)[0]);
            double vNone = -mean(ev.evaluate(List.of(none), ev.allPrompts(), Metric.LOSS)[0]);
            double gap = vAll - vNone;
            assertTrue(Math.abs(gap) > 1e-3, "ablating everything should change the loss");
            assertEquals(gap, sum, 5e-3 * Math.abs(gap), players);
            assertEquals(gap, (double) r.notes().get("completeness_target"), 1e-9 + 1e-6 * Math.abs(gap));
            // and the gradient-free sum is not trivially equal: a single midpoint step is off
            double one = Arrays.stream(Attribution.run(g, w, Attribution.Method.IG, 1, null).values()).sum();
            assertNotEquals(gap, one, 5e-3 * Math.abs(gap));
        }
    }

    @Test void leaveOneOutEqualsSeparateMaskedRuns() {
        for (NeuronGame.Ablation ab : NeuronGame.Ablation.values()) {
            NeuronGame g = game("blocks.0.mlp.hook_post[0:12],blocks.1.mlp.hook_post[3],blocks.1.mlp.hook_post[30]", Metric.LOSS, ab);
            double[] loo = Attribution.run(g, w, Attribution.Method.LOO, 0, null).values();
            Evaluator ev = g.evaluator();
            double vAll = -mean(ev.evaluate(List.of(Condition.clean(cfg.nLayer())), ev.allPrompts(), Metric.LOSS)[0]);
            for (int j = 0; j < g.players(); j++) {
                NeuronId[] ns = g.neuronPlayers().get(j).neurons();
                Condition c = new Condition() {
                    @Override public List<Intervention> interventions(int[] seqs, int[] prompts) {
                        List<Intervention> out = new ArrayList<>();
                        for (NeuronId n : ns) {
                            HookPoint hp = HookPoint.mlpPost(n.layer());
                            int[] u = {n.index()};
                            out.add(ab == NeuronGame.Ablation.ZERO ? Intervention.zero(hp, u, seqs)
                                    : Intervention.replace(hp, u, seqs, ev.meanActivation(hp)));
                        }
                        return out;
                    }
                    @Override public int firstLayer() { return 0; }
                };
                double v = -mean(ev.evaluate(List.of(c), ev.allPrompts(), Metric.LOSS)[0]);
                assertEquals(vAll - v, loo[j], 1e-6, ab + " " + g.playerName(j));
            }
        }
    }

    /**
     * Where the value is linear in a player, atp is its leave-one-out effect. Scaling a last-layer neuron's output
     * row by s makes its effect on the residual O(s), so v is linear in it up to O(s^2): the gap between atp and
     * loo, relative to loo, must shrink in proportion to s (a wrong factor in atp would leave a constant gap).
     */
    @Test void atpEqualsLeaveOneOutWhereTheValueIsLinearInThePlayer() {
        int last = cfg.nLayer() - 1, C = cfg.nEmbd();
        int[] units = {3, 17, 40};
        double[] s = {0.4, 0.1, 0.025};
        double[][] rel = new double[s.length][units.length];
        for (int i = 0; i < s.length; i++) {
            GPT2Weights wi = TestModels.random(cfg, 11, 0.5f);
            for (int u : units) for (int k = 0; k < C; k++) wi.blocks[last].projW[u * C + k] *= (float) s[i];
            StringBuilder players = new StringBuilder();
            for (int u : units) players.append(players.length() == 0 ? "" : ",").append("blocks.").append(last).append(".mlp.hook_post[").append(u).append(']');
            Evaluator ev = new Evaluator(new CpuBackend(wi), data(), 37);
            NeuronGame g = new NeuronGame(ev, NeuronPlayers.parse(players.toString(), 1, cfg), Metric.LOSS, NeuronGame.Ablation.ZERO, 0, Map.of());
            double[] atp = Attribution.run(g, wi, Attribution.Method.ATP, 0, null).values();
            double[] loo = Attribution.run(g, wi, Attribution.Method.LOO, 0, null).values();
            for (int j = 0; j < units.length; j++) {
                assertTrue(Math.abs(loo[j]) > 1e-5 * s[i], "player " + j + " should matter at s = " + s[i]);
                rel[i][j] = Math.abs(atp[j] - loo[j]) / Math.abs(loo[j]);
            }
        }
        for (int j = 0; j < units.length; j++) {
            assertTrue(rel[0][j] > 1e-4, "at s = 0.4 the value should not be exactly linear: " + Arrays.toString(rel[0]));
            for (int i = 1; i < s.length; i++)
                assertTrue(rel[i][j] < 0.5 * rel[i - 1][j] + 1e-4, "atp/loo gap should shrink with s: " + Arrays.deepToString(rel));
            assertTrue(rel[s.length - 1][j] < 0.02, "atp should equal loo in the linear limit: " + Arrays.deepToString(rel));
        }
    }

    @Test void gradientMethodsRefuseAccuracyAndKl() {
        NeuronGame g = game("blocks.1.mlp.hook_post", Metric.ACCURACY, NeuronGame.Ablation.ZERO);
        var e = assertThrows(dev.nshap.NshapException.class, () -> Attribution.run(g, w, Attribution.Method.ATP, 0, null));
        assertTrue(e.getMessage().contains("loss or logit-diff"), e.getMessage());
        assertThrows(dev.nshap.NshapException.class, () -> Attribution.checkDifferentiable(Attribution.Method.IG, Metric.KL, NeuronGame.Ablation.ZERO));
        Attribution.checkDifferentiable(Attribution.Method.LOO, Metric.ACCURACY, NeuronGame.Ablation.ZERO);
    }

    static double mean(double[] v) {
        double s = 0;
        for (double x : v) s += x;
        return s / v.length;
    }
}
