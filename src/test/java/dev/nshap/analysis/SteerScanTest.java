package dev.nshap.analysis;

import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.Evaluator;
import dev.nshap.eval.Metric;
import dev.nshap.eval.Prompt;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.inspect.NeuronCard;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.KeyNeuronModel;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class SteerScanTest {
    static final int V = 97;
    final GPT2Config cfg = TestModels.tinyConfig(V);
    final GPT2Weights w = TestModels.random(cfg, 21, 0.3f);

    /** Random prompts of a few lengths, each with an answer and a foil. */
    static TokenizedDataset prompts(int n, long seed) {
        Random r = new Random(seed);
        int[][] seqs = new int[n][], pos = new int[n][], ans = new int[n][];
        int[] foils = new int[n];
        List<Prompt> ps = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            seqs[i] = TestModels.randomTokens(r, 3 + i % 4, V);
            pos[i] = new int[]{seqs[i].length - 1};
            ans[i] = new int[]{r.nextInt(V)};
            foils[i] = (ans[i][0] + 1 + r.nextInt(V - 1)) % V;
            ps.add(new Prompt("p" + i, "t", "x", "y", "z", null));
        }
        return TokenizedDataset.ofTokens(new Dataset("t", Path.of("t.jsonl"), ps), seqs, pos, ans, foils);
    }

    static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    /** logit(a) - logit(b) at each prompt's first answer position, straight from the backend's logits. */
    static double[] backendLogitDiff(CpuBackend b, TokenizedDataset d, List<Intervention> ivs) {
        double[] out = new double[d.size()];
        for (int p = 0; p < d.size(); p++) {
            ForwardRequest q = new ForwardRequest().add(d.sequences[p], d.scorePositions[p], d.answers[p]);
            for (Intervention iv : ivs) q.interventions.add(iv.withSequences(new int[]{0}));
            float[] lg = b.forward(q).logits()[0];
            out[p] = lg[d.answers[p][0]] - lg[d.foils[p]];
        }
        return out;
    }

    @Test void coefficientZeroEqualsTheCleanRunAndTheDecompositionSumsToTheLogitDifference() {
        CpuBackend b = new CpuBackend(w);
        TokenizedDataset d = prompts(7, 1);
        Random r = new Random(2);
        double[] coefs = {-3, 0, 2.5};
        int[] layers = {0, 1};
        float[][] vec = {gaussian(r, cfg.nEmbd()), gaussian(r, cfg.nEmbd())};
        List<Metric> ms = List.of(Metric.LOSS, Metric.ACCURACY, Metric.KL, Metric.LOGIT_DIFF);
        Evaluator ev = new Evaluator(b, d, 25); // several batches
        int[] dirA = new int[d.size()], dirB = new int[d.size()];
        for (int p = 0; p < d.size(); p++) { dirA[p] = d.answers[p][0]; dirB[p] = d.foils[p]; }
        SteerScan.Result res = SteerScan.run(ev, w, HookPoint.Kind.RESID_PRE, layers, vec, coefs, 0, ms, dirA, dirB);
        List<double[]> clean = new Evaluator(b, d, 1000).clean(List.of(Metric.LOSS, Metric.ACCURACY, Metric.LOGIT_DIFF));
        for (int li = 0; li < layers.length; li++) {
            int zero = SteerScan.cell(li, 1, coefs.length);
            for (int p = 0; p < d.size(); p++) {
                assertEquals(clean.get(0)[p], res.metrics()[0][zero][p], 1e-5, "loss");
                assertEquals(clean.get(1)[p], res.metrics()[1][zero][p], 0, "accuracy");
                assertEquals(0, res.metrics()[2][zero][p], 1e-6, "KL against the unsteered model");
                assertEquals(clean.get(2)[p], res.logitDiff(zero, p), 1e-4, "decomposition at coefficient 0");
                assertEquals(0, res.contrib()[zero][p][SteerScan.components(cfg).size() - 1], 1e-4, "nothing steered");
            }
            for (int j = 0; j < coefs.length; j++) {
                int cell = SteerScan.cell(li, j, coefs.length);
                double[] want = backendLogitDiff(b, d, List.of(Intervention.add(new HookPoint(layers[li], HookPoint.Kind.RESID_PRE),
                        null, null, vec[li], (float) coefs[j], 0)));
                for (int p = 0; p < d.size(); p++) {
                    assertEquals(want[p], res.logitDiff(cell, p), 1e-4, "contributions + bias = logit diff, cell " + cell);
                    assertEquals(want[p], res.metrics()[3][cell][p], 1e-4, "the evaluator's logit-diff metric agrees");
                    if (coefs[j] != 0) assertTrue(res.metrics()[2][cell][p] > 1e-4, "steering moved the distribution");
                }
            }
        }
        // the embeddings are layer-independent; layer 0's steering (at resid_pre) is upstream of every block
        int c0 = SteerScan.cell(0, 2, coefs.length), c1 = SteerScan.cell(1, 2, coefs.length);
        assertNotEquals(res.contrib()[c0][0][1], res.contrib()[c1][0][1], "L0.attn sees layer 0's vector, not layer 1's");
    }

    @Test void aVectorAlongOneNeuronsOutputRowMovesThatNeuronsPromotedTokens() {
        GPT2Weights kw = KeyNeuronModel.weights();
        GPT2Config kc = kw.config;
        CpuBackend b = new CpuBackend(kw);
        // prompts ending in B answer Y; neuron NA writes 2 e_X: its promoted token is X
        TokenizedDataset d = KeyNeuronModel.prompts("b", KeyNeuronModel.B, KeyNeuronModel.Y, 5, 3);
        float[] row = NeuronCard.direction(kw, Map.of(0, new int[]{KeyNeuronModel.NA}));
        int promoted = NeuronCard.top(NeuronCard.logitEffect(kw, row, true), 1, true, String::valueOf).get(0).token();
        assertEquals(KeyNeuronModel.X, promoted);
        double[] coefs = {0, 2, 4, 8, 16};
        int[] dirA = new int[d.size()], dirB = new int[d.size()];
        java.util.Arrays.fill(dirA, KeyNeuronModel.X);
        java.util.Arrays.fill(dirB, KeyNeuronModel.Y);
        Evaluator ev = new Evaluator(b, d, 1000);
        SteerScan.Result res = SteerScan.run(ev, kw, HookPoint.Kind.RESID_POST, new int[]{0}, new float[][]{row}, coefs, Intervention.LAST,
                List.of(Metric.ACCURACY), dirA, dirB);
        int steer = SteerScan.components(kc).size() - 1;
        for (int p = 0; p < d.size(); p++) {
            assertEquals(1.0, res.metrics()[0][0][p], "clean: answers Y");
            assertEquals(0.0, res.metrics()[0][4][p], "steered hard along NA's row: no longer Y");
            for (int j = 1; j < coefs.length; j++) {
                assertTrue(res.logitDiff(j, p) > res.logitDiff(j - 1, p), "X - Y rises with the coefficient");
                assertTrue(res.contrib()[j][p][steer] > res.contrib()[j - 1][p][steer], "and the rise is the steering's own");
            }
            ForwardRequest q = new ForwardRequest().add(d.sequences[p], d.scorePositions[p], null);
            q.interventions.add(Intervention.add(new HookPoint(0, HookPoint.Kind.RESID_POST), null, null, row, 16f, Intervention.LAST));
            ForwardResult fr = b.forward(q);
            assertEquals(KeyNeuronModel.X, fr.top1()[0][0], "the top prediction becomes the neuron's promoted token");
        }
        // the coefficient 0 cell is the clean model; the steer component there is exactly the nothing that was added
        for (int p = 0; p < d.size(); p++) assertEquals(0, res.contrib()[0][p][steer], 1e-5);
    }

    @Test void curvesClusterByShapeNotScale() {
        double[][] curves = {
                {0, 1, 2, 3, 4},        // rising
                {0, 10, 20, 30, 40},    // rising, 10x
                {5, 4, 3, 2, 1},        // falling
                {50, 40, 30, 20, 10},   // falling, 10x
                {0, 4, 0, 4, 0},        // zig-zag
                {1, 9, 1, 9, 1}};
        int[] cl = SteerScan.clusterByShape(curves, 3, 1);
        assertEquals(cl[0], cl[1]);
        assertEquals(cl[2], cl[3]);
        assertEquals(cl[4], cl[5]);
        assertNotEquals(cl[0], cl[2]);
        assertNotEquals(cl[0], cl[4]);
        assertNotEquals(cl[2], cl[4]);
        assertArrayEquals(new int[]{0, 0, 1, 1, 2, 2}, cl, "numbered by first appearance");
        assertArrayEquals(cl, SteerScan.clusterByShape(curves, 3, 1), "same seed, same labels");
        assertArrayEquals(new int[]{0, 0}, SteerScan.clusterByShape(new double[][]{{1, 1}, {2, 2}}, 5, 1), "k is capped at the curve count");
    }

    @Test void ablatedTextIsTheChangeFromRemovingEachEarlierToken() {
        // KeyNeuronModel: attention writes nothing and wpe = 0, so NA at the last position sees its own token only
        GPT2Weights kw = KeyNeuronModel.weights();
        CpuBackend kb = new CpuBackend(kw);
        int[] seq = {12, 13, 14, KeyNeuronModel.A};
        double[][] d = NeuronCard.ablateTokens(kb, Map.of(0, new int[]{KeyNeuronModel.NA}), List.of(seq), new int[]{3}, 100);
        assertEquals(KeyNeuronModel.gelu(3 * KeyNeuronModel.lnHot()), d[0][0], 1e-4, "NA fires at gelu(7.94) on A");
        for (int j = 1; j <= 3; j++) assertEquals(0, d[0][j], 1e-6, "no earlier token can reach it");
        // a random model, where attention mixes the tokens: each change equals a run of the shortened sequence
        CpuBackend b = new CpuBackend(w);
        Random r = new Random(9);
        List<int[]> seqs = List.of(TestModels.randomTokens(r, 6, V), TestModels.randomTokens(r, 4, V));
        int[] at = {5, 2};
        Map<Integer, int[]> members = Map.of(0, new int[]{3}, 1, new int[]{7, 9});
        double[][] got = NeuronCard.ablateTokens(b, members, seqs, at, 9); // several batches
        for (int i = 0; i < seqs.size(); i++) {
            double clean = activation(b, members, seqs.get(i), at[i]);
            assertEquals(clean, got[i][0], 1e-5);
            for (int j = 0; j < at[i]; j++) {
                int[] s = seqs.get(i), v = new int[s.length - 1];
                for (int k = 0, o = 0; k < s.length; k++) if (k != j) v[o++] = s[k];
                assertEquals(activation(b, members, v, at[i] - 1) - clean, got[i][1 + j], 1e-5, "sequence " + i + " without token " + j);
            }
            assertTrue(java.util.Arrays.stream(got[i], 1, got[i].length).anyMatch(x -> Math.abs(x) > 1e-4), "attention carries earlier tokens");
        }
    }

    static double activation(CpuBackend b, Map<Integer, int[]> members, int[] seq, int t) {
        ForwardRequest q = new ForwardRequest().add(seq, null, null);
        members.keySet().forEach(l -> q.cache.add(HookPoint.mlpPost(l)));
        ForwardResult r = b.forward(q);
        double s = 0;
        int H = b.config().nInner();
        for (var e : members.entrySet()) for (int n : e.getValue()) s += r.cache().get(HookPoint.mlpPost(e.getKey()))[0][t * H + n];
        return s;
    }
}
