package dev.nshap.eval;

import dev.nshap.NshapException;
import dev.nshap.backend.ForwardRequest;
import dev.nshap.backend.ForwardResult;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.NeuronId;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.shapley.Coalition;
import dev.nshap.testutil.RefGpt2;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class NeuronGameTest {

    /** The GEMM these tests run on; {@link NeuronGameOpenBlasTest} runs every test again on OpenBLAS. */
    dev.nshap.backend.cpu.Gemm.Impl gemm() { return dev.nshap.backend.cpu.Gemm.Impl.JAVA; }

    dev.nshap.backend.cpu.CpuBackend backend(dev.nshap.model.GPT2Weights weights) {
        return new dev.nshap.backend.cpu.CpuBackend(weights, gemm());
    }
    static final int V = 47;
    final GPT2Config cfg = TestModels.tinyConfig(V);
    final GPT2Weights w = TestModels.random(cfg, 11, 0.5f);
    final RefGpt2 ref = new RefGpt2(w);

    TokenizedDataset data() { return TestModels.randomPromptSet("synthetic", V); }

    /** Four neurons over both layers, one of them a group of two: five neurons in play. */
    NeuronPlayers players(Path dir) throws Exception {
        Path f = dir.resolve("players.txt");
        Files.writeString(f, "blocks.0.mlp.hook_post[5]\n# a comment\nblocks.1.mlp.hook_post[3]\n"
                + "blocks.1.mlp.hook_post[17], blocks.1.mlp.hook_post[40]\nblocks.1.mlp.hook_post[100]\n");
        return NeuronPlayers.parse(f.toString(), 1, cfg);
    }

    /** The metric of one prompt under interventions, from the float64 reference, one separate run per prompt. */
    double refMetric(TokenizedDataset d, int p, List<Intervention> ivs, Metric m) {
        double[][] lp = ref.logSoftmax(d.sequences[p], ivs, 0);
        int[] ans = d.answers[p];
        return switch (m) {
            case LOSS -> {
                double nll = 0;
                for (int k = 0; k < ans.length; k++) nll -= lp[d.scorePositions[p][k]][ans[k]];
                yield nll / ans.length;
            }
            case LOGIT_DIFF -> lp[d.scorePositions[p][0]][ans[0]] - lp[d.scorePositions[p][0]][d.foils[p]];
            default -> throw new IllegalArgumentException();
        };
    }

    /** v(S) by hand: ablate the neurons of the players outside S, one separate masked run per prompt. */
    double refValue(TokenizedDataset d, NeuronPlayers ps, BitSet keep, Metric m, float[][] meansByLayer, int[] prompts) {
        List<Intervention> ivs = new ArrayList<>();
        for (int i = 0; i < ps.size(); i++) {
            if (keep.get(i)) continue;
            for (NeuronId n : ps.get(i).neurons()) {
                HookPoint hp = HookPoint.mlpPost(n.layer());
                ivs.add(meansByLayer == null ? Intervention.zero(hp, new int[]{n.index()}, null)
                        : Intervention.replace(hp, new int[]{n.index()}, null, meansByLayer[n.layer()]));
            }
        }
        double s = 0;
        for (int p : prompts) s += refMetric(d, p, ivs, m);
        s /= prompts.length;
        return m.higherIsBetter ? s : -s;
    }

    static BitSet bits(int mask) {
        BitSet b = new BitSet();
        for (int i = 0; i < 31; i++) if ((mask & (1 << i)) != 0) b.set(i);
        return b;
    }

    /** Shapley values from the value of every coalition (mask-indexed), by the permutation-weight formula. */
    static double[] shapley(double[] v, int n) {
        double[] phi = new double[n];
        double[] fact = new double[n + 1];
        fact[0] = 1;
        for (int i = 1; i <= n; i++) fact[i] = fact[i - 1] * i;
        for (int i = 0; i < n; i++)
            for (int s = 0; s < (1 << n); s++) {
                if ((s & (1 << i)) != 0) continue;
                int k = Integer.bitCount(s);
                phi[i] += fact[k] * fact[n - k - 1] / fact[n] * (v[s | (1 << i)] - v[s]);
            }
        return phi;
    }

    double[] allCoalitionValues(NeuronGame g, int n) {
        List<Coalition> cs = new ArrayList<>();
        for (int s = 0; s < (1 << n); s++) cs.add(new Coalition(bits(s), -1, 0));
        return g.values(cs);
    }

    @Test void exactValuesEqualHandComputedMaskedRunsAndAreEfficient(@TempDir Path dir) throws Exception {
        TokenizedDataset d = data();
        NeuronPlayers ps = players(dir);
        assertEquals(4, ps.size());
        assertEquals(5, ps.neuronCount());
        // Small batches: the 16 coalitions x 8 prompts span many forward passes.
        Evaluator ev = new Evaluator(backend(w), d, 37);
        NeuronGame g = new NeuronGame(ev, ps, Metric.LOSS, NeuronGame.Ablation.ZERO, 0, Map.of());
        int n = ps.size();
        double[] v = allCoalitionValues(g, n);
        double[] vRef = new double[1 << n];
        for (int s = 0; s < (1 << n); s++) {
            vRef[s] = refValue(d, ps, bits(s), Metric.LOSS, null, ev.allPrompts());
            assertEquals(vRef[s], v[s], 2e-5, "v of coalition " + s);
        }
        double[] phi = shapley(v, n), phiRef = shapley(vRef, n);
        double sum = 0, maxAbs = 0;
        for (int i = 0; i < n; i++) {
            assertEquals(phiRef[i], phi[i], 2e-5, "phi " + i);
            sum += phi[i];
            maxAbs = Math.max(maxAbs, Math.abs(phi[i]));
        }
        assertTrue(maxAbs > 1e-3, "the neurons must matter for the test to mean anything: " + maxAbs);
        // Efficiency, and v(all) is the clean model: neurons outside play are never touched.
        double vAll = g.valueOfAll(), vNone = g.valueOfNone();
        assertEquals(vAll - vNone, sum, 1e-9 + 1e-6 * Math.abs(sum));
        assertEquals(refValue(d, ps, bits((1 << n) - 1), Metric.LOSS, null, ev.allPrompts()), vAll, 2e-5);
        double clean = 0;
        for (int p = 0; p < d.size(); p++) clean -= refMetric(d, p, null, Metric.LOSS);
        assertEquals(clean / d.size(), vAll, 2e-5);
        assertEquals(vRef[0], vNone, 2e-5);
    }

    @Test void meanAblationReplacesWithTheCleanMeanOverTheDataset(@TempDir Path dir) throws Exception {
        TokenizedDataset d = data();
        NeuronPlayers ps = players(dir);
        CpuBackend be = backend(w);
        // The clean means, gathered here one prompt at a time.
        float[][] means = new float[cfg.nLayer()][];
        for (int l = 0; l < cfg.nLayer(); l++) {
            HookPoint hp = HookPoint.mlpPost(l);
            double[] sum = new double[cfg.nInner()];
            long rows = 0;
            for (int p = 0; p < d.size(); p++) {
                ForwardRequest req = new ForwardRequest();
                req.cache.add(hp);
                req.add(d.sequences[p], null, null);
                ForwardResult r = be.forward(req);
                float[] a = r.cache().get(hp)[0];
                for (int t = 0; t < d.sequences[p].length; t++, rows++)
                    for (int u = 0; u < cfg.nInner(); u++) sum[u] += a[t * cfg.nInner() + u];
            }
            means[l] = new float[cfg.nInner()];
            for (int u = 0; u < cfg.nInner(); u++) means[l][u] = (float) (sum[u] / rows);
        }
        NeuronGame g = new NeuronGame(new Evaluator(be, d, 64), ps, Metric.LOGIT_DIFF, NeuronGame.Ablation.MEAN, 0, Map.of());
        int n = ps.size();
        double[] v = allCoalitionValues(g, n);
        int[] all = g.evaluator().allPrompts();
        double spread = 0;
        for (int s = 0; s < (1 << n); s++) {
            assertEquals(refValue(d, ps, bits(s), Metric.LOGIT_DIFF, means, all), v[s], 5e-5, "v of coalition " + s);
            spread = Math.max(spread, Math.abs(v[s] - v[(1 << n) - 1]));
        }
        assertTrue(spread > 1e-3, "mean ablation must change the value: " + spread);
        // Zero ablation of the same coalition is a different game.
        NeuronGame zero = new NeuronGame(new Evaluator(be, d, 64), ps, Metric.LOGIT_DIFF, NeuronGame.Ablation.ZERO, 0, Map.of());
        assertNotEquals(v[0], zero.valueOfNone(), 1e-6);
    }

    @Test void subsamplesComeFromThePermutationSeedAndBatchingNeverChangesValues(@TempDir Path dir) throws Exception {
        TokenizedDataset d = data();
        NeuronPlayers ps = players(dir);
        NeuronGame g = new NeuronGame(new Evaluator(backend(w), d, 50), ps, Metric.LOSS, NeuronGame.Ablation.ZERO, 3, Map.of());
        int[] a = g.promptsFor(42), b = g.promptsFor(42), c = g.promptsFor(43);
        assertArrayEquals(a, b);
        assertEquals(3, a.length);
        assertEquals(3, Arrays.stream(a).distinct().count());
        boolean differs = false;
        for (long s = 43; s < 53; s++) differs |= !Arrays.equals(a, g.promptsFor(s));
        assertTrue(differs, "other seeds draw other subsets");
        // One mixed batch of coalitions from three permutations = each coalition alone = the reference on its subset.
        List<Coalition> cs = new ArrayList<>();
        long[] seeds = {42, 43, 7};
        for (int k = 0; k < 9; k++) cs.add(new Coalition(bits((k * 5 + 3) % 16), k % 3, seeds[k % 3]));
        double[] batched = g.values(cs);
        for (int k = 0; k < cs.size(); k++) {
            double alone = g.values(List.of(cs.get(k)))[0];
            assertEquals(alone, batched[k], 1e-6);
            assertEquals(refValue(d, ps, cs.get(k).members(), Metric.LOSS, null, g.promptsFor(cs.get(k).seed())), batched[k], 2e-5);
        }
        assertNotEquals(g.values(List.of(new Coalition(bits(0), 0, 42)))[0], g.values(List.of(new Coalition(bits(0), 0, 43)))[0], 1e-9);
    }

    @Test void allCoalitionsOfACallShareForwardPassesAndTheCleanPrefixIsComputedOnce() {
        TokenizedDataset d = data();
        // Players in layer 1 only: layer 0 is the same for every coalition.
        NeuronPlayers ps = NeuronPlayers.parse("blocks.1.mlp.hook_post[1],blocks.1.mlp.hook_post[2],blocks.1.mlp.hook_post[3]", 1, cfg);
        Evaluator ev = new Evaluator(backend(w), d, 100_000);
        NeuronGame g = new NeuronGame(ev, ps, Metric.LOSS, NeuronGame.Ablation.ZERO, 0, Map.of());
        List<Coalition> cs = new ArrayList<>();
        for (int s = 0; s < 8; s++) cs.add(new Coalition(bits(s), -1, 0));
        double[] v1 = g.values(cs);
        assertEquals(2, ev.forwardPasses()); // the clean prefix (layer 0, every prompt), then 8 coalitions x 8 prompts in one pass
        double[] v2 = g.values(cs);
        assertEquals(3, ev.forwardPasses());
        assertArrayEquals(v1, v2, 0);
        assertEquals(2L * 8 * d.size(), ev.sequencesRun());
        for (int s = 0; s < 8; s++)
            assertEquals(refValue(d, ps, bits(s), Metric.LOSS, null, ev.allPrompts()), v1[s], 2e-5);
    }

    @Test void playerSpecs(@TempDir Path dir) throws Exception {
        assertEquals(cfg.neuronCount(), NeuronPlayers.parse("all", 1, cfg).size());
        NeuronPlayers l1 = NeuronPlayers.parse("blocks.1.mlp.hook_post", 1, cfg);
        assertEquals(cfg.nInner(), l1.size());
        assertEquals("blocks.1.mlp.hook_post[7]", l1.get(7).name());
        NeuronPlayers grouped = NeuronPlayers.parse("blocks.0.mlp.hook_post,blocks.1.mlp.hook_post[3]", 50, cfg);
        // 128 neurons in runs of 50: 50, 50, 28; then the single neuron.
        assertEquals(4, grouped.size());
        assertEquals("blocks.0.mlp.hook_post[100:128]", grouped.get(2).name());
        assertEquals(28, grouped.get(2).neurons().length);
        assertArrayEquals(new int[]{0, 1}, grouped.layers());
        assertThrows(NshapException.class, () -> NeuronPlayers.parse("blocks.2.mlp.hook_post", 1, cfg));
        assertThrows(NshapException.class, () -> NeuronPlayers.parse("blocks.0.hook_resid_pre", 1, cfg));
        assertThrows(NshapException.class, () -> NeuronPlayers.parse("blocks.0.mlp.hook_post[128]", 1, cfg));
        assertThrows(NshapException.class, () -> NeuronPlayers.parse("blocks.0.mlp.hook_post[1],blocks.0.mlp.hook_post", 1, cfg));
        assertThrows(NshapException.class, () -> NeuronPlayers.parse(dir.resolve("missing.txt").toString(), 1, cfg));
        Path bad = dir.resolve("bad.txt");
        Files.writeString(bad, "blocks.0.mlp.hook_post[1]\nblocks.0.mlp.hook_post[2] blocks.9.mlp.hook_post[2]\n");
        NshapException e = assertThrows(NshapException.class, () -> NeuronPlayers.parse(bad.toString(), 1, cfg));
        assertTrue(e.getMessage().contains("bad.txt:2"), e.getMessage());
    }
}
