package dev.nshap.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.Intervention;
import dev.nshap.backend.NeuronId;
import dev.nshap.cluster.Cluster;
import dev.nshap.eval.Dataset;
import dev.nshap.eval.TokenizedDataset;
import dev.nshap.io.Json;
import dev.nshap.model.Checkpoint;
import dev.nshap.model.GPT2Config;
import dev.nshap.model.GPT2Weights;
import dev.nshap.model.JTokkitTokenizer;
import dev.nshap.testutil.RefGpt2;
import dev.nshap.testutil.TestModels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code nshap shapley --model --dataset} end to end on a tiny checkpoint: the exact estimator's values equal
 * Shapley values computed by hand from separate masked float64 runs; then cluster export / show and refusals.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class NeuronShapleyCliTest {
    final GPT2Config cfg = TestModels.tinyConfig(GPT2Config.GPT2_VOCAB);
    final GPT2Weights w = TestModels.random(cfg, 21, 0.5f);
    final String[] neurons = {"blocks.0.mlp.hook_post[3]", "blocks.1.mlp.hook_post[5]", "blocks.1.mlp.hook_post[9]"};
    Path dir;
    Path model, other, data;

    @BeforeAll void setUp(@TempDir Path tmp) throws Exception {
        dir = tmp;
        model = dir.resolve("model");
        Checkpoint.write(model, w, "F32", Map.of());
        other = dir.resolve("other");
        Checkpoint.write(other, TestModels.random(cfg, 22, 0.5f), "F32", Map.of());
        data = dir.resolve("athlete.jsonl");
        Files.writeString(data, """
                {"id":"a1","topic":"athlete","prompt":"He played for the national","answer":" team","foil":" museum"}
                {"id":"a2","topic":"athlete","prompt":"She won a gold","answer":" medal","foil":" painting"}
                {"id":"a3","topic":"athlete","prompt":"The striker scored a late","answer":" goal","foil":" novel"}
                {"id":"b1","topic":"artist","prompt":"She painted a large","answer":" canvas","foil":" goal"}
                """);
    }

    record Run(int code, String out, String err) {}

    static Run cli(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream bo = new ByteArrayOutputStream(), be = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(bo, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(be, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, bo.toString(StandardCharsets.UTF_8), be.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    /** -mean loss over the athlete prompts with the given neurons zeroed, by separate float64 runs. */
    double refValue(TokenizedDataset d, List<NeuronId> ablate) {
        RefGpt2 ref = new RefGpt2(w);
        List<Intervention> ivs = new ArrayList<>();
        for (NeuronId n : ablate) ivs.add(Intervention.zero(HookPoint.mlpPost(n.layer()), new int[]{n.index()}, null));
        double s = 0;
        for (int p = 0; p < d.size(); p++) {
            double[][] lp = ref.logSoftmax(d.sequences[p], ivs, 0);
            double nll = 0;
            for (int k = 0; k < d.answers[p].length; k++) nll -= lp[d.scorePositions[p][k]][d.answers[p][k]];
            s += nll / d.answers[p].length;
        }
        return -s / d.size();
    }

    @Test void exactRunEqualsHandComputedShapleyValuesThenExportsACluster() throws Exception {
        Path prefix = dir.resolve("results").resolve("exact");
        Run r = cli("shapley", "--model", model.toString(), "--dataset", data.toString(), "--topic", "athlete",
                "--players", String.join(",", neurons), "--metric", "loss", "--estimator", "exact", "--out", prefix.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode res = Json.readTree(Path.of(prefix + ".json"));

        TokenizedDataset d = Dataset.load(data, "athlete").tokenize(JTokkitTokenizer.GPT2, cfg);
        assertEquals(3, d.size());
        int n = neurons.length;
        double[] v = new double[1 << n];
        for (int s = 0; s < (1 << n); s++) {
            List<NeuronId> ablate = new ArrayList<>();
            for (int i = 0; i < n; i++) if ((s & (1 << i)) == 0) ablate.add(NeuronId.parse(neurons[i]));
            v[s] = refValue(d, ablate);
        }
        double[] phi = new double[n];
        int[] fact = {1, 1, 2, 6};
        for (int i = 0; i < n; i++)
            for (int s = 0; s < (1 << n); s++)
                if ((s & (1 << i)) == 0) {
                    int k = Integer.bitCount(s);
                    phi[i] += (double) fact[k] * fact[n - k - 1] / fact[n] * (v[s | (1 << i)] - v[s]);
                }
        Map<String, Double> got = new HashMap<>();
        for (JsonNode p : res.get("results")) got.put(p.get("name").asText(), p.get("mean").asDouble());
        double sum = 0, maxAbs = 0;
        for (int i = 0; i < n; i++) {
            assertEquals(phi[i], got.get(neurons[i]), 2e-5, neurons[i]);
            sum += got.get(neurons[i]);
            maxAbs = Math.max(maxAbs, Math.abs(phi[i]));
        }
        assertTrue(maxAbs > 1e-3, "neurons must matter: " + maxAbs);
        JsonNode prov = res.get("provenance");
        assertEquals(v[(1 << n) - 1], prov.get("v_all").asDouble(), 2e-5);
        assertEquals(v[0], prov.get("v_none").asDouble(), 2e-5);
        assertEquals(prov.get("v_all").asDouble() - prov.get("v_none").asDouble(), sum, 1e-6); // efficiency
        assertEquals("gpt2-neurons", res.get("game").get("game").asText());
        assertEquals(Checkpoint.sha256(model.resolve(Checkpoint.WEIGHTS)), res.get("game").get("weights_sha256").asText());
        String csv = Files.readString(Path.of(prefix + ".csv"));
        assertTrue(csv.startsWith("rank,player,name,layer,index,mean,stderr,samples,ci_low,ci_high,settled"), csv);
        assertTrue(csv.contains(",blocks.1.mlp.hook_post[9],1,9,"), csv);
        assertTrue(r.out().contains("v(all)"), r.out());

        // Cluster: the two neurons of highest value.
        int best = 0, second = -1;
        for (int i = 1; i < n; i++) if (phi[i] > phi[best]) best = i;
        for (int i = 0; i < n; i++) if (i != best && (second < 0 || phi[i] > phi[second])) second = i;
        Path cl = dir.resolve("cluster.json");
        Run e = cli("clusters", "export", "--from", prefix + ".json", "--top-k", "2", "--model", model.toString(), "--out", cl.toString());
        assertEquals(0, e.code(), e.err());
        Cluster c = Cluster.read(cl);
        assertEquals("athlete", c.topic());
        assertEquals("loss", c.metric());
        assertEquals(List.of(NeuronId.parse(neurons[best]), NeuronId.parse(neurons[second])),
                c.neurons().stream().map(Cluster.Member::id).toList());
        assertEquals(phi[best], c.neurons().get(0).value(), 2e-5);
        assertEquals(Checkpoint.sha256(model.resolve(Checkpoint.WEIGHTS)), c.model().weightsSha256());
        assertEquals(2, c.model().nLayer());
        assertEquals(cfg.nInner(), c.model().dMlp());
        Run show = cli("clusters", "show", cl.toString(), "--model", model.toString());
        assertEquals(0, show.code(), show.err());
        assertTrue(show.out().contains("fits"), show.out());

        // One per layer: layer 0 has one neuron in play, layer 1 two; half of each, rounded up.
        Path half = dir.resolve("half.json");
        assertEquals(0, cli("clusters", "export", "--from", prefix + ".json", "--per-layer-fraction", "0.5", "--out", half.toString()).code());
        assertEquals(2, Cluster.read(half).byLayer().size());
        Path pos = dir.resolve("pos.json");
        Run mv = cli("clusters", "export", "--from", prefix + ".json", "--min-value", Double.toString((phi[best] + phi[second]) / 2), "--out", pos.toString());
        assertEquals(0, mv.code(), mv.err());
        assertEquals(1, Cluster.read(pos).neurons().size());

        // Refusals: exit 2 with one line, nothing written.
        Path none = dir.resolve("none.json");
        Run empty = cli("clusters", "export", "--from", prefix + ".json", "--min-value", "1e9", "--out", none.toString());
        assertEquals(2, empty.code());
        assertFalse(Files.exists(none));
        assertEquals(2, cli("clusters", "export", "--from", prefix + ".json", "--top-k", "2", "--min-value", "0", "--out", none.toString()).code());
        Run wrongModel = cli("clusters", "show", cl.toString(), "--model", other.toString());
        assertEquals(2, wrongModel.code());
        assertTrue(wrongModel.err().contains("other weights"), wrongModel.err());
        Path bad = dir.resolve("bad.json");
        Files.writeString(bad, Files.readString(cl).replace("\"blocks.1.mlp.hook_post[", "\"blocks.7.mlp.hook_post["));
        Run badShow = cli("clusters", "show", bad.toString());
        assertEquals(2, badShow.code());
        assertTrue(badShow.err().contains("outside the cluster's own model"), badShow.err());
        Files.writeString(bad, "{\"schema_version\": 1");
        assertEquals(2, cli("clusters", "show", bad.toString()).code());
    }

    @Test void shardsMergeAndExport() throws Exception {
        Path p0 = dir.resolve("s0"), p1 = dir.resolve("s1"), m = dir.resolve("merged");
        String[] common = {"shapley", "--model", model.toString(), "--dataset", data.toString(), "--topic", "athlete",
                "--players", "blocks.1.mlp.hook_post", "--group-size", "16", "--metric", "logit-diff", "--ablation", "mean",
                "--subsample", "2", "--estimator", "tmc", "--permutations", "4", "--seed", "3"};
        Run a = cli(concat(common, "--shard", "0/2", "--out", p0.toString()));
        assertEquals(0, a.code(), a.err());
        Run b = cli(concat(common, "--shard", "1/2", "--out", p1.toString()));
        assertEquals(0, b.code(), b.err());
        Run mg = cli("shapley", "merge", "--out", m.toString(), p0 + ".json", p1 + ".json");
        assertEquals(0, mg.code(), mg.err());
        JsonNode res = Json.readTree(Path.of(m + ".json"));
        assertEquals(cfg.nInner() / 16, res.get("results").size());
        assertEquals("blocks.1.mlp.hook_post[0:16]", findName(res, 0));
        // Values depend on (members, permutation seed) only: two shards merged = one run over the same permutations.
        Path whole = dir.resolve("whole");
        Run one = cli(concat(common, "--out", whole.toString()));
        assertEquals(0, one.code(), one.err());
        JsonNode w1 = Json.readTree(Path.of(whole + ".json"));
        Map<String, Double> merged = new HashMap<>();
        for (JsonNode p : res.get("results")) merged.put(p.get("name").asText(), p.get("mean").asDouble());
        boolean nonZero = false;
        for (JsonNode p : w1.get("results")) {
            assertEquals(p.get("mean").asDouble(), merged.get(p.get("name").asText()), 1e-12, p.get("name").asText());
            nonZero |= p.get("mean").asDouble() != 0;
        }
        assertTrue(nonZero);
        Path cl = dir.resolve("grouped.json");
        assertEquals(0, cli("clusters", "export", "--from", m + ".json", "--top-k", "1", "--out", cl.toString()).code());
        assertEquals(16, Cluster.read(cl).neurons().size()); // a group exports all its neurons
    }

    static String findName(JsonNode res, int player) {
        for (JsonNode p : res.get("results")) if (p.get("player").asInt() == player) return p.get("name").asText();
        return null;
    }

    static String[] concat(String[] a, String... b) {
        String[] o = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, o, a.length, b.length);
        return o;
    }

    @Test void badDatasetsAndOptionsAreRefusedWithExitCode2() throws Exception {
        Path bad = dir.resolve("bad.jsonl");
        Files.writeString(bad, "{\"id\":\"a\",\"topic\":\"athlete\",\"prompt\":\"He played\",\"answer\":\" well\"}\n{broken\n");
        Run r = cli("shapley", "--model", model.toString(), "--dataset", bad.toString(), "--players", neurons[0], "--estimator", "exact", "--out", dir.resolve("x").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("bad.jsonl:2: invalid JSON"), r.err());
        r = cli("shapley", "--model", model.toString(), "--dataset", data.toString(), "--topic", "chef", "--players", neurons[0], "--estimator", "exact", "--out", dir.resolve("x").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown topic 'chef'"), r.err());
        Path longP = dir.resolve("long.jsonl");
        Files.writeString(longP, "{\"id\":\"l\",\"topic\":\"t\",\"prompt\":\"" + "word ".repeat(40) + "\",\"answer\":\" end\"}\n");
        r = cli("shapley", "--model", model.toString(), "--dataset", longP.toString(), "--players", neurons[0], "--estimator", "exact", "--out", dir.resolve("x").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("longer than the model's context"), r.err());
        r = cli("shapley", "--model", model.toString(), "--dataset", data.toString(), "--players", "blocks.5.mlp.hook_post", "--estimator", "exact", "--out", dir.resolve("x").toString());
        assertEquals(2, r.code());
        r = cli("shapley", "--model", model.toString(), "--dataset", data.toString(), "--metric", "bleu", "--estimator", "exact", "--out", dir.resolve("x").toString());
        assertEquals(2, r.code());
        assertFalse(Files.exists(dir.resolve("x.json")));
    }
}
