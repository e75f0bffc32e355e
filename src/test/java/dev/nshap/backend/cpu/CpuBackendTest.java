package dev.nshap.backend.cpu;

import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.RefGpt2;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

class CpuBackendTest {

    /** The GEMM these tests run on; {@link CpuBackendOpenBlasTest} runs every test again on OpenBLAS. */
    dev.nshap.backend.cpu.Gemm.Impl gemm() { return dev.nshap.backend.cpu.Gemm.Impl.JAVA; }

    dev.nshap.backend.cpu.CpuBackend backend(dev.nshap.model.GPT2Weights weights) {
        return new dev.nshap.backend.cpu.CpuBackend(weights, gemm());
    }
    static final int V = 97;
    final GPT2Config cfg = TestModels.tinyConfig(V);
    final GPT2Weights w = TestModels.random(cfg, 11, 0.3f);
    final CpuBackend cpu = backend(w);
    final Random rnd = new Random(3);

    static int[] all(int n) { return IntStream.range(0, n).toArray(); }

    /** Log-softmax at every position of every sequence, from the backend. */
    static double[][][] logSoftmax(CpuBackend b, List<int[]> seqs, List<Intervention> ivs) {
        ForwardRequest req = new ForwardRequest();
        for (int[] s : seqs) req.add(s, all(s.length), null);
        if (ivs != null) req.interventions.addAll(ivs);
        ForwardResult res = b.forward(req);
        int v = b.config().vocabSize();
        double[][][] out = new double[seqs.size()][][];
        for (int s = 0; s < seqs.size(); s++) {
            int T = seqs.get(s).length;
            out[s] = new double[T][v];
            for (int t = 0; t < T; t++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int k = 0; k < v; k++) max = Math.max(max, res.logits()[s][t * v + k]);
                double sum = 0;
                for (int k = 0; k < v; k++) sum += Math.exp(res.logits()[s][t * v + k] - max);
                for (int k = 0; k < v; k++) out[s][t][k] = res.logits()[s][t * v + k] - max - Math.log(sum);
            }
        }
        return out;
    }

    static double maxDiff(double[][] a, double[][] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) for (int j = 0; j < a[i].length; j++) m = Math.max(m, Math.abs(a[i][j] - b[i][j]));
        return m;
    }

    List<int[]> batch(int... lengths) {
        List<int[]> l = new ArrayList<>();
        for (int n : lengths) l.add(TestModels.randomTokens(rnd, n, V));
        return l;
    }

    @Test void matchesFloat64ReferenceOnBatchOfDifferentLengths() {
        List<int[]> seqs = batch(1, 7, 32, 13);
        double[][][] got = logSoftmax(cpu, seqs, null);
        RefGpt2 ref = new RefGpt2(w);
        for (int s = 0; s < seqs.size(); s++) {
            double d = maxDiff(got[s], ref.logSoftmax(seqs.get(s), null, s));
            assertTrue(d < 1e-4, "sequence " + s + ": max |log-softmax diff| = " + d);
        }
    }

    @Test void exactGeluActivationMatchesReference() {
        GPT2Config erfCfg = new GPT2Config(2, 4, 32, 32, V, 1e-5, "gelu");
        GPT2Weights we = TestModels.random(erfCfg, 11, 0.3f);
        List<int[]> seqs = batch(9);
        double[][][] got = logSoftmax(backend(we), seqs, null);
        assertTrue(maxDiff(got[0], new RefGpt2(we).logSoftmax(seqs.get(0), null, 0)) < 1e-4);
        // and it is a different function from gelu_new on the same weights
        GPT2Weights wt = TestModels.random(cfg, 11, 0.3f);
        assertTrue(maxDiff(got[0], logSoftmax(backend(wt), seqs, null)[0]) > 1e-5);
    }

    @Test void aUnitListedTwiceIsRefused() {
        NshapException e = assertThrows(NshapException.class, () -> Intervention.scale(HookPoint.mlpPost(0), new int[]{3, 5, 3}, null, 2f));
        assertTrue(e.getMessage().contains("unit 3 twice"), e.getMessage());
    }

    @Test void everyInterventionMatchesReferenceSemantics() {
        List<int[]> seqs = batch(9, 12);
        int C = cfg.nEmbd(), H = cfg.nInner();
        float[] mean = new float[H];
        for (int i = 0; i < H; i++) mean[i] = (float) rnd.nextGaussian();
        List<Intervention> ivs = List.of(
                Intervention.zero(new HookPoint(0, HookPoint.Kind.RESID_PRE), new int[]{1, 5}, new int[]{1}),
                Intervention.scale(new HookPoint(0, HookPoint.Kind.ATTN_OUT), null, null, 0.5f),
                Intervention.noise(new HookPoint(0, HookPoint.Kind.RESID_MID), new int[]{0, 3, 30}, new int[]{0}, 0.7f, 42),
                Intervention.negativeNoise(new HookPoint(1, HookPoint.Kind.MLP_PRE), null, new int[]{1}, 0.4f, 9),
                Intervention.replace(HookPoint.mlpPost(1), new int[]{2, 100, 127}, null, mean),
                Intervention.zero(HookPoint.mlpPost(0), new int[]{4, 8, 15, 16, 23, 42}, new int[]{0}),
                Intervention.scale(new HookPoint(1, HookPoint.Kind.MLP_OUT), new int[]{7}, new int[]{1}, -2f),
                Intervention.noise(new HookPoint(1, HookPoint.Kind.RESID_POST), null, null, 0.2f, 5));
        double[][][] got = logSoftmax(cpu, seqs, ivs);
        RefGpt2 ref = new RefGpt2(w);
        for (int s = 0; s < seqs.size(); s++) {
            double d = maxDiff(got[s], ref.logSoftmax(seqs.get(s), ivs, s));
            assertTrue(d < 1e-4, "sequence " + s + ": " + d);
        }
        // and the interventions did something: compare against the clean run
        double[][][] clean = logSoftmax(cpu, seqs, null);
        assertTrue(maxDiff(clean[0], got[0]) > 1e-2);
    }

    @Test void addInEveryPositionModeMatchesReference() {
        List<int[]> seqs = batch(9, 12, 5);
        int C = cfg.nEmbd(), H = cfg.nInner();
        float[] dirC = new float[C], dirH = new float[H];
        for (int i = 0; i < C; i++) dirC[i] = (float) rnd.nextGaussian();
        for (int i = 0; i < H; i++) dirH[i] = (float) rnd.nextGaussian();
        List<Intervention> ivs = List.of(
                Intervention.add(new HookPoint(0, HookPoint.Kind.RESID_PRE), null, new int[]{0, 2}, dirC, 1.5f, 0),
                Intervention.add(new HookPoint(1, HookPoint.Kind.RESID_MID), new int[]{3, 4, 30}, new int[]{1}, dirC, -2f, 4),
                Intervention.add(HookPoint.mlpPost(0), null, null, dirH, 0.7f, Intervention.LAST),
                Intervention.add(new HookPoint(1, HookPoint.Kind.RESID_POST), null, new int[]{2}, dirC, 3f, 7), // past its end
                Intervention.add(new HookPoint(1, HookPoint.Kind.MLP_OUT), null, new int[]{0, 2}, dirC, -1f, Intervention.only(3)),
                Intervention.add(new HookPoint(1, HookPoint.Kind.MLP_OUT), null, new int[]{0}, dirC, 2f, Intervention.only(8)));
        double[][][] got = logSoftmax(cpu, seqs, ivs);
        RefGpt2 ref = new RefGpt2(w);
        for (int s = 0; s < seqs.size(); s++) {
            double d = maxDiff(got[s], ref.logSoftmax(seqs.get(s), ivs, s));
            assertTrue(d < 1e-4, "sequence " + s + ": " + d);
        }
        // positions before the first edited one are untouched (causal), later ones are not
        double[][][] clean = logSoftmax(cpu, seqs, null);
        double[][] before1 = java.util.Arrays.copyOf(clean[1], 4), got1 = java.util.Arrays.copyOf(got[1], 4);
        // sequence 1 has the last-position ADD only at t = 11 and the from-4 ADD: t < 4 equals the clean run
        assertTrue(maxDiff(before1, got1) < 1e-5);
        assertTrue(maxDiff(clean[1], got[1]) > 1e-2);
        // coefficient 0 is the identity
        List<Intervention> zero = List.of(Intervention.add(HookPoint.mlpPost(1), null, null, dirH, 0f, 0));
        assertTrue(maxDiff(clean[0], logSoftmax(cpu, seqs, zero)[0]) == 0);
        assertThrows(NshapException.class, () -> new Intervention(HookPoint.mlpPost(0), Intervention.Op.SCALE, null, null, null, 2f, 0L, 3));
        ForwardRequest bad = new ForwardRequest().addLast(new int[]{1, 2});
        bad.interventions.add(Intervention.add(HookPoint.mlpPost(0), null, null, dirC, 1f, 0));
        NshapException e = assertThrows(NshapException.class, () -> cpu.forward(bad));
        assertTrue(e.getMessage().contains("added vector"), e.getMessage());
    }

    @Test void changingATokenChangesNoEarlierLogit() {
        int[] a = TestModels.randomTokens(rnd, 20, V);
        int[] b = a.clone();
        int t = 11;
        b[t] = (a[t] + 1) % V;
        double[][][] out = logSoftmax(cpu, List.of(a, b), null);
        for (int p = 0; p < t; p++) assertArrayEquals(out[0][p], out[1][p], 0.0, "position " + p);
        assertTrue(maxDiff(new double[][]{out[0][t]}, new double[][]{out[1][t]}) > 1e-6, "position t itself must change");
    }

    @Test void identitiesLeaveLogitsUnchanged() {
        List<int[]> seqs = batch(10, 6);
        double[][][] clean = logSoftmax(cpu, seqs, null);
        HookPoint hp = HookPoint.mlpPost(0);
        List<List<Intervention>> identities = List.of(
                List.of(Intervention.zero(hp, new int[0], null)),                 // an all-keep mask: nothing ablated
                List.of(Intervention.scale(hp, null, null, 1f)),
                List.of(Intervention.noise(hp, null, null, 0f, 123)),
                List.of(Intervention.negativeNoise(hp, null, null, 0f, 123)));
        for (List<Intervention> ivs : identities) {
            double[][][] got = logSoftmax(cpu, seqs, ivs);
            for (int s = 0; s < seqs.size(); s++) assertEquals(0.0, maxDiff(clean[s], got[s]), 0.0, ivs.toString());
        }
    }

    @Test void zeroAblatingANeuronEqualsDeletingItsOutputRow() {
        int layer = 1, neuron = 37, C = cfg.nEmbd();
        GPT2Weights edited = TestModels.random(cfg, 11, 0.3f);
        for (int k = 0; k < C; k++) edited.blocks[layer].projW[neuron * C + k] = 0f;
        List<int[]> seqs = batch(15);
        double[][][] viaIntervention = logSoftmax(cpu, seqs, List.of(Intervention.zero(HookPoint.mlpPost(layer), new int[]{neuron}, null)));
        double[][][] viaWeights = logSoftmax(backend(edited), seqs, null);
        assertTrue(maxDiff(viaIntervention[0], viaWeights[0]) < 1e-5);
        assertTrue(maxDiff(viaIntervention[0], logSoftmax(cpu, seqs, null)[0]) > 1e-4, "the neuron must matter");
    }

    @Test void oneBatchWithPerSequenceMasksEqualsSeparateRuns() {
        int[] prompt = TestModels.randomTokens(rnd, 14, V);
        HookPoint hp = HookPoint.mlpPost(0);
        int[][] ablated = {{1, 2, 3}, {}, {60, 61, 99, 127}, {0}};
        ForwardRequest req = new ForwardRequest();
        for (int i = 0; i < ablated.length; i++) {
            req.addLast(prompt);
            req.interventions.add(Intervention.zero(hp, ablated[i], new int[]{i}));
            req.interventions.add(Intervention.noise(HookPoint.mlpPost(1), ablated[i], new int[]{i}, 0.5f, 77));
        }
        ForwardResult batched = cpu.forward(req);
        for (int i = 0; i < ablated.length; i++) {
            ForwardRequest one = new ForwardRequest().addLast(prompt);
            one.interventions.add(Intervention.zero(hp, ablated[i], null));
            one.interventions.add(Intervention.noise(HookPoint.mlpPost(1), ablated[i], null, 0.5f, 77));
            float[] sep = cpu.forward(one).logits()[0];
            assertArrayEquals(sep, batched.logits()[i], 1e-5f, "coalition " + i);
        }
        assertFalse(java.util.Arrays.equals(batched.logits()[0], batched.logits()[1]));
    }

    @Test void prefixReuseFromCachedResidualEqualsFullRun() {
        List<int[]> seqs = batch(8, 11);
        HookPoint start = new HookPoint(1, HookPoint.Kind.RESID_PRE);
        ForwardRequest full = new ForwardRequest();
        for (int[] s : seqs) full.addLast(s);
        full.cache.add(start);
        full.interventions.add(Intervention.zero(HookPoint.mlpPost(1), new int[]{3, 9}, new int[]{1}));
        ForwardResult a = cpu.forward(full);
        ForwardRequest resumed = new ForwardRequest();
        for (int[] s : seqs) resumed.addLast(s);
        resumed.startLayer = 1;
        resumed.startResidual = List.of(a.cache().get(start));
        resumed.interventions.addAll(full.interventions);
        ForwardResult b = cpu.forward(resumed);
        for (int s = 0; s < seqs.size(); s++) assertArrayEquals(a.logits()[s], b.logits()[s], 0f);
    }

    @Test void targetSummariesAgreeWithLogits() {
        int[] toks = TestModels.randomTokens(rnd, 10, V);
        ForwardRequest req = new ForwardRequest().add(toks, new int[]{3, 9}, new int[]{5, 40});
        ForwardResult res = cpu.forward(req);
        double[][] ref = new RefGpt2(w).logSoftmax(toks, null, 0);
        assertEquals(ref[3][5], res.targetLogProb()[0][0], 1e-4);
        assertEquals(ref[9][40], res.targetLogProb()[0][1], 1e-4);
        int best = 0;
        for (int v = 1; v < V; v++) if (ref[9][v] > ref[9][best]) best = v;
        assertEquals(best, res.top1()[0][1]);
    }

    /**
     * The last layer runs its post-attention half on the scored rows only. With interventions at every hook of
     * that layer, some at unscored positions and some seeded by position, scoring a few positions gives the same
     * bits as scoring every position (where nothing is trimmed), and the float64 reference's values.
     */
    @Test void scoringSomePositionsGivesTheBitsOfScoringEveryPosition() {
        List<int[]> seqs = batch(9, 12, 5);
        int last = cfg.nLayer() - 1, C = cfg.nEmbd();
        float[] dir = new float[C];
        for (int i = 0; i < C; i++) dir[i] = (float) rnd.nextGaussian();
        List<Intervention> ivs = List.of(
                Intervention.zero(HookPoint.mlpPost(0), new int[]{1, 9}, null),
                Intervention.scale(new HookPoint(last, HookPoint.Kind.ATTN_OUT), null, new int[]{0}, 0.5f),
                Intervention.noise(new HookPoint(last, HookPoint.Kind.RESID_MID), new int[]{0, 3, 30}, null, 0.7f, 42),
                Intervention.negativeNoise(new HookPoint(last, HookPoint.Kind.MLP_PRE), null, new int[]{1, 2}, 0.4f, 9),
                Intervention.zero(HookPoint.mlpPost(last), new int[]{4, 8, 15, 16, 23, 42}, null),
                Intervention.add(new HookPoint(last, HookPoint.Kind.MLP_OUT), null, null, dir, 1.5f, 4),
                Intervention.noise(new HookPoint(last, HookPoint.Kind.RESID_POST), null, new int[]{2}, 0.2f, 5));
        int[][] pos = {{8, 3}, {11}, {0, 4, 2}};
        ForwardRequest some = new ForwardRequest(), every = new ForwardRequest();
        for (int s = 0; s < seqs.size(); s++) {
            some.add(seqs.get(s), pos[s], null);
            every.add(seqs.get(s), all(seqs.get(s).length), null);
        }
        some.interventions.addAll(ivs);
        every.interventions.addAll(ivs);
        ForwardResult a = cpu.forward(some), b = cpu.forward(every);
        RefGpt2 ref = new RefGpt2(w);
        for (int s = 0; s < seqs.size(); s++) {
            double[][] want = ref.logSoftmax(seqs.get(s), ivs, s);
            for (int i = 0; i < pos[s].length; i++) {
                int t = pos[s][i];
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int k = 0; k < V; k++) {
                    float got = a.logits()[s][i * V + k];
                    assertEquals(Float.floatToRawIntBits(b.logits()[s][t * V + k]), Float.floatToRawIntBits(got),
                            gemm() + ": sequence " + s + ", position " + t + ", logit " + k);
                    max = Math.max(max, got);
                }
                for (int k = 0; k < V; k++) sum += Math.exp(a.logits()[s][i * V + k] - max);
                for (int k = 0; k < V; k++)
                    assertEquals(want[t][k], a.logits()[s][i * V + k] - max - Math.log(sum), 1e-4, "sequence " + s + ", position " + t);
            }
        }
    }

    /**
     * Batch invariance, bit for bit: a sequence's logits at every position do not depend on which sequences share
     * its batch, how many rows the batch has, or where in it the sequence sits. On the tiny model and on one whose
     * widths give OpenBLAS both padded row blocks of 16 and of 48 rows.
     */
    @Test void logitsAreBitIdenticalWhateverSharesTheBatch() {
        GPT2Config wide = new GPT2Config(2, 4, 256, 64, V, 1e-5, "gelu_new");
        for (GPT2Weights weights : List.of(w, TestModels.random(wide, 5, 0.3f))) {
            CpuBackend b = backend(weights);
            int[] a = TestModels.randomTokens(rnd, 6, V);
            List<int[]> others = batch(13, 1, 30, 2, 17);
            float[] alone = b.forward(new ForwardRequest().add(a, all(a.length), null)).logits()[0];
            int[][] layouts = {{0, 1}, {1, 0}, {2, 0, 3}, {3, 3, 0, 1, 2}, {4, 0, 4, 4, 4, 4, 4, 4, 1}, {1, 2, 3, 4, 0}};
            for (int[] layout : layouts) {
                ForwardRequest req = new ForwardRequest();
                int at = -1;
                for (int i = 0; i < layout.length; i++) {
                    int[] t = layout[i] == 0 ? a : others.get(layout[i]);
                    if (layout[i] == 0) at = i;
                    req.add(t, all(t.length), null);
                }
                float[] got = b.forward(req).logits()[at];
                for (int i = 0; i < alone.length; i++)
                    assertEquals(Float.floatToRawIntBits(alone[i]), Float.floatToRawIntBits(got[i]),
                            gemm() + ", n_embd " + weights.config.nEmbd() + ", layout " + java.util.Arrays.toString(layout) + ": logit " + i);
            }
        }
    }

    @Test void badRequestsAreRefusedWithOneLine() {
        assertThrows(NshapException.class, () -> cpu.forward(new ForwardRequest().addLast(new int[cfg.nPositions() + 1])));
        assertThrows(NshapException.class, () -> cpu.forward(new ForwardRequest().addLast(new int[]{V})));
        ForwardRequest badUnit = new ForwardRequest().addLast(new int[]{1, 2});
        badUnit.interventions.add(Intervention.zero(HookPoint.mlpPost(0), new int[]{cfg.nInner()}, null));
        NshapException e = assertThrows(NshapException.class, () -> cpu.forward(badUnit));
        assertFalse(e.getMessage().contains("\n"));
        ForwardRequest badLayer = new ForwardRequest().addLast(new int[]{1, 2});
        badLayer.interventions.add(Intervention.zero(HookPoint.mlpPost(5), null, null));
        assertThrows(NshapException.class, () -> cpu.forward(badLayer));
    }
}
