package dev.nshap.inspect;

import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.KeyNeuronModel;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static dev.nshap.testutil.KeyNeuronModel.*;
import static org.junit.jupiter.api.Assertions.*;

class NeuronCardTest {
    static Map<Integer, int[]> of(int... neurons) {
        Map<Integer, int[]> m = new TreeMap<>();
        m.put(0, neurons);
        return m;
    }

    @Test void theKeyNeuronPromotesItsTokenWithAndWithoutTheFinalLayerNormScale() {
        GPT2Weights w = KeyNeuronModel.weights();
        int C = w.config.nEmbd();
        // NA writes 2 e_X; add 1.5 e_14 and -1 e_13. Through the one-hot unembedding the raw scores are exactly these;
        // with ln_f.weight[X] = 0.1 the LayerNorm-scaled score of X becomes 0.2 and token 14 takes the lead.
        w.blocks[0].projW[NA * C + 14] = 1.5f;
        w.blocks[0].projW[NA * C + 13] = -1f;
        w.lnfW[X] = 0.1f;
        float[] d = NeuronCard.direction(w, of(NA));
        double[] raw = NeuronCard.logitEffect(w, d, false), ln = NeuronCard.logitEffect(w, d, true);
        List<NeuronCard.TokenScore> up = NeuronCard.top(raw, 3, true, t -> "t" + t);
        assertEquals(X, up.get(0).token());
        assertEquals(2.0, up.get(0).score(), 1e-6);
        assertEquals("t" + X, up.get(0).text());
        assertEquals(14, up.get(1).token());
        assertEquals(13, NeuronCard.top(raw, 1, false, t -> "").get(0).token());
        assertEquals(-1.0, NeuronCard.top(raw, 1, false, t -> "").get(0).score(), 1e-6);
        assertEquals(14, NeuronCard.top(ln, 1, true, t -> "").get(0).token());
        assertEquals(0.2, ln[X], 1e-6);
        // a cluster's summed direction promotes both answer tokens
        float[] both = NeuronCard.direction(KeyNeuronModel.weights(), of(NA, NB));
        List<NeuronCard.TokenScore> top2 = NeuronCard.top(NeuronCard.logitEffect(KeyNeuronModel.weights(), both, false), 2, true, t -> "");
        assertEquals(X, top2.get(0).token());
        assertEquals(Y, top2.get(1).token());
    }

    @Test void activationsFireOnTheKeyTokenAtTheLastPosition() {
        CpuBackend be = new CpuBackend(KeyNeuronModel.weights());
        TokenizedDataset a = KeyNeuronModel.prompts("a", A, X, 6, 1), b = KeyNeuronModel.prompts("b", B, Y, 6, 2);
        double fire = gelu(3 * lnHot()), quiet = gelu(3 * -(1.0 / V) / Math.sqrt((1.0 / V) * (1 - 1.0 / V) + 1e-5));
        NeuronCard.DatasetStats sa = NeuronCard.activations(new Evaluator(be, a, 64), of(NA), 3);
        NeuronCard.DatasetStats sb = NeuronCard.activations(new Evaluator(be, b, 64), of(NA), 3);
        assertEquals(fire, sa.meanAtAnswer(), 1e-4);
        assertEquals(quiet, sb.meanAtAnswer(), 1e-4);
        // over all positions: the A token once per prompt, fillers (where NA reads nothing) elsewhere
        long total = 0;
        for (int[] s : a.sequences) total += s.length;
        assertEquals((a.size() * fire + (total - a.size()) * quiet) / total, sa.meanActivation(), 1e-4);
        assertEquals(3, sa.top().size());
        for (NeuronCard.Firing f : sa.top()) {
            assertEquals(A, f.token());
            assertEquals(a.sequences[f.prompt()].length - 1, f.position());
            assertEquals(fire, f.activation(), 1e-4);
        }
        // the cluster {NA, NB} sums activations: on an A token NA fires and NB is quiet
        NeuronCard.DatasetStats sab = NeuronCard.activations(new Evaluator(be, a, 64), of(NA, NB), 1);
        assertEquals(fire + quiet, sab.meanAtAnswer(), 1e-4);
    }
}
