package dev.nshap.impair;

import dev.nshap.backend.HookPoint;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Config;
import dev.nshap.testutil.KeyNeuronModel;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static dev.nshap.testutil.KeyNeuronModel.*;
import static org.junit.jupiter.api.Assertions.*;

/** Impairing the one neuron that carries a token hurts exactly the prompts answered by that token. */
class KeyNeuronSpecificityTest {
    final GPT2Config cfg = KeyNeuronModel.config();
    final CpuBackend be = new CpuBackend(KeyNeuronModel.weights());
    final TokenizedDataset dataA = KeyNeuronModel.prompts("a", A, X, 12, 1), dataB = KeyNeuronModel.prompts("b", B, Y, 12, 2);

    static Target one(String name, int neuron) {
        Map<Integer, int[]> m = new TreeMap<>();
        m.put(0, new int[]{neuron});
        return new Target(name, HookPoint.Kind.MLP_POST, m);
    }

    @Test void scalingTheKeyNeuronDownHurtsItsOwnTopicOnly() {
        double[] levels = Levels.parse("0:1:0.25");
        Sweep.Values a = Sweep.run(new Evaluator(be, dataA, 64), List.of(one("na", NA)), Mode.SCALE, levels, 1, 0, Metric.ACCURACY, null, new long[1]);
        Sweep.Values b = Sweep.run(new Evaluator(be, dataB, 64), List.of(one("na", NA)), Mode.SCALE, levels, 1, 0, Metric.ACCURACY, null, new long[1]);
        for (double x : a.clean()) assertEquals(1.0, x);
        for (double x : b.clean()) assertEquals(1.0, x);
        assertEquals(0.0, a.meanAt(0, 0));   // ablated: the A prompts lose X
        assertEquals(1.0, a.meanAt(0, 4));   // unchanged
        assertEquals(1.0, a.meanAt(0, 1));   // a quarter of 15.9 still beats A's 1
        for (int l = 0; l < levels.length; l++) assertEquals(1.0, b.meanAt(0, l), "B prompts never need NA");
        // loss: ablating NA costs the A prompts a lot and the B prompts next to nothing
        Sweep.Values la = Sweep.run(new Evaluator(be, dataA, 64), List.of(one("na", NA)), Mode.SCALE, new double[]{0}, 1, 0, Metric.LOSS, null, new long[1]);
        Sweep.Values lb = Sweep.run(new Evaluator(be, dataB, 64), List.of(one("na", NA)), Mode.SCALE, new double[]{0}, 1, 0, Metric.LOSS, null, new long[1]);
        assertTrue(Stats.of(la.harm(0, 0)).mean() > 1.0, "A prompts' loss rises by more than a nat");
        assertTrue(Math.abs(Stats.of(lb.harm(0, 0)).mean()) < 0.1, "B prompts' loss barely moves");
    }

    /** Rows: cluster NA (topic a), NB (topic b), a random neuron labelled topic a; columns: datasets a, b. */
    Specificity.Cell[][] matrix(Metric metric, Mode mode, double level, int baseline) {
        List<Target> reals = List.of(one("na", NA), one("nb", NB), one("random", 41));
        List<TokenizedDataset> data = List.of(dataA, dataB);
        Specificity.Cell[][] cells = new Specificity.Cell[3][2];
        for (int j = 0; j < 2; j++) {
            Evaluator ev = new Evaluator(be, data.get(j), 256);
            for (int i = 0; i < 3; i++) {
                List<Target> t = new ArrayList<>();
                t.add(reals.get(i));
                t.addAll(RandomClusters.sample(reals.get(i), cfg.nInner(), baseline, 100 + i));
                cells[i][j] = Specificity.cell(Sweep.run(ev, t, mode, new double[]{level}, 3, 5, metric, null, new long[1]), 0);
            }
        }
        return cells;
    }

    @Test void theSpecificityMatrixFindsBothKeyNeuronsAndNotARandomOne() {
        Specificity.Cell[][] acc = matrix(Metric.ACCURACY, Mode.SCALE, 0.0, 8);
        assertEquals(1.0, acc[0][0].effect(), 1e-12);
        assertEquals(0.0, acc[0][1].effect(), 1e-12);
        assertEquals(0.0, acc[1][0].effect(), 1e-12);
        assertEquals(1.0, acc[1][1].effect(), 1e-12);
        assertEquals(0.0, acc[2][0].effect(), 1e-12);
        assertEquals(0.0, acc[2][1].effect(), 1e-12);
        // random clusters for NA exclude NA, so none of them can touch the A prompts
        assertEquals(0.0, acc[0][0].baseMean(), 1e-12);
        assertTrue(Specificity.specific(acc[0], 0));
        assertTrue(Specificity.specific(acc[1], 1));
        assertFalse(Specificity.specific(acc[2], 0));
        assertFalse(Specificity.specific(acc[0], 1), "NA is not specific to topic b");

        Specificity.Cell[][] loss = matrix(Metric.LOSS, Mode.SCALE, 0.0, 8);
        assertTrue(loss[0][0].z() > 10, "NA's own-topic loss effect is far outside the random band: z=" + loss[0][0].z());
        assertTrue(loss[1][1].z() > 10, "z=" + loss[1][1].z());
        assertTrue(Math.abs(loss[2][0].z()) < 5, "a random neuron looks like the random baseline: z=" + loss[2][0].z());
        assertTrue(Specificity.specific(loss[0], 0));
        assertTrue(Specificity.specific(loss[1], 1));
        assertFalse(Specificity.specific(loss[2], 0));
    }

    @Test void negativeNoiseOnTheKeyNeuronAlsoSinglesItOut() {
        // a one-unit negative noise is (z - max z) = 0: nothing. Paired with a silent neuron (its c_proj row zeroed),
        // NA is pushed down whenever the partner's draw is the larger, which costs the A prompts their X once X's
        // coordinate falls below A's. For the B prompts it only lowers X; ln_f (weight 1, bias 0) keeps the order of
        // the coordinates, so Y stays the top-1 and their accuracy cannot move.
        var w = KeyNeuronModel.weights();
        java.util.Arrays.fill(w.blocks[0].projW, 41 * cfg.nEmbd(), 42 * cfg.nEmbd(), 0f);
        CpuBackend quiet = new CpuBackend(w);
        Map<Integer, int[]> m = new TreeMap<>();
        m.put(0, new int[]{NA, 41});
        Target pair = new Target("pair", HookPoint.Kind.MLP_POST, m);
        Sweep.Values a = Sweep.run(new Evaluator(quiet, dataA, 256), List.of(pair), Mode.NEGATIVE_NOISE, new double[]{0, 20}, 8, 3, Metric.ACCURACY, null, new long[1]);
        Sweep.Values b = Sweep.run(new Evaluator(quiet, dataB, 256), List.of(pair), Mode.NEGATIVE_NOISE, new double[]{0, 20}, 8, 3, Metric.ACCURACY, null, new long[1]);
        assertEquals(0.0, Stats.of(a.harm(0, 0)).mean(), 1e-9);
        Stats ha = Stats.of(a.harm(0, 1)), hb = Stats.of(b.harm(0, 1));
        assertEquals(0.0, hb.mean(), 0.0);
        assertEquals(0.0, hb.ciHigh(), 0.0);
        assertTrue(ha.ciLow() > 0.1, "the A prompts lose accuracy: " + ha);
        Sweep.Values single = Sweep.run(new Evaluator(quiet, dataA, 256), List.of(one("na", NA)), Mode.NEGATIVE_NOISE, new double[]{8}, 2, 3, Metric.LOSS, null, new long[1]);
        assertArrayEquals(single.clean(), single.impaired()[0][0], 1e-9);
    }
}
