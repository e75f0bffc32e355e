package dev.nshap.eval;

import dev.nshap.NshapException;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.cpu.CpuBackend;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.testutil.RefGpt2;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class EvaluatorTest {

    /** The GEMM these tests run on; {@link EvaluatorOpenBlasTest} runs every test again on OpenBLAS. */
    dev.nshap.backend.cpu.Gemm.Impl gemm() { return dev.nshap.backend.cpu.Gemm.Impl.JAVA; }

    dev.nshap.backend.cpu.CpuBackend backend(dev.nshap.model.GPT2Weights weights) {
        return new dev.nshap.backend.cpu.CpuBackend(weights, gemm());
    }
    static final int V = 53;
    final GPT2Config cfg = TestModels.tinyConfig(V);
    final GPT2Weights w = TestModels.random(cfg, 5, 0.4f);
    final RefGpt2 ref = new RefGpt2(w);
    final Random rnd = new Random(9);

    /** Twelve prompts of 3..10 tokens with 1..3 answer tokens; half the answers are the model's own greedy ones. */
    TokenizedDataset data() {
        int n = 12;
        int[][] seqs = new int[n][], pos = new int[n][], ans = new int[n][];
        int[] foils = new int[n];
        List<Prompt> prompts = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] p = TestModels.randomTokens(rnd, 3 + rnd.nextInt(8), V);
            int na = 1 + rnd.nextInt(3);
            int[] a = new int[na];
            int[] s = p;
            for (int k = 0; k < na; k++) {
                if (i % 2 == 0) { // greedy continuation: accuracy 1 under teacher forcing
                    double[][] lp = ref.logSoftmax(s, null, 0);
                    int best = 0;
                    for (int v = 1; v < V; v++) if (lp[s.length - 1][v] > lp[s.length - 1][best]) best = v;
                    a[k] = best;
                } else a[k] = rnd.nextInt(V);
                int[] s2 = java.util.Arrays.copyOf(s, s.length + 1);
                s2[s.length] = a[k];
                s = s2;
            }
            seqs[i] = java.util.Arrays.copyOf(s, p.length + na - 1);
            pos[i] = new int[na];
            for (int k = 0; k < na; k++) pos[i][k] = p.length - 1 + k;
            ans[i] = a;
            foils[i] = (a[0] + 1) % V;
            prompts.add(new Prompt("p" + i, "t", "x", "y", "z", null));
        }
        return TokenizedDataset.ofTokens(new Dataset("synthetic", Path.of("synthetic.jsonl"), prompts), seqs, pos, ans, foils);
    }

    @Test void metricsMatchFloat64ReferenceUnderAnIntervention() {
        TokenizedDataset d = data();
        Evaluator ev = new Evaluator(backend(w), d, 40);
        List<Intervention> ablate = List.of(Intervention.zero(HookPoint.mlpPost(1), new int[]{1, 2, 3, 5, 8, 13, 21, 34, 55, 89}, null));
        List<Condition> conds = List.of(Condition.clean(cfg.nLayer()), Condition.of(ablate, cfg.nLayer()));
        int[] all = ev.allPrompts();
        double[][] acc = ev.evaluate(conds, all, Metric.ACCURACY);
        double[][] loss = ev.evaluate(conds, all, Metric.LOSS);
        double[][] ld = ev.evaluate(conds, all, Metric.LOGIT_DIFF);
        double[][] kl = ev.evaluate(conds, all, Metric.KL);
        for (int c = 0; c < 2; c++) {
            for (int p = 0; p < d.size(); p++) {
                double[][] lp = ref.logSoftmax(d.sequences[p], c == 0 ? null : ablate, 0);
                double[][] clean = ref.logSoftmax(d.sequences[p], null, 0);
                boolean ok = true;
                double nll = 0, klRef = 0;
                for (int k = 0; k < d.answers[p].length; k++) {
                    int t = d.scorePositions[p][k];
                    int best = 0;
                    for (int v = 1; v < V; v++) if (lp[t][v] > lp[t][best]) best = v;
                    ok &= best == d.answers[p][k];
                    nll -= lp[t][d.answers[p][k]];
                    for (int v = 0; v < V; v++) klRef += Math.exp(clean[t][v]) * (clean[t][v] - lp[t][v]);
                }
                int n = d.answers[p].length;
                assertEquals(ok ? 1.0 : 0.0, acc[c][p], "accuracy c=" + c + " p=" + p);
                assertEquals(nll / n, loss[c][p], 1e-4, "loss");
                int t0 = d.scorePositions[p][0];
                assertEquals(lp[t0][d.answers[p][0]] - lp[t0][d.foils[p]], ld[c][p], 1e-4, "logit-diff");
                assertEquals(klRef / n, kl[c][p], 1e-4, "kl");
            }
        }
        for (int p = 0; p < d.size(); p += 2) assertEquals(1.0, acc[0][p], "greedy answers are right in the clean model");
        for (int p = 0; p < d.size(); p++) assertEquals(0.0, kl[0][p], 1e-6, "KL of the clean model with itself");
    }

    @Test void packingAndPrefixReuseDoNotChangeResults() {
        TokenizedDataset d = data();
        List<Condition> conds = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            int[] units = rnd.ints(20, 0, cfg.nInner()).distinct().toArray();
            conds.add(Condition.of(List.of(Intervention.zero(HookPoint.mlpPost(1), units, null)), cfg.nLayer()));
        }
        int[] some = {0, 3, 4, 7, 11};
        Evaluator oneByOne = new Evaluator(backend(w), d, 1);
        Evaluator packed = new Evaluator(backend(w), d, 10_000);
        double[][] a = oneByOne.evaluate(conds, some, Metric.LOSS);
        double[][] b = packed.evaluate(conds, some, Metric.LOSS);
        for (int c = 0; c < conds.size(); c++) assertArrayEquals(a[c], b[c], 1e-5);
        assertTrue(packed.forwardPasses() < oneByOne.forwardPasses());
        // prefix reuse against a reference that runs every layer
        for (int c = 0; c < conds.size(); c++)
            for (int i = 0; i < some.length; i++) {
                int p = some[i];
                double[][] lp = ref.logSoftmax(d.sequences[p], conds.get(c).interventions(new int[]{0}, new int[]{p}), 0);
                double nll = 0;
                for (int k = 0; k < d.answers[p].length; k++) nll -= lp[d.scorePositions[p][k]][d.answers[p][k]];
                assertEquals(nll / d.answers[p].length, b[c][i], 1e-4);
            }
    }

    @Test void meanActivationsAverageEveryPositionOfEveryPrompt() {
        TokenizedDataset d = data();
        Evaluator ev = new Evaluator(backend(w), d, 16); // packs several prompts per pass
        HookPoint h0 = HookPoint.mlpPost(0), h1 = new HookPoint(1, HookPoint.Kind.RESID_MID);
        List<float[]> means = ev.meanActivations(List.of(h0, h1));
        assertArrayEquals(means.get(0), ev.meanActivation(h0), 0f);
        // expected: each prompt run alone, its activations summed here
        HookPoint[] hs = {h0, h1};
        for (int i = 0; i < 2; i++) {
            int width = hs[i].width(cfg);
            double[] sum = new double[width];
            long rows = 0;
            for (int p = 0; p < d.size(); p++) {
                dev.nshap.backend.ForwardRequest req = new dev.nshap.backend.ForwardRequest().add(d.sequences[p], null, null);
                req.cache.add(hs[i]);
                float[] a = backend(w).forward(req).cache().get(hs[i])[0];
                for (int r = 0; r < d.sequences[p].length; r++, rows++)
                    for (int u = 0; u < width; u++) sum[u] += a[r * width + u];
            }
            for (int u = 0; u < width; u++) assertEquals(sum[u] / rows, means.get(i)[u], 1e-5, hs[i] + " unit " + u);
        }
    }

    @Test void badDatasetsAreRefusedWithTheirLineNumber(@TempDir Path dir) throws Exception {
        String good = "{\"id\":\"a\",\"topic\":\"athlete\",\"prompt\":\"He played for\",\"answer\":\" Chelsea\"}\n";
        String[][] cases = {
                {good + "{not json\n", ":2: invalid JSON"},
                {good + "{\"id\":\"b\",\"topic\":\"athlete\",\"prompt\":\"\",\"answer\":\" x\"}\n", ":2: empty \"prompt\""},
                {good + "{\"id\":\"b\",\"topic\":\"athlete\",\"prompt\":\"y\"}\n", ":2: missing \"answer\""},
                {good + good, ":2: duplicate id"},
                {"", "has no prompts"},
        };
        for (String[] c : cases) {
            Path f = dir.resolve("d.jsonl");
            Files.writeString(f, c[0]);
            NshapException e = assertThrows(NshapException.class, () -> Dataset.load(f));
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
        Path f = dir.resolve("ok.jsonl");
        Files.writeString(f, good);
        NshapException e = assertThrows(NshapException.class, () -> Dataset.load(f, "artist"));
        assertTrue(e.getMessage().contains("unknown topic 'artist'"), e.getMessage());
        assertEquals(1, Dataset.load(f, "athlete").prompts().size());
    }

    @Test void promptLongerThanTheContextIsRefused(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("long.jsonl");
        String longPrompt = "word ".repeat(40);
        Files.writeString(f, "{\"id\":\"a\",\"topic\":\"t\",\"prompt\":\"" + longPrompt + "\",\"answer\":\" end\"}\n");
        Dataset d = Dataset.load(f);
        NshapException e = assertThrows(NshapException.class,
                () -> d.tokenize(dev.nshap.model.JTokkitTokenizer.GPT2, new GPT2Config(1, 1, 8, 32, 50257, 1e-5, "gelu_new")));
        assertTrue(e.getMessage().contains("longer than the model's context of 32"), e.getMessage());
    }

    @Test void severalMetricsComeFromOneSetOfForwardPasses() {
        TokenizedDataset d = data();
        List<Condition> conds = List.of(Condition.of(List.of(Intervention.zero(HookPoint.mlpPost(0), new int[]{3, 4, 5}, null)), cfg.nLayer()));
        int[][] per = {new Evaluator(backend(w), d, 64).allPrompts()};
        List<Metric> ms = List.of(Metric.ACCURACY, Metric.LOSS, Metric.LOGIT_DIFF, Metric.KL);
        Evaluator together = new Evaluator(backend(w), d, 64);
        together.evaluate(List.of(Condition.clean(cfg.nLayer())), per, List.of(Metric.KL)); // clean side of KL first
        long before = together.forwardPasses();
        double[][][] all = together.evaluate(conds, per, ms);
        long passes = together.forwardPasses() - before;
        for (int m = 0; m < ms.size(); m++) {
            Evaluator alone = new Evaluator(backend(w), d, 64);
            assertArrayEquals(alone.evaluate(conds, per, ms.get(m))[0], all[m][0], 1e-9, ms.get(m).toString());
        }
        Evaluator one = new Evaluator(backend(w), d, 64);
        one.evaluate(conds, per, Metric.LOSS);
        assertEquals(one.forwardPasses(), passes, "four metrics cost the passes of one");
    }
}
