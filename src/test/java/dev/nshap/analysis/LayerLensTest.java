package dev.nshap.analysis;

import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.inspect.NeuronCard;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.KeyNeuronModel;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class LayerLensTest {
    @Test void aLayerWithZeroedOutputWeightsHasNoEffectAndNoLens() {
        GPT2Config c = TestModels.tinyConfig(97);
        GPT2Weights w = TestModels.random(c, 8, 0.3f);
        GPT2Weights.Block b1 = w.blocks[1];
        Arrays.fill(b1.attnProjW, 0f); Arrays.fill(b1.attnProjB, 0f);
        Arrays.fill(b1.projW, 0f); Arrays.fill(b1.projB, 0f);
        TokenizedDataset d = SteerScanTest.prompts(6, 2);
        Evaluator ev = new Evaluator(new CpuBackend(w), d, 20);
        double[][][] v = LayerLens.skipEffects(ev, List.of(Metric.KL, Metric.LOSS));
        List<double[]> clean = ev.clean(List.of(Metric.LOSS));
        for (LayerLens.Skip s : LayerLens.Skip.values())
            for (int p = 0; p < d.size(); p++) {
                assertEquals(0, v[0][3 + s.ordinal()][p], 1e-7, "KL of skipping layer 1 " + s);
                assertEquals(clean.get(0)[p], v[1][3 + s.ordinal()][p], 1e-6, "loss of skipping layer 1 " + s);
                assertTrue(v[0][s.ordinal()][p] > 1e-5, "layer 0 does work: " + s);
            }
        // attention and MLP both matter in layer 0, and skipping both is not the sum of the two
        float[] diff = LayerLens.meanDifference(ev, 1, 2);
        for (float x : diff) assertEquals(0, x, 0f, "r2 - r1 of a layer that writes nothing");
        for (double x : LayerLens.lens(w, diff)) assertEquals(0, x, 0);
        float[] d01 = LayerLens.meanDifference(ev, 0, 1), d02 = LayerLens.meanDifference(ev, 0, 2);
        for (int k = 0; k < d01.length; k++) assertEquals(d01[k], d02[k], 1e-5f);
    }

    @Test void theLensOfTheKeyNeuronsLayerPromotesItsToken() {
        GPT2Weights w = KeyNeuronModel.weights();
        TokenizedDataset d = KeyNeuronModel.prompts("a", KeyNeuronModel.A, KeyNeuronModel.X, 5, 1);
        Evaluator ev = new Evaluator(new CpuBackend(w), d, 100);
        float[] diff = LayerLens.meanDifference(ev, 0, 1);
        // attention writes nothing and NA fires at gelu(3 x lnHot) writing 2 e_X: r1 - r0 is about 15.9 on X
        double want = 2 * KeyNeuronModel.gelu(3 * KeyNeuronModel.lnHot());
        assertEquals(want, diff[KeyNeuronModel.X], 0.5);
        var top = NeuronCard.top(LayerLens.lens(w, diff), 1, true, String::valueOf);
        assertEquals(KeyNeuronModel.X, top.get(0).token());
    }
}
